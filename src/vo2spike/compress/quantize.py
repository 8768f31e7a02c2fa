"""Integer-only int8 quantisation of a trained VO2Net (spiking model or ANN twin).

The integer arithmetic (see :mod:`vo2spike.compress.fixedpoint` for ``rq``, ``sat8`` and
``decay``), in the order the engines run it; ``s_*`` are float scales (value = int x scale):

1. Input: raw x encoded as int16 q = floor(10 x + 0.5) (0.1 units). Standardisation in fixed
   point: ``z = sat8(rq(q - off_c, M_c, n_c))`` with off_c = round(10 mean_c) and
   M_c 2^-n_c = 1 / (10 std_c s_in): int8 at the per-tensor scale s_in (32-bit).
2. TCN block b (input a int8 at s_a, zero before t = 0, output scale s_b): BatchNorm folded
   into the conv; per-output-channel int8 weights W (scale s_w[o] = max|w_o| / 127), int32
   bias B at s_a s_w[o]; ``acc = B + sum_{c,k} W[o,c,k] a[c, t-(K-1-k)d]``; the residual
   ``r = Br + sum_c Wr[o,c] a[c,t]`` (1x1 conv, block 0) or ``r = a[o,t]`` (identity);
   ``out = sat8((max(acc, 0) M[o] + r Mr[o] + 2^(n-1)) >> n)`` with M 2^-n = s_a s_w[o] / s_b,
   Mr 2^-n = s_a s_wr[o] / s_b (identity: s_a / s_b), one n per block chosen so that the
   sum is exact in int32 (``fixedpoint.multipliers32``).
3. LIF layer (spiking): the membrane potential U of neuron j is kept in units of
   ``u_j 2^-F`` (u_j = input scale x weight scale of row j, F the layer's ``frac_bits``), so the
   synaptic current is the accumulator itself: ``I = (sum_i W[j,i] x_i) * 2^F + B'_j`` with
   B' = round(b 2^F / u_j); ``U = U - (U >> k1) - (U >> k2) + I``; spike
   ``S = U > TH_j`` with TH_j = round(threshold 2^F / u_j); then ``U -= S TH_j``. LIF1's
   input is the TCN output (u_j = s_h s_w1[j]); LIF2's input is LIF1's 0/1 spikes
   (u_j = s_w2[j]), so its current is a sum of int8 weights (no multiplication). LIF2's
   spikes are counted over the window.
4. ANN twin instead: ``a1 = sat8(rq(max(B1 + W1 h, 0), M1, n1))`` (32-bit, one n per
   layer), the same for a2, and the per-neuron sum of a2 over the window.
5. Heads (VO2, VO2max): ``out = rq(HB + sum_j HW[h,j] count_j, HM, HN)`` in mL/min: the
   de-standardisation (x std + mean) and the 1/T of the time average are folded into the
   bias HB and the multiplier (HM 2^-HN = s_hw[h] std_h / T, x s_a2 for the twin).

Activation scales are symmetric per tensor: ``s = A / 127`` with A the ``percentile`` of |a|
over the calibration windows (100: the maximum), from the float (BN-folded) network.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vo2spike.compress.fixedpoint import (
    ACT_BOUND,
    ACT_MAX,
    leak_shifts,
    multipliers32,
    quantize_multiplier,
    quantize_weights,
    shift_beta,
)
from vo2spike.compress.fold import (
    FoldedBlock,
    float_layers,
    fold_tcn,
    folded_tcn_forward,
)
from vo2spike.compress.int_engine import encode_inputs
from vo2spike.compress.intmodel import (
    ENCODING,
    FORMAT,
    FORMAT_VERSION,
    OUTPUT,
    SPIKING_NAME,
    TWIN_NAME,
    IntModel,
    load_int_model,
    save_int_model,
)
from vo2spike.config import Normalizer
from vo2spike.data.windows import mixed_input_sets
from vo2spike.model.net import VO2Net

__all__ = ["IntModel", "load_int_model", "quantize_model", "save_int_model",
           "quantize_folder", "calibration_windows", "DEFAULT_PERCENTILE"]

#: Calibration rule for activation scales: percentile of |activation| (100 = max). Chosen by
#: validation R² on a 400-test simulated run (``python -m vo2spike.compress.measure``):
#: 99.99 and 99.999 tie (within 0.001 of the float model's R²); the maximum loses 0.3 points
#: of VO2max R² (twin), the 99.9th percentile 0.8.
DEFAULT_PERCENTILE = 99.99
#: Calibration windows used at most (evenly spaced over the given ones).
MAX_CALIBRATION_WINDOWS = 4096
#: LIF membrane potentials get fractional bits until the smallest threshold reaches this.
MIN_THRESHOLD_UNITS = 1 << 14
INT32_LIMIT = (1 << 31) - 1


def _amax(a: np.ndarray, percentile: float) -> float:
    v = np.abs(a).ravel()
    amax = float(v.max()) if percentile >= 100 else float(np.percentile(v, percentile))
    return amax if amax > 0 else 1.0


def _int32(values: np.ndarray, what: str) -> np.ndarray:
    r = np.round(values)
    if np.abs(r).max(initial=0) > INT32_LIMIT // 2:
        raise ValueError(f"{what}: integer value out of int32 range; the model's scales are "
                         "degenerate")
    return r.astype(np.int32)


def _requant(values: np.ndarray) -> dict[str, list[int]]:
    """64-bit requantisation (the heads)."""
    pairs = [quantize_multiplier(float(m)) for m in np.ravel(values)]
    return {"mult": [p[0] for p in pairs], "shift": [p[1] for p in pairs]}


def _requant32(reals: list[np.ndarray], bounds: list[np.ndarray]) -> list[dict[str, list[int]]]:
    """32-bit requantisation sharing one shift (see ``fixedpoint.multipliers32``): one
    {"mult", "shift"} per term."""
    mults, n = multipliers32(reals, bounds)
    return [{"mult": [int(v) for v in m], "shift": [n] * len(m)} for m in mults]


def _acc_bound(wq: np.ndarray, bias: np.ndarray, in_max: int) -> np.ndarray:
    """Largest |sum_i W[o,i] x_i + B[o]| per row over inputs |x_i| <= in_max."""
    w = np.abs(wq.reshape(wq.shape[0], -1).astype(np.int64))
    return w.sum(axis=1) * in_max + np.abs(bias.astype(np.int64))


def _frac_bits(th0: np.ndarray, wq: np.ndarray, bias0: np.ndarray, in_max: int,
               shifts: tuple[int, int], what: str) -> int:
    """Fractional bits F of a LIF layer's membrane: the smallest F >= 0 that gives every
    threshold at least MIN_THRESHOLD_UNITS, reduced while |U| could leave +-2**30.

    th0, bias0: threshold and bias in units u_j (F = 0); in_max: largest |input|."""
    f = max(0, math.ceil(math.log2(MIN_THRESHOLD_UNITS / max(float(th0.min()), 1e-12))))
    leak = 1.0 - shift_beta(shifts)
    while True:
        scale = 2.0**f
        current = np.abs(bias0) * scale + np.abs(wq.astype(np.float64)).sum(axis=1) * in_max \
            * scale
        bound = (current.max() + 1.0) / max(leak, 1.0 / 60) + th0.max() * scale
        if bound < 2.0**30:
            return f
        if f == 0:
            raise ValueError(f"{what}: membrane potential may overflow int32")
        f -= 1


def _lif_layer(prefix: str, w: np.ndarray, b: np.ndarray, in_scale: float, in_max: int,
               threshold: float, shifts: tuple[int, int], tensors: dict, lif_meta: dict,
               scales: dict) -> None:
    wq, sw = quantize_weights(w)
    unit = in_scale * sw  # (H,) value of one accumulator unit, per neuron
    th0, bias0 = threshold / unit, b / unit
    f = _frac_bits(th0, wq, bias0, in_max, shifts, prefix)
    tensors[f"{prefix}.weight"] = wq
    tensors[f"{prefix}.bias"] = _int32(bias0 * 2.0**f, f"{prefix}.bias")
    tensors[f"{prefix}.threshold"] = _int32(th0 * 2.0**f, f"{prefix}.threshold")
    lif_meta[prefix] = {"frac_bits": f, "leak_shifts": list(shifts)}
    scales["weight"][prefix] = sw.tolist()
    scales["membrane_unit"][prefix] = (unit / 2.0**f).tolist()


def _block(b: int, blk: FoldedBlock, s_in: float, s_out: float, tensors: dict,
           requant: dict, scales: dict) -> None:
    wq, sw = quantize_weights(blk.weight)
    bias = _int32(blk.bias / (s_in * sw), f"block{b}.bias")
    tensors[f"block{b}.weight"], tensors[f"block{b}.bias"] = wq, bias
    scales["weight"][f"block{b}"] = sw.tolist()
    n_out = blk.weight.shape[0]
    conv_bound = _acc_bound(wq, np.maximum(bias, 0), ACT_BOUND)  # bounds max(acc, 0)
    if blk.res_weight is not None:
        rq_, srw = quantize_weights(blk.res_weight)
        res_bias = _int32(blk.res_bias / (s_in * srw), f"block{b}.res")
        tensors[f"block{b}.res_weight"], tensors[f"block{b}.res_bias"] = rq_, res_bias
        scales["weight"][f"block{b}.res"] = srw.tolist()
        res_real, res_bound = s_in * srw / s_out, _acc_bound(rq_, res_bias, ACT_BOUND)
    else:
        res_real, res_bound = np.full(n_out, s_in / s_out), np.full(n_out, ACT_BOUND)
    requant[f"block{b}"], requant[f"block{b}.res"] = _requant32(
        [s_in * sw / s_out, res_real], [conv_bound, res_bound])


def quantize_model(model: VO2Net, norm: Normalizer, calibration_x: np.ndarray, *,
                   percentile: float = DEFAULT_PERCENTILE, stride_s: int = 30,
                   max_windows: int = MAX_CALIBRATION_WINDOWS,
                   source: dict | None = None) -> IntModel:
    """Integer-only int8 model of ``model`` (spiking or ANN twin, eval mode).

    calibration_x: raw training windows (N, C, T) in the units of CHANNELS; activation
    scales are the ``percentile`` of |activation| / 127 over (at most ``max_windows`` of)
    them, each seen with an input set drawn by ``mixed_input_sets``. ``source`` is
    recorded in the JSON (e.g. the float weights' file and SHA256)."""
    model.eval()
    cfg = model.config
    x = np.asarray(calibration_x)
    if x.ndim != 3 or x.shape[1] != cfg.n_inputs or len(x) == 0:
        raise ValueError(f"calibration windows must be (N, {cfg.n_inputs}, T), got {x.shape}")
    if len(x) > max_windows:
        x = x[np.linspace(0, len(x) - 1, max_windows).astype(int)]
    # One model serves every input set: its activation ranges must cover them all.
    x = mixed_input_sets(x)
    t_len = x.shape[2]
    arch = {"n_inputs": cfg.n_inputs, "channels": cfg.channels,
            "kernel_size": cfg.kernel_size, "dilations": [int(d) for d in cfg.dilations],
            "hidden": cfg.hidden, "window_s": int(t_len), "stride_s": int(stride_s),
            "spiking": bool(cfg.spiking)}
    mean = np.asarray(norm.x_mean, dtype=np.float64)
    std = np.asarray(norm.x_std, dtype=np.float64)
    # Calibrate on what the engine sees: the int16-encoded inputs.
    z = (encode_inputs(x) / ENCODING["scale"] - mean[None, :, None]) / std[None, :, None]
    blocks = fold_tcn(model.tcn)
    outs = folded_tcn_forward(blocks, z)
    s_z = _amax(z, percentile) / ACT_MAX
    s_blk = [_amax(o, percentile) / ACT_MAX for o in outs]

    tensors: dict[str, np.ndarray] = {}
    requant: dict[str, dict[str, list[int]]] = {}
    scales: dict = {"input": s_z, "blocks": s_blk, "weight": {}, "membrane_unit": {}}
    off = np.round(mean * ENCODING["scale"])
    tensors["input.offset"] = _int32(off, "input.offset")
    in_real = 1.0 / (ENCODING["scale"] * std * s_z)
    in_bound = 32768 + np.abs(tensors["input.offset"].astype(np.int64))  # |q - off|
    requant["input"] = {"mult": [], "shift": []}
    for c in range(len(in_real)):  # one shift per channel
        (r,) = _requant32([in_real[c:c + 1]], [in_bound[c:c + 1]])
        requant["input"]["mult"] += r["mult"]
        requant["input"]["shift"] += r["shift"]
    for b, blk in enumerate(blocks):
        _block(b, blk, s_z if b == 0 else s_blk[b - 1], s_blk[b], tensors, requant, scales)

    fl = float_layers(model)
    s_h = s_blk[-1]
    sd = np.array([norm.vo2_std, norm.vo2max_std], dtype=np.float64)
    target_mean = np.array([norm.vo2_mean, norm.vo2max_mean], dtype=np.float64)
    hq, s_hw = quantize_weights(fl.head_w)
    scales["weight"]["head"] = s_hw.tolist()
    lif_meta: dict = {}
    if cfg.spiking:
        shifts = leak_shifts(cfg.beta)  # both layers share the trained beta
        _lif_layer("lif1", fl.w1, fl.b1, s_h, ACT_BOUND, cfg.threshold, shifts, tensors,
                   lif_meta, scales)
        _lif_layer("lif2", fl.w2, fl.b2, 1.0, 1, cfg.threshold, shifts, tensors,
                   lif_meta, scales)
        head_in = 1.0  # spike counts
    else:
        h = outs[-1]
        a1 = np.maximum(np.einsum("jc,nct->njt", fl.w1, h) + fl.b1[None, :, None], 0.0)
        a2 = np.maximum(np.einsum("jc,nct->njt", fl.w2, a1) + fl.b2[None, :, None], 0.0)
        s_a = [_amax(a1, percentile) / ACT_MAX, _amax(a2, percentile) / ACT_MAX]
        scales["layers"] = s_a
        for i, (w, bias, s_prev) in enumerate(((fl.w1, fl.b1, s_h), (fl.w2, fl.b2, s_a[0])),
                                              start=1):
            wq, sw = quantize_weights(w)
            bq = _int32(bias / (s_prev * sw), f"layer{i}.bias")
            tensors[f"layer{i}.weight"], tensors[f"layer{i}.bias"] = wq, bq
            (requant[f"layer{i}"],) = _requant32([s_prev * sw / s_a[i - 1]],
                                                 [_acc_bound(wq, np.maximum(bq, 0), ACT_BOUND)])
            scales["weight"][f"layer{i}"] = sw.tolist()
        head_in = s_a[1]  # sums of int8 layer-2 activations
    unit = s_hw * head_in * sd / t_len  # mL/min per head accumulator unit
    tensors["head.weight"] = hq
    tensors["head.bias"] = _int32((fl.head_b * sd + target_mean) / unit, "head.bias")
    requant["head"] = _requant(unit)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "kind": "spiking" if cfg.spiking else "ann",
        "arch": arch, "encoding": ENCODING, "output": OUTPUT, "requant": requant,
        "lif": lif_meta, "scales": scales,
        "calibration": {"rule": "max" if percentile >= 100 else f"percentile {percentile:g}",
                        "windows": int(len(x))},
        "source": source or {},
    }
    m = IntModel(meta=meta, tensors=tensors)
    from vo2spike.compress.intmodel import validate

    validate(m, "quantized model")
    return m


