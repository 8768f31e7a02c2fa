"""Synaptic-operation and energy accounting per window, for the spiking model and its twin.

Counted per 60 s window (T = 60 steps at 1 Hz) from the actual activity (spikes of the LIF
layers, non-zero ReLU outputs of the twin) and the non-zero weights; the energy of each
counted operation comes from one table, :data:`OP_ENERGY_PJ` (45 nm, Horowitz, "Computing's
energy problem", ISSCC 2014), charged as :data:`CHARGES` says for float32 and int8 engines.

What is counted (``mac``: weight x real-valued activation; ``ac``: a weight accumulated for
an input spike; ``add``: bias, residual, integration, threshold compare, reset, ReLU compare,
spike counter or time sum; ``mult``: the membrane leak beta x U (int8: shift-and-add);
``requant``: int8 engines only, rescaling an int32 result to int8 for the next layer):

- TCN (identical in both models): per convolution tap, non-zero weights x the time steps whose
  input is not left padding (MACs); per output element a bias add (BatchNorm folded into the
  convolution), a ReLU compare, a residual add (the block-1 residual is a 1x1 convolution
  with bias), and an int8 requantisation.
- Spiking model. LIF1's inputs are the TCN's real-valued outputs, so its synapses are MACs:
  non-zero weights x T. LIF2's inputs are spikes: each LIF1 spike costs one accumulate per
  non-zero outgoing weight (``sum_j count_j x nnz(W2[:, j])``). Each LIF neuron and step: a
  bias add, the leak multiply, the integration add, the threshold compare; each spike a
  reset add. Read-out: one counter add per LIF2 spike, then both heads once per window
  (non-zero weights MACs + bias; the 1/T of the spike rate is folded into the weights).
- ANN twin at the same sparsity. Each Linear: non-zero weights x T MACs ("dense") or, with
  zero ReLU activations skipped, ``sum_j active_j x nnz(W2[:, j])`` for layer 2 (layer 1's
  inputs are the dense TCN outputs); per neuron and step a bias add and a ReLU compare, and
  for int8 a requantisation of layer 1's outputs; read-out: the time sum of layer 2's
  outputs (64 x T adds, or one per non-zero output when skipping) and both heads.

Arithmetic only: memory traffic (fetching weights and activations, which on a
microcontroller costs more than the arithmetic) and the indexing overhead of event-driven
(spike) or zero-skipping accumulation are not counted.

Activity can come from the float model (:func:`layer_activity`) or from an integer engine:
arrays of shape (N, 64) per layer holding, per window and neuron, the number of time steps
with a spike (or a non-zero twin activation).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vo2spike.config import Normalizer
from vo2spike.model.net import VO2Net
from vo2spike.model.tcn import CausalConvBlock

#: Energy per operation (pJ), 45 nm CMOS: Horowitz, ISSCC 2014.
OP_ENERGY_PJ: dict[str, float] = {
    "fp32_add": 0.9,
    "fp32_mult": 3.7,
    "int32_add": 0.1,
    "int32_mult": 3.1,
    "int8_add": 0.03,
    "int8_mult": 0.2,
}

#: What each counted operation is charged as, per engine precision.
#: float: a MAC is an fp32 multiply + an fp32 add (4.6 pJ), everything else fp32.
#: int8 (what the integer engines compute): a MAC is an 8-bit multiply accumulated into an
#: int32 register (0.2 + 0.1 pJ); a spike's accumulate adds an int8 weight into an int32
#: membrane (an int32 add, 0.1 pJ); adds and compares are int32; the leak
#: U - (U >> k1) - (U >> k2) is two shifts and two subtracts (4 int32 adds); the
#: requantisation is an int32 multiply.
#: int8_mult_leak: the engine before the shift-and-add leak (beta x U as an int32 multiply),
#: for comparison.
CHARGES: dict[str, dict[str, tuple[str, ...]]] = {
    "float": {"mac": ("fp32_mult", "fp32_add"), "ac": ("fp32_add",), "add": ("fp32_add",),
              "mult": ("fp32_mult",), "requant": ()},
    "int8": {"mac": ("int8_mult", "int32_add"), "ac": ("int32_add",), "add": ("int32_add",),
             "mult": ("int32_add",) * 4, "requant": ("int32_mult",)},
    "int8_mult_leak": {"mac": ("int8_mult", "int32_add"), "ac": ("int32_add",),
                       "add": ("int32_add",), "mult": ("int32_mult",),
                       "requant": ("int32_mult",)},
}
OPS = ("mac", "ac", "add", "mult", "requant")
#: Parts of the network; "spiking layers" = layer1 + layer2 + readout.
PARTS = ("tcn", "layer1", "layer2", "readout")
SPIKING_PARTS = ("layer1", "layer2", "readout")


def op_energy_pj(op: str, precision: str) -> float:
    """Energy (pJ) charged for one counted operation at ``precision`` ("float" or "int8")."""
    return sum(OP_ENERGY_PJ[e] for e in CHARGES[precision][op])


def _linears(model: VO2Net) -> tuple[nn.Linear, nn.Linear]:
    if model.config.spiking:
        return model.layer1.fc, model.layer2.fc
    return model.layer1[0], model.layer2[0]


def _nnz(w: torch.Tensor) -> int:
    return int((w.detach() != 0).sum())


@torch.no_grad()
def layer_activity(model: VO2Net, norm: Normalizer, x: np.ndarray,
                   batch_size: int = 512) -> dict[str, np.ndarray]:
    """Per window and neuron, the time steps with a non-zero output of layer 1 and layer 2
    (spikes of the LIF layers; non-zero ReLU outputs of the twin), from raw windows x
    (N, 8, T): {"layer1": (N, 64), "layer2": (N, 64)} int64."""
    model.eval()
    seen: dict[str, list[np.ndarray]] = {"layer1": [], "layer2": []}

    def hook(name: str):
        def record(_module, _inputs, output: torch.Tensor) -> None:
            seen[name].append((output != 0).sum(dim=1).numpy())  # (B, T, H) -> (B, H)
        return record

    handles = [model.layer1.register_forward_hook(hook("layer1")),
               model.layer2.register_forward_hook(hook("layer2"))]
    try:
        xs = torch.from_numpy(norm.inputs(x))
        for i in range(0, len(xs), batch_size):
            model(xs[i:i + batch_size])
    finally:
        for h in handles:
            h.remove()
    return {k: np.concatenate(v).astype(np.int64) for k, v in seen.items()}


def _tcn_counts(model: VO2Net, steps: int) -> dict[str, float]:
    c = dict.fromkeys(OPS, 0.0)
    for block in model.tcn.blocks:
        assert isinstance(block, CausalConvBlock)
        w = block.conv.weight.detach()  # (C_out, C_in, K)
        k_size, dilation = w.shape[2], block.conv.dilation[0]
        for k in range(k_size):  # tap k reads x[t - (K - 1 - k) * d]: padding for early t
            valid = max(0, steps - (k_size - 1 - k) * dilation)
            c["mac"] += _nnz(w[:, :, k]) * valid
        out = w.shape[0] * steps
        c["add"] += 3 * out  # folded BatchNorm bias, ReLU compare, residual add
        c["requant"] += out
        if isinstance(block.residual, nn.Conv1d):
            c["mac"] += _nnz(block.residual.weight) * steps
            c["add"] += out  # its bias
    return c


def count_ops(model: VO2Net, activity: dict[str, np.ndarray], steps: int = 60,
              skip_zeros: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Operations per window, by part (tcn, layer1, layer2, readout) and kind (mac, ac, add,
    mult, requant): arrays (N,) for the N windows of ``activity`` (see
    :func:`layer_activity`). ``skip_zeros`` (twin only): layer 2 and the time sum skip zero
    ReLU outputs of the layer before."""
    a1 = np.asarray(activity["layer1"], dtype=np.float64)  # (N, H) active steps per neuron
    a2 = np.asarray(activity["layer2"], dtype=np.float64)
    n = len(a1)
    lin1, lin2 = _linears(model)
    hidden = lin1.out_features
    nnz_cols2 = (lin2.weight.detach() != 0).sum(dim=0).numpy().astype(np.float64)  # (H_in,)
    heads = _nnz(model.head_vo2.weight) + _nnz(model.head_vo2max.weight)
    neuron_steps = hidden * steps
    zero = np.zeros(n)

    def part(**kw) -> dict[str, np.ndarray]:
        return {op: np.broadcast_to(np.asarray(kw.get(op, 0.0), dtype=np.float64), (n,)).copy()
                for op in OPS}

    counts = {"tcn": part(**_tcn_counts(model, steps))}
    if model.config.spiking:
        s1, s2 = a1.sum(axis=1), a2.sum(axis=1)  # (N,) spikes per window
        # per neuron-step: bias add, integration add, threshold compare; per spike: reset
        neuron = {"add": 3 * neuron_steps, "mult": neuron_steps}
        counts["layer1"] = part(mac=_nnz(lin1.weight) * steps, add=neuron["add"] + s1,
                                mult=neuron["mult"])
        counts["layer2"] = part(ac=a1 @ nnz_cols2, add=neuron["add"] + s2, mult=neuron["mult"])
        counts["readout"] = part(mac=heads, add=s2 + 2)  # spike counters, head biases
    else:
        layer2_macs = a1 @ nnz_cols2 if skip_zeros else zero + _nnz(lin2.weight) * steps
        time_sum = a2.sum(axis=1) if skip_zeros else zero + neuron_steps
        counts["layer1"] = part(mac=_nnz(lin1.weight) * steps, add=2 * neuron_steps,
                                requant=neuron_steps)
        counts["layer2"] = part(mac=layer2_macs, add=2 * neuron_steps)
        counts["readout"] = part(mac=heads, add=time_sum + 2)
    return counts


