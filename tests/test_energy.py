"""Operation and energy accounting, checked by hand on a toy network whose weights and
spikes are set."""

import numpy as np
import pytest
import torch

from vo2spike.compress.energy import (
    OP_ENERGY_PJ,
    SPIKING_PARTS,
    break_even_rate,
    count_ops,
    dense_lif2_note,
    energy_nj,
    energy_report,
    energy_table,
    layer_activity,
    op_energy_pj,
)
from vo2spike.compress.prune import make_permanent, prune_global
from vo2spike.config import Normalizer
from vo2spike.data.windows import CHANNELS
from vo2spike.inference import predict_windows
from vo2spike.model.net import ModelConfig, VO2Net

N_INPUTS = len(CHANNELS)  # model inputs per time step

T = 5


def _toy(spiking: bool) -> VO2Net:
    """1 input, 2 channels, one causal block (kernel 2, dilation 1), 2 hidden neurons."""
    model = VO2Net(ModelConfig(n_inputs=1, channels=2, kernel_size=2, dilations=(1,),
                               hidden=2, spiking=spiking))
    block = model.tcn.blocks[0]
    lin1 = model.layer1.fc if spiking else model.layer1[0]
    lin2 = model.layer2.fc if spiking else model.layer2[0]
    with torch.no_grad():
        block.conv.weight.copy_(torch.tensor([[[1.0, 0.0]], [[0.0, 2.0]]]))  # (2, 1, 2)
        block.residual.weight.copy_(torch.tensor([[[3.0]], [[0.0]]]))  # 1x1, with bias
        lin1.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))  # 3 non-zero
        lin2.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 1.0]]))  # columns: 1 and 2 non-zero
        model.head_vo2.weight.copy_(torch.tensor([[1.0, 0.0]]))
        model.head_vo2max.weight.copy_(torch.tensor([[1.0, 1.0]]))
    return model


# Per window: layer-1 neurons fire 2 and 3 times, layer-2 neurons once and never.
ACTIVITY = {"layer1": np.array([[2, 3]]), "layer2": np.array([[1, 0]])}


def _ops(counts, part):
    return {k: float(v[0]) for k, v in counts[part].items()}


def test_toy_counts_by_hand():
    snn = count_ops(_toy(True), ACTIVITY, steps=T)
    # TCN: tap t-1 has 1 non-zero weight over 4 steps (t=0 reads padding), tap t has 1 over 5;
    # the 1x1 residual 1 over 5: 14 MACs. 2 channels x 5 steps = 10 outputs, each a folded
    # BatchNorm bias, a ReLU compare, a residual add and a residual bias: 40 adds.
    assert _ops(snn, "tcn") == {"mac": 14, "ac": 0, "add": 40, "mult": 0, "requant": 10}
    # LIF1: 3 non-zero weights x 5 real-valued inputs; 10 neuron-steps x (bias, integrate,
    # compare) + 5 resets; 10 leaks.
    assert _ops(snn, "layer1") == {"mac": 15, "ac": 0, "add": 35, "mult": 10, "requant": 0}
    # LIF2: neuron 0's 2 spikes reach 1 non-zero weight, neuron 1's 3 spikes reach 2: 8 ACs.
    assert _ops(snn, "layer2") == {"mac": 0, "ac": 8, "add": 31, "mult": 10, "requant": 0}
    # Read-out: 1 spike counted, 3 non-zero head weights, 2 head biases.
    assert _ops(snn, "readout") == {"mac": 3, "ac": 0, "add": 3, "mult": 0, "requant": 0}

    twin = _toy(False)
    dense = count_ops(twin, ACTIVITY, steps=T)
    skip = count_ops(twin, ACTIVITY, steps=T, skip_zeros=True)
    assert _ops(dense, "tcn") == _ops(snn, "tcn")
    assert _ops(dense, "layer1") == {"mac": 15, "ac": 0, "add": 20, "mult": 0, "requant": 10}
    assert _ops(dense, "layer2") == {"mac": 15, "ac": 0, "add": 20, "mult": 0, "requant": 0}
    assert _ops(skip, "layer2")["mac"] == 8  # only the 2 + 3 non-zero layer-1 outputs
    assert _ops(dense, "readout") == {"mac": 3, "ac": 0, "add": 12, "mult": 0, "requant": 0}
    assert _ops(skip, "readout")["add"] == 3

    # Energy: float MAC = 3.7 + 0.9 pJ, int8 MAC = 0.2 + 0.1 pJ, spike accumulate = add.
    assert op_energy_pj("mac", "float") == pytest.approx(4.6)
    assert op_energy_pj("mac", "int8") == pytest.approx(0.3)
    assert op_energy_pj("ac", "int8") == OP_ENERGY_PJ["int32_add"]
    float_pj = (15 * 4.6 + 35 * 0.9 + 10 * 3.7) + (8 * 0.9 + 31 * 0.9 + 10 * 3.7) \
        + (3 * 4.6 + 3 * 0.9)
    assert energy_nj(snn, "float", SPIKING_PARTS)[0] == pytest.approx(float_pj / 1e3)
    # the int8 leak: two shifts and two subtracts (4 int32 adds), not a multiply
    int8_pj = (15 * 0.3 + 35 * 0.1 + 10 * 0.4) + (8 * 0.1 + 31 * 0.1 + 10 * 0.4) \
        + (3 * 0.3 + 3 * 0.1)
    assert energy_nj(snn, "int8", SPIKING_PARTS)[0] == pytest.approx(int8_pj / 1e3)
    tcn_int8 = 14 * 0.3 + 40 * 0.1 + 10 * 3.1
    assert energy_nj(snn, "int8")[0] == pytest.approx((int8_pj + tcn_int8) / 1e3)


