"""Training losses: the spike-rate penalty (weight 0 changes nothing; a positive weight makes
spikes sparser; stored in the run's config)."""

import dataclasses

import numpy as np
import pytest
import torch

from vo2spike.config import (
    FineTuneConfig,
    FineTuneRecord,
    Normalizer,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)
from vo2spike.data.split import split_by_person, split_masks
from vo2spike.data.windows import CHANNELS, prepare_windows
from vo2spike.inference import predict_windows
from vo2spike.model.net import ModelConfig, VO2Net
from vo2spike.train import fine_tune, fit, interpolate_weights, loss_fn, spike_rate_loss

N_INPUTS = len(CHANNELS)  # model inputs per time step


@pytest.fixture(scope="module")
def windows(sim_dir):
    """(train, val, normaliser) of the small simulated cohort: 320 / all val windows."""
    _, w = prepare_windows(sim_dir)
    masks = split_masks(w.person, split_by_person(w.person, 0))
    train = w.subset(masks["train"])
    train = train.subset(np.random.default_rng(0).permutation(len(train)) < 320)
    return train, w.subset(masks["val"]), Normalizer.fit(train)


def _batch(n: int = 16) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, N_INPUTS, 60, generator=g), torch.randn(n, generator=g), torch.randn(
        n, generator=g)


def test_output_rates_are_differentiable_copies_of_the_reported_rates():
    torch.manual_seed(0)
    out = VO2Net(ModelConfig())(_batch()[0])
    assert set(out.spike_rates_grad) == {"lif1", "lif2"}
    for k, r in out.spike_rates_grad.items():
        assert r.requires_grad and not out.spike_rates[k].requires_grad
        assert torch.equal(r.detach(), out.spike_rates[k])
    twin = VO2Net(ModelConfig(spiking=False))(_batch()[0])
    assert twin.spike_rates == {} and twin.spike_rates_grad == {}


def test_penalty_zero_leaves_the_loss_bit_identical_and_adds_penalty_times_mean_rate():
    x, y, ymax = _batch()
    torch.manual_seed(0)
    model = VO2Net(ModelConfig())
    mse = torch.nn.functional.mse_loss
    out = model(x)
    plain = mse(out.vo2, y) + 0.5 * mse(out.vo2max, ymax)
    assert torch.equal(loss_fn(model, x, y, ymax, 0.5), plain)
    assert torch.equal(loss_fn(model, x, y, ymax, 0.5, 0.0), plain)
    mean_rate = (out.spike_rates["lif1"] + out.spike_rates["lif2"]) / 2
    assert torch.isclose(spike_rate_loss(out.spike_rates_grad, 2.0), 2.0 * mean_rate)
    assert torch.isclose(loss_fn(model, x, y, ymax, 0.5, 2.0), plain + 2.0 * mean_rate)
    # The twin has no spikes: the penalty leaves its loss alone.
    twin = VO2Net(ModelConfig(spiking=False))
    assert torch.equal(loss_fn(twin, x, y, ymax, 1.0, 5.0),
                       loss_fn(twin, x, y, ymax, 1.0))


def test_penalty_gradient_lowers_the_rate():
    x, y, ymax = _batch()
    torch.manual_seed(0)
    model = VO2Net(ModelConfig())
    out = model(x)
    spike_rate_loss(out.spike_rates_grad, 1.0).backward()
    g = model.layer2.fc.bias.grad  # more current into LIF2, more LIF2 spikes
    assert g is not None and (g >= 0).all() and g.sum() > 0


def _rate(model: VO2Net, norm: Normalizer, w) -> float:
    return float(np.mean(list(predict_windows(model, norm, w.x).spike_rates.values())))


