"""The network itself: causality, receptive field, the ANN twin, save/load round trip."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vo2spike.config import RunDirError, load_config
from vo2spike.data.windows import CHANNELS
from vo2spike.inference import build_model, load_model, predict_windows
from vo2spike.model.net import ModelConfig, VO2Net, count_parameters
from vo2spike.model.tcn import TCN
from vo2spike.train import save_weights

N_INPUTS = len(CHANNELS)  # model inputs per time step


def _tcn() -> TCN:
    torch.manual_seed(0)
    tcn = TCN(N_INPUTS, 32, 3, (1, 2, 4, 8))
    for m in tcn.modules():  # non-trivial BatchNorm statistics, eval mode
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return tcn.eval()


@given(st.integers(0, 59))
@settings(max_examples=20, deadline=None)
def test_tcn_is_causal(t):
    tcn = _tcn()
    x = torch.randn(2, N_INPUTS, 60, generator=torch.Generator().manual_seed(1))
    x2 = x.clone()
    x2[:, :, t] += 3.0  # change the input at time t only
    with torch.no_grad():
        a, b = tcn(x), tcn(x2)
    assert torch.equal(a[:, :, :t], b[:, :, :t])  # earlier outputs unchanged
    assert not torch.equal(a[:, :, t], b[:, :, t])


def test_receptive_field_is_31_seconds():
    tcn = _tcn()
    assert tcn.receptive_field == 31
    x = torch.randn(1, N_INPUTS, 80, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = tcn(x)[0, :, 79]
        for lag in range(45):
            x2 = x.clone()
            x2[:, :, 79 - lag] += 5.0
            moved = not torch.equal(tcn(x2)[0, :, 79], base)
            # The output at t sees inputs t-30 .. t and nothing older.
            assert moved == (lag < tcn.receptive_field), lag


def test_spiking_model_and_twin_shapes():
    x = torch.randn(5, N_INPUTS, 60)
    snn, twin = VO2Net(ModelConfig()), VO2Net(ModelConfig(spiking=False))
    out, tout = snn(x), twin(x)
    assert out.vo2.shape == out.vo2max.shape == tout.vo2.shape == tout.vo2max.shape == (5,)
    assert set(out.spike_rates) == {"lif1", "lif2"} and tout.spike_rates == {}
    assert count_parameters(snn) == count_parameters(twin) == 17_186  # 10 inputs
    assert isinstance(twin.layer1[0], torch.nn.Linear)


def test_saved_run_loads_with_the_same_predictions(run_dir, sim_dir, tmp_path):
    import shutil

    from vo2spike.data.windows import prepare_windows

    model, norm, config = load_model(run_dir)
    _, w = prepare_windows(sim_dir)
    before = predict_windows(model, norm, w.x[:50])
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    digest = save_weights(model, copy / "model.safetensors")
    assert digest == config.weights["model.safetensors"]  # same bytes, same checksum
    again, norm2, config2 = load_model(copy)
    after = predict_windows(again, norm2, w.x[:50])
    assert np.array_equal(before.vo2, after.vo2) and np.array_equal(before.vo2max, after.vo2max)
    assert config2 == load_config(run_dir)


def test_weights_that_do_not_fit_the_architecture_are_named(run_dir, tmp_path):
    config = load_config(run_dir)
    state = VO2Net(ModelConfig(hidden=16)).state_dict()
    with pytest.raises(RunDirError, match=r"wrong shape layer1\.fc\.weight \(16, 32\)"):
        build_model(state, config, twin=False, where=tmp_path / "w.safetensors")