def test_pruned_weights_are_not_counted():
    model = _toy(True)
    with torch.no_grad():
        model.layer2.fc.weight.zero_()
    assert _ops(count_ops(model, ACTIVITY, steps=T), "layer2")["ac"] == 0


def test_break_even_rate():
    snn = _toy(True)

    def e(rate):
        a = np.full((1, 2), rate * T)
        return float(energy_nj(count_ops(snn, {"layer1": a, "layer2": a}, T), "int8",
                               SPIKING_PARTS)[0])

    target = e(0.3)
    assert break_even_rate(snn, target, "int8", T) == pytest.approx(0.3)
    assert break_even_rate(snn, e(0.0) * 0.5, "int8", T) == 0.0  # dearer even when silent
    assert break_even_rate(snn, e(1.0) * 2, "int8", T) is None  # cheaper at every rate


def test_activity_of_the_float_model_matches_its_spike_rates():
    torch.manual_seed(0)
    snn = VO2Net(ModelConfig()).eval()
    norm = Normalizer([0.0] * N_INPUTS, [1.0] * N_INPUTS, 0.0, 1.0, 0.0, 1.0)
    x = np.random.default_rng(0).normal(size=(7, N_INPUTS, 60)).astype(np.float32)
    act = layer_activity(snn, norm, x, batch_size=3)
    assert act["layer1"].shape == act["layer2"].shape == (7, 64)
    rates = predict_windows(snn, norm, x).spike_rates
    assert act["layer1"].sum() / (7 * 64 * 60) == pytest.approx(rates["lif1"], rel=1e-6)
    assert act["layer2"].sum() / (7 * 64 * 60) == pytest.approx(rates["lif2"], rel=1e-6)


def test_report_from_engine_counts_and_table():
    torch.manual_seed(0)
    snn = make_permanent(prune_global(VO2Net(ModelConfig()), 0.7)).eval()
    twin = make_permanent(prune_global(VO2Net(ModelConfig(spiking=False)), 0.7)).eval()
    rng = np.random.default_rng(0)
    spikes = {k: rng.binomial(60, 0.05, size=(4, 64)) for k in ("layer1", "layer2")}
    active = {k: rng.binomial(60, 0.5, size=(4, 64)) for k in ("layer1", "layer2")}
    r = energy_report(snn, twin, snn_activity=spikes, twin_activity=active)
    assert r["windows"] == 4 and r["spike_rates"]["mean"] == pytest.approx(
        (spikes["layer1"].sum() + spikes["layer2"].sum()) / (2 * 4 * 64 * 60))
    nnz2 = (snn.layer2.fc.weight != 0).sum(dim=0).numpy()
    assert r["synaptic_ops"]["snn_lif2_acs"] == pytest.approx((spikes["layer1"] @ nnz2).mean())
    e = r["energy_nj"]
    assert e["int8"]["snn"]["spiking_layers"] < e["float"]["snn"]["spiking_layers"]
    assert e["float"]["twin_skip_zeros"]["total"] < e["float"]["twin_dense"]["total"]
    table = energy_table(r)
    assert "break-even spike rate" in table and "| fp32_add | 0.9 |" in table
    with pytest.raises(ValueError):
        energy_report(snn, twin)


def test_dense_lif2_note_counts_the_zeros_a_dense_column_adds():
    report = {"counts": {"snn": {"layer2": {"ac": np.array([3.0, 5.0])}}},
              "spike_rates": {"layer1": 0.1}, "steps": 5,
              "energy_nj": {"int8": {"snn": {"spiking_layers": 1.0},
                                     "twin_skip_zeros": {"spiking_layers": 2.0}}}}
    # 10% of 4 neurons spike over 5 steps: 2 spikes, each adding a dense column of 4
    note = dense_lif2_note(report, hidden=4)
    assert "8 accumulates a window instead of 4" in note and "(below" in note
    # 50% of 64 neurons over 5 steps: 160 spikes x 64 accumulates, 0.1 pJ each
    report["spike_rates"]["layer1"] = 0.5
    note = dense_lif2_note(report, hidden=64)
    extra = (160 * 64 - 4) * op_energy_pj("ac", "int8") / 1000
    assert "10,240 accumulates" in note and f"take {1.0 + extra:.1f} nJ (above" in note