def test_positive_penalty_lowers_the_spike_rate_in_fit_and_fine_tune(windows, tmp_path):
    train, val, norm = windows
    rates, models = {}, {}
    for penalty in (0.0, 10.0):
        torch.manual_seed(0)
        model = VO2Net(ModelConfig())
        cfg = TrainConfig(epochs=2, batch_size=32, spike_rate_penalty=penalty)
        fit(model, train, val, norm, cfg, tmp_path / f"ck{penalty}.safetensors", "t", 0)
        rates[penalty], models[penalty] = _rate(model, norm, val), model
    assert rates[10.0] < 0.8 * rates[0.0], rates
    # fine_tune passes its own penalty through: from the same start, sparser with it
    tuned = {p: fine_tune(models[0.0], val, train, norm,
                          FineTuneConfig(epochs=2, spike_rate_penalty=p), 0)
             for p in (0.0, 10.0)}
    assert _rate(tuned[10.0], norm, val) < _rate(tuned[0.0], norm, val)


def test_penalty_is_stored_in_the_run_config(run_dir, tmp_path):
    config = load_config(run_dir)
    assert config.train.spike_rate_penalty == TrainConfig().spike_rate_penalty
    config.train = dataclasses.replace(config.train, spike_rate_penalty=0.3)
    config.fine_tune = FineTuneRecord(FineTuneConfig(spike_rate_penalty=0.3), {"kind": "real"},
                                      10, ["a"])
    save_config(tmp_path, config)
    back = load_config(tmp_path)
    assert back.train.spike_rate_penalty == 0.3
    assert back.fine_tune.config.spike_rate_penalty == 0.3
    # A config written before the penalty existed still loads, with no penalty.
    d = config_to_dict(config)
    for section in (d["train"], d["fine_tune"]["config"]):
        del section["spike_rate_penalty"]
    old = config_from_dict(d)
    assert old.train.spike_rate_penalty == 0.0 == old.fine_tune.config.spike_rate_penalty


def test_fine_tune_interpolates_between_start_and_tuned_weights(windows):
    """tuned_fraction f: the result is start + f x (plain fine-tuned - start), parameter by
    parameter; BatchNorm statistics (frozen while fine-tuning) are the start's."""
    train, val, norm = windows
    torch.manual_seed(0)
    start = VO2Net(ModelConfig())
    tuned = {}
    for f in (1.0, 0.5, 0.0):
        torch.manual_seed(0)
        tuned[f] = fine_tune(start, val, train, norm, FineTuneConfig(epochs=1, tuned_fraction=f),
                             0)
    moved = 0
    for (name, p0), p1, ph, pz in zip(start.named_parameters(), tuned[1.0].parameters(),
                                      tuned[0.5].parameters(), tuned[0.0].parameters(),
                                      strict=True):
        assert torch.equal(pz, p0), name
        torch.testing.assert_close(ph, p0 + 0.5 * (p1 - p0), rtol=0, atol=1e-6)
        moved += int(not torch.equal(p1, p0))
    assert moved > 0  # plain fine-tuning did change the weights
    for (name, b0), b1 in zip(start.named_buffers(), tuned[0.5].buffers(), strict=True):
        assert torch.equal(b0, b1), name


def test_interpolation_keeps_shared_zeros_and_checks_its_fraction():
    torch.manual_seed(0)
    a, b = VO2Net(ModelConfig()), VO2Net(ModelConfig())
    with torch.no_grad():
        a.head_vo2.weight[0, :5] = 0
        b.head_vo2.weight[0, :5] = 0
    interpolate_weights(a, b, 0.5)
    assert (b.head_vo2.weight[0, :5] == 0).all()
    with pytest.raises(ValueError, match="tuned_fraction"):
        interpolate_weights(a, b, 1.5)


def test_configs_written_before_interpolation_load_as_plain_fine_tuning(run_dir):
    config = load_config(run_dir)
    config.fine_tune = FineTuneRecord(FineTuneConfig(), {"kind": "real"}, 10, ["a"])
    d = config_to_dict(config)
    assert d["fine_tune"]["config"]["tuned_fraction"] == FineTuneConfig().tuned_fraction
    del d["fine_tune"]["config"]["tuned_fraction"]
    assert config_from_dict(d).fine_tune.config.tuned_fraction == 1.0