def energy_nj(counts: dict[str, dict[str, np.ndarray]], precision: str,
              parts=PARTS) -> np.ndarray:
    """Energy per window (nJ), (N,), of the given parts at ``precision``."""
    return sum(counts[p][op] * op_energy_pj(op, precision) for p in parts for op in OPS) / 1e3


def _mean_counts(counts: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    return {p: {op: float(v.mean()) for op, v in c.items()} for p, c in counts.items()}


def break_even_rate(snn: VO2Net, twin_energy_nj: float, precision: str,
                    steps: int = 60) -> float | None:
    """The spike rate (fraction of neuron-steps, the same in both LIF layers, LIF1 spikes
    spread evenly over its neurons) at which the spiking layers' energy per window equals
    ``twin_energy_nj``. None if none in [0, 1]: 0 means even a silent SNN costs more."""
    hidden = _linears(snn)[0].out_features

    def energy(rate: float) -> float:
        a = np.full((1, hidden), rate * steps)
        return float(energy_nj(count_ops(snn, {"layer1": a, "layer2": a}, steps),
                               precision, SPIKING_PARTS)[0])

    e0, e1 = energy(0.0), energy(1.0)  # the energy is linear in the rate
    if e0 >= twin_energy_nj:
        return 0.0
    rate = (twin_energy_nj - e0) / (e1 - e0)
    return rate if rate <= 1.0 else None


def energy_report(snn: VO2Net, twin: VO2Net, norm: Normalizer | None = None,
                  x: np.ndarray | None = None, snn_activity: dict[str, np.ndarray] | None = None,
                  twin_activity: dict[str, np.ndarray] | None = None,
                  precisions: tuple[str, ...] = tuple(CHARGES)) -> dict:
    """Operations and energy per window (mean over windows) of the spiking model and its
    twin, from raw windows ``x`` (N, 8, T) run through the float models, or from activity
    counts of an engine (``snn_activity`` / ``twin_activity``: {"layer1", "layer2"} ->
    (N, 64) active steps). Energies in nJ per window, for the spiking layers (layer1 +
    layer2 + readout) and the whole network; the twin dense and with zero activations
    skipped; the break-even spike rate against each twin variant."""
    if snn_activity is None or twin_activity is None:
        if norm is None or x is None:
            raise ValueError("give raw windows x with their normaliser, or activity counts")
        snn_activity = snn_activity or layer_activity(snn, norm, x)
        twin_activity = twin_activity or layer_activity(twin, norm, x)
    steps = int(x.shape[-1]) if x is not None else 60
    hidden = _linears(snn)[0].out_features
    rates = {k: float(np.mean(v)) / steps for k, v in snn_activity.items()}
    twin_active = {k: float(np.mean(v)) / steps for k, v in twin_activity.items()}
    models = {"snn": count_ops(snn, snn_activity, steps),
              "twin_dense": count_ops(twin, twin_activity, steps),
              "twin_skip_zeros": count_ops(twin, twin_activity, steps, skip_zeros=True)}
    report: dict = {
        "windows": int(len(snn_activity["layer1"])), "steps": steps, "neurons": hidden,
        "spike_rates": {**rates, "mean": float(np.mean(list(rates.values())))},
        "twin_nonzero_fraction": twin_active,
        "nonzero_weights": {name: {p: n for p, n in _nonzero_by_part(m).items()}
                            for name, m in (("snn", snn), ("twin", twin))},
        "op_energy_pj": OP_ENERGY_PJ,
        "charges": {p: {op: "+".join(c) or "free" for op, c in ch.items()}
                    for p, ch in CHARGES.items()},
        "counts": {k: _mean_counts(v) for k, v in models.items()},
        "synaptic_ops": {"snn_lif1_macs": float(models["snn"]["layer1"]["mac"].mean()),
                         "snn_lif2_acs": float(models["snn"]["layer2"]["ac"].mean())},
        "energy_nj": {}, "break_even_rate": {},
    }
    for prec in precisions:
        e = {k: {"spiking_layers": float(energy_nj(c, prec, SPIKING_PARTS).mean()),
                 "total": float(energy_nj(c, prec).mean()),
                 **{p: float(energy_nj(c, prec, (p,)).mean()) for p in PARTS}}
             for k, c in models.items()}
        report["energy_nj"][prec] = e
        report["break_even_rate"][prec] = {
            k: break_even_rate(snn, e[k]["spiking_layers"], prec, steps)
            for k in ("twin_dense", "twin_skip_zeros")}
    return report


def _nonzero_by_part(model: VO2Net) -> dict[str, int]:
    lin1, lin2 = _linears(model)
    tcn = sum(_nnz(m.weight) for m in model.tcn.modules() if isinstance(m, nn.Conv1d))
    return {"tcn": tcn, "layer1": _nnz(lin1.weight), "layer2": _nnz(lin2.weight),
            "heads": _nnz(model.head_vo2.weight) + _nnz(model.head_vo2max.weight)}


def energy_table(report: dict) -> str:
    """Markdown: per-operation energies, operation counts and energy per window, the
    verdict against the int8 twin and the break-even spike rate."""
    r = report
    lines = ["Energy per operation (45 nm, Horowitz ISSCC 2014) and what each counted "
             "operation is charged as (arithmetic only: memory traffic and the indexing of "
             "sparse, event-driven accumulation are not counted):", "",
             "| operation | pJ |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in r["op_energy_pj"].items()]
    precs = list(r["charges"])
    lines += ["", "| counted as | " + " | ".join(f"{p} engine" for p in precs) + " |",
              "|---|" + "---|" * len(precs)]
    for op in OPS:
        lines.append(f"| {op} | " + " | ".join(
            f"{r['charges'][p][op]} ({op_energy_pj(op, p):.2f} pJ)" for p in precs) + " |")
    s = r["spike_rates"]
    lines += ["", f"Per window ({r['steps']} steps, mean over {r['windows']} windows); spike "
              f"rates LIF1 {s['layer1']:.3f}, LIF2 {s['layer2']:.3f} (mean {s['mean']:.3f}); "
              "twin non-zero ReLU outputs layer 1 "
              f"{r['twin_nonzero_fraction']['layer1']:.3f}, layer 2 "
              f"{r['twin_nonzero_fraction']['layer2']:.3f}.", "",
              "| model | part | MACs | ACs (spike accumulates) | adds | mults | requant |",
              "|---|---|---|---|---|---|---|"]
    names = {"snn": "spiking", "twin_dense": "ANN twin (dense)",
             "twin_skip_zeros": "ANN twin (zero activations skipped)"}
    for k, parts in r["counts"].items():
        for p, c in parts.items():
            lines.append(f"| {names[k]} | {p} | {c['mac']:,.0f} | {c['ac']:,.0f} | "
                         f"{c['add']:,.0f} | {c['mult']:,.0f} | {c['requant']:,.0f} |")
    e = r["energy_nj"]
    lines += ["", "Energy per window (nJ): spiking layers (LIF1 + LIF2 + read-out, or the twin's "
              "two Linear + ReLU layers + read-out) / whole network (TCN included).", "",
              "| model | " + " | ".join(f"{p}: spiking layers | {p}: whole network"
                                        for p in e) + " |",
              "|---|" + "---|---|" * len(e)]
    for k in r["counts"]:
        cells = [f"{e[p][k][part]:.1f}" for p in e for part in ("spiking_layers", "total")]
        lines.append(f"| {names[k]} | " + " | ".join(cells) + " |")
    lines.append("")
    for prec in e:
        snn, twin = e[prec]["snn"]["spiking_layers"], e[prec]["twin_dense"]["spiking_layers"]
        skip = e[prec]["twin_skip_zeros"]["spiking_layers"]
        be = r["break_even_rate"][prec]
        verdict = "beats its ANN twin, dense and zero-skipping," if snn < min(twin, skip) else (
            "beats its dense ANN twin but not the zero-skipping one" if snn < twin
            else "does not beat its ANN twin")
        lines.append(f"- {prec}: the spiking model {verdict} on the "
                     f"spiking layers ({snn:.1f} nJ against {twin:.1f} dense, {skip:.1f} "
                     f"zero-skipping, per window, at a mean spike rate of {s['mean']:.1%}); "
                     f"break-even spike rate {_rate(be['twin_dense'])} (dense twin), "
                     f"{_rate(be['twin_skip_zeros'])} (zero-skipping twin).")
    return "\n".join(lines)


def dense_lif2_note(report: dict, hidden: int) -> str:
    """Markdown: what the int8 spiking layers cost when LIF2 is stored dense, as the C engine
    may store it (a spike adds its whole column, zeros too: ``hidden`` accumulates)."""
    r = report
    counted = float(np.mean(r["counts"]["snn"]["layer2"]["ac"]))
    dense = r["spike_rates"]["layer1"] * hidden * r["steps"] * hidden
    snn = r["energy_nj"]["int8"]["snn"]["spiking_layers"] \
        + (dense - counted) * op_energy_pj("ac", "int8") / 1000
    skip = r["energy_nj"]["int8"]["twin_skip_zeros"]["spiking_layers"]
    return (f"- The C engine stores LIF2 dense and adds a spike's whole column, zeros too: "
            f"{dense:,.0f} accumulates a window instead of {counted:,.0f}, so its int8 "
            f"spiking layers take {snn:.1f} nJ ({'below' if snn < skip else 'above'} the "
            f"zero-skipping twin's {skip:.1f}).")


def _rate(rate: float | None) -> str:
    if rate is None:
        return "none (cheaper at every rate)"
    if rate == 0.0:
        return "none (dearer even without spikes)"
    return f"{rate:.1%}"