def calibration_windows(run_dir: Path, data_dir: Path) -> np.ndarray:
    """Raw training-split windows (N, C, T) of the data a run was trained on (checked)."""
    from vo2spike.config import RunDirError, load_config
    from vo2spike.data.split import split_masks
    from vo2spike.data.windows import prepare_windows

    config = load_config(run_dir)
    dataset, w = prepare_windows(data_dir)
    if config.data.get("sha256") != dataset.source["sha256"]:
        raise RunDirError(f"{data_dir}: not the data {run_dir} was trained on "
                          f"({config.data.get('path')}); calibrate on its training windows")
    return w.x[split_masks(w.person, config.split)["train"]]


def quantize_folder(folder: Path, calibration_x: np.ndarray, *,
                    percentile: float = DEFAULT_PERCENTILE,
                    record: bool = True) -> dict[str, str]:
    """Quantise the spiking model and the twin of a run / compressed model folder and write
    ``int8.*`` and ``int8_twin.*`` into it; with ``record`` also list their SHA256 in its
    config.json ``weights``. Returns {file name: SHA256}."""
    from vo2spike.config import load_config, save_config
    from vo2spike.inference import load_model, weights_file

    folder = Path(folder)
    written: dict[str, str] = {}
    for twin, name in ((False, SPIKING_NAME), (True, TWIN_NAME)):
        model, norm, config = load_model(folder, twin=twin)
        src = weights_file(config, twin)
        m = quantize_model(model, norm, calibration_x, percentile=percentile,
                           stride_s=config.stride_s,
                           source={"weights": src, "sha256": config.weights[src]})
        written.update(save_int_model(m, folder, name))
    if record:
        config = load_config(folder)
        config.weights.update(written)
        save_config(folder, config)
    return written
