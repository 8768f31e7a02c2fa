"""The reference integer engine in NumPy (no torch): windows vectorised over N, a streaming
engine for the watch (one 1 Hz sample at a time), and ``Int8Engine`` for ``vo2spike.inference``.

Arithmetic as specified in :mod:`vo2spike.compress.quantize` and
:mod:`vo2spike.compress.fixedpoint`. Dot products of int8 values are computed with float64
matrix products: every partial sum is an integer below 2**53 (at most K x C x 127 x 127 =
1.5e6 here), so each one is exact, in any summation order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vo2spike.compress.fixedpoint import decay, rq, sat8
from vo2spike.compress.intmodel import (
    ENCODING,
    SPIKING_NAME,
    TWIN_NAME,
    IntModel,
    block_inputs,
    has_res_conv,
    load_int_model,
)
from vo2spike.predictions import WindowPredictions

INT16_MIN, INT16_MAX = -32768, 32767


def encode_inputs(x: np.ndarray) -> np.ndarray:
    """Raw float inputs (any shape; raw units of CHANNELS) -> int16 in 0.1 units:
    ``clip(floor(10 x + 0.5), -32768, 32767)``."""
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("inputs hold NaN or infinite values; the integer engine needs "
                         "complete windows")
    q = np.floor(x * ENCODING["scale"] + 0.5)
    return np.clip(q, INT16_MIN, INT16_MAX).astype(np.int16)


def _mm(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Exact integer product: w (O, J) int, x (N, J, T) int -> (N, O, T) int64."""
    return np.matmul(w.astype(np.float64), x.astype(np.float64)).astype(np.int64)


def _conv(x: np.ndarray, w: np.ndarray, dilation: int) -> np.ndarray:
    """Causal dilated conv of int8 values (zeros before t = 0): x (N, I, T), w (O, I, K) ->
    (N, O, T) int64; tap k sees x[t - (K-1-k) d]."""
    n, c_in, t = x.shape
    k = w.shape[2]
    pad = (k - 1) * dilation
    xp = np.concatenate([np.zeros((n, c_in, pad), dtype=np.float64), x.astype(np.float64)],
                        axis=2)
    taps = np.concatenate([xp[:, :, j * dilation:j * dilation + t] for j in range(k)], axis=1)
    return _mm(flat_conv_weight(w), taps)


def flat_conv_weight(w: np.ndarray) -> np.ndarray:
    """Conv weight (O, I, K) -> (O, K*I), column k*I + c (the C engine's layout)."""
    o, i, k = w.shape
    return w.transpose(0, 2, 1).reshape(o, k * i)


def _lif(current: np.ndarray, threshold: np.ndarray, shifts: tuple[int, int]) -> np.ndarray:
    """LIF neurons over time (leak ``fixedpoint.decay``): current (N, H, T) int64 -> spikes
    (N, H, T) int8 (0/1)."""
    u = np.zeros(current.shape[:2], dtype=np.int64)
    spikes = np.empty(current.shape, dtype=np.int8)
    th = threshold.astype(np.int64)[None, :]
    for t in range(current.shape[2]):
        u = decay(u, shifts) + current[:, :, t]
        s = u > th
        u -= s * th
        spikes[:, :, t] = s
    return spikes


@dataclass
class IntOutputs:
    """Integer engine outputs per window."""

    out: np.ndarray  # (N, 2) int32: VO2, VO2max in mL/min
    spikes: np.ndarray  # (N, 2) int32: spikes of LIF1 and LIF2 in the window (twin: 0)


def block_output(acc: np.ndarray, res: np.ndarray, mult: np.ndarray, res_mult: np.ndarray,
                 shift: np.ndarray) -> np.ndarray:
    """A TCN block's int8 output: ``sat8((max(acc, 0) M + r Mr + 2^(n-1)) >> n)``, the
    residual r added inside the one rounding (int64; exact in int32 by construction)."""
    return sat8((np.maximum(acc, 0) * mult + res * res_mult + (np.int64(1) << (shift - 1)))
                >> shift)


def _tcn(m: IntModel, q: np.ndarray) -> np.ndarray:
    """int16 inputs (N, C, T) -> TCN output (N, O, T) int8 values (int64)."""
    mult, shift = m.mult_shift("input")
    off = m.t("input.offset").astype(np.int64)
    a = sat8(rq(q.astype(np.int64) - off[None, :, None], mult[None, :, None],
                shift[None, :, None]))
    for b, d in enumerate(m.arch["dilations"]):
        mult, shift = m.mult_shift(f"block{b}")
        acc = _conv(a, m.t(f"block{b}.weight"), d) + m.t(f"block{b}.bias")[None, :, None]
        rmult, _ = m.mult_shift(f"block{b}.res")
        if has_res_conv(m.arch, b):
            racc = _mm(m.t(f"block{b}.res_weight"), a) + m.t(f"block{b}.res_bias")[None, :, None]
        else:
            racc = a
        a = block_output(acc, racc, mult[None, :, None], rmult[None, :, None],
                         shift[None, :, None])
    return a


def _run_batch(m: IntModel, q: np.ndarray) -> IntOutputs:
    h = _tcn(m, q)
    n = len(q)
    if m.spiking:
        s1 = _lif(_mm(m.t("lif1.weight"), h) * (1 << m.frac_bits(1))
                  + m.t("lif1.bias")[None, :, None], m.t("lif1.threshold"), m.leak_shifts(1))
        s2 = _lif(_mm(m.t("lif2.weight"), s1) * (1 << m.frac_bits(2))
                  + m.t("lif2.bias")[None, :, None], m.t("lif2.threshold"), m.leak_shifts(2))
        counts = s2.sum(axis=2, dtype=np.int64)  # (N, H)
        spikes = np.stack([s1.sum(axis=(1, 2), dtype=np.int64), counts.sum(axis=1)], axis=1)
    else:
        a = h
        for i in (1, 2):
            mult, shift = m.mult_shift(f"layer{i}")
            acc = _mm(m.t(f"layer{i}.weight"), a) + m.t(f"layer{i}.bias")[None, :, None]
            a = sat8(rq(np.maximum(acc, 0), mult[None, :, None], shift[None, :, None]))
        counts = a.sum(axis=2)
        spikes = np.zeros((n, 2), dtype=np.int64)
    mult, shift = m.mult_shift("head")
    acc = counts @ m.t("head.weight").astype(np.int64).T + m.t("head.bias")[None, :]
    out = rq(acc, mult[None, :], shift[None, :])
    return IntOutputs(out.astype(np.int32), spikes.astype(np.int32))


def run_windows(m: IntModel, q: np.ndarray, batch_size: int = 1024) -> IntOutputs:
    """Run the integer model on int16 windows q (N, C, T) -> IntOutputs (N, 2) each."""
    q = np.asarray(q)
    c, t = m.arch["n_inputs"], m.arch["window_s"]
    if q.dtype != np.int16 or q.ndim != 3 or q.shape[1:] != (c, t):
        raise ValueError(f"expected int16 windows (N, {c}, {t}), got {q.dtype} {q.shape}")
    parts = [_run_batch(m, q[i:i + batch_size]) for i in range(0, len(q), batch_size)]
    if not parts:
        return IntOutputs(np.zeros((0, 2), np.int32), np.zeros((0, 2), np.int32))
    return IntOutputs(np.concatenate([p.out for p in parts]),
                      np.concatenate([p.spikes for p in parts]))


@dataclass
class StreamResult:
    """One streaming estimate: the window of the ``window_s`` samples ending at ``end``.
    Fields are ints for a single stream, (B,) int arrays for B streams pushed together."""

    end: int  # index of the window's last sample (0-based, since the stream started)
    vo2: int | np.ndarray  # mL/min
    vo2max: int | np.ndarray  # mL/min
    spikes1: int | np.ndarray  # spikes of LIF1 in the window (twin: 0)
    spikes2: int | np.ndarray


class _Slot:
    """The state of one window being computed step by step (what the C engine keeps), for
    B streams at once."""

    def __init__(self, m: IntModel, n: int) -> None:
        a, k = m.arch, m.arch["kernel_size"]
        self.rings = [np.zeros((n, (k - 1) * d + 1, block_inputs(a, b)), dtype=np.int64)
                      for b, d in enumerate(a["dilations"])]
        self.u1 = np.zeros((n, a["hidden"]), dtype=np.int64)
        self.u2 = np.zeros((n, a["hidden"]), dtype=np.int64)
        self.counts = np.zeros((n, a["hidden"]), dtype=np.int64)
        self.spikes = np.zeros((n, 2), dtype=np.int64)
        self.pos = [0] * len(self.rings)
        self.t, self.active = 0, False

    def reset(self) -> None:
        for r in self.rings:
            r[:] = 0
        for v in (self.u1, self.u2, self.counts, self.spikes):
            v[:] = 0
        self.pos = [0] * len(self.rings)
        self.t, self.active = 0, True


def _dot(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact integer product x (B, J) @ w.T, w (O, J) -> (B, O) int64 (see module doc)."""
    return (x.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)


class IntStream:
    """Streaming integer engine: push one int16 sample (C,) per second; after the first
    ``window_s`` samples and then every ``stride_s`` samples, :meth:`push` returns the
    estimate for the last ``window_s`` samples, bit for bit what :func:`run_windows` gives
    for that window. Every window is computed step by step as its samples arrive
    (``window_s / stride_s`` windows in flight), so the work per sample is constant.

    With ``streams=B`` it runs B independent streams in lockstep: push (B, C) samples."""

    def __init__(self, m: IntModel, streams: int = 1) -> None:
        self.m, self.streams = m, streams
        a = m.arch
        self.T, self.stride = a["window_s"], a["stride_s"]
        self.slots = [_Slot(m, streams) for _ in range(self.T // self.stride)]
        self.n = 0
        self._w = [flat_conv_weight(m.t(f"block{b}.weight"))
                   for b in range(len(a["dilations"]))]
        self._t = {k: v.astype(np.int64) for k, v in m.tensors.items()}
        self._rq = {s: m.mult_shift(s) for s in m.meta["requant"]}

    def push(self, sample: np.ndarray) -> StreamResult | None:
        """Feed one int16 sample (C,) (0.1 units, as :func:`encode_inputs`); (B, C) for B
        streams."""
        sample = np.asarray(sample)
        shape = (self.m.arch["n_inputs"],) if self.streams == 1 and sample.ndim == 1 else \
            (self.streams, self.m.arch["n_inputs"])
        if sample.dtype != np.int16 or sample.shape != shape:
            raise ValueError(f"expected an int16 sample of shape {shape}, got {sample.dtype} "
                             f"{sample.shape}")
        if self.n % self.stride == 0:
            self.slots[(self.n // self.stride) % len(self.slots)].reset()
        result = None
        for slot in self.slots:
            if not slot.active:
                continue
            self._step(slot, sample.reshape(self.streams, -1))
            if slot.t == self.T:
                result = self._readout(slot)
                slot.active = False
        self.n += 1
        return result

    def _step(self, s: _Slot, sample: np.ndarray) -> None:
        m, t, arch = self.m, self._t, self.m.arch
        k = arch["kernel_size"]
        mult, shift = self._rq["input"]
        a = sat8(rq(sample.astype(np.int64) - t["input.offset"], mult, shift))  # (B, C)
        for b, d in enumerate(arch["dilations"]):
            ring, p = s.rings[b], s.pos[b]
            length = ring.shape[1]
            ring[:, p] = a
            taps = np.concatenate([ring[:, (p - (k - 1 - j) * d) % length] for j in range(k)],
                                  axis=1)  # (B, K*C), column j*C + c
            s.pos[b] = (p + 1) % length
            mult, shift = self._rq[f"block{b}"]
            rmult, _ = self._rq[f"block{b}.res"]
            racc = _dot(a, t[f"block{b}.res_weight"]) + t[f"block{b}.res_bias"] \
                if has_res_conv(arch, b) else a
            a = block_output(_dot(taps, self._w[b]) + t[f"block{b}.bias"], racc, mult, rmult,
                             shift)
        if m.spiking:
            th1, th2 = t["lif1.threshold"], t["lif2.threshold"]
            s.u1 = decay(s.u1, m.leak_shifts(1)) + _dot(a, t["lif1.weight"]) \
                * (1 << m.frac_bits(1)) \
                + t["lif1.bias"]
            s1 = s.u1 > th1
            s.u1 -= s1 * th1
            # LIF2's current: the sum of the weight columns of the inputs that spiked.
            s.u2 = decay(s.u2, m.leak_shifts(2)) + _dot(s1, t["lif2.weight"]) \
                * (1 << m.frac_bits(2)) \
                + t["lif2.bias"]
            s2 = s.u2 > th2
            s.u2 -= s2 * th2
            s.counts += s2
            s.spikes += np.stack([s1.sum(axis=1), s2.sum(axis=1)], axis=1)
        else:
            for i in (1, 2):
                mult, shift = self._rq[f"layer{i}"]
                a = sat8(rq(np.maximum(_dot(a, t[f"layer{i}.weight"]) + t[f"layer{i}.bias"], 0),
                            mult, shift))
            s.counts += a
        s.t += 1

    def _readout(self, s: _Slot) -> StreamResult:
        mult, shift = self._rq["head"]
        out = rq(s.counts @ self._t["head.weight"].T + self._t["head.bias"], mult, shift)
        if self.streams == 1:
            return StreamResult(self.n, int(out[0, 0]), int(out[0, 1]), int(s.spikes[0, 0]),
                                int(s.spikes[0, 1]))
        return StreamResult(self.n, out[:, 0].astype(np.int32), out[:, 1].astype(np.int32),
                            s.spikes[:, 0].astype(np.int32), s.spikes[:, 1].astype(np.int32))


def config_weights(model_dir: Path) -> dict[str, str] | None:
    """The ``weights`` dict (file -> SHA256) of a model folder's config.json, read without
    vo2spike.config (which imports torch); None when there is no readable config.json."""
    try:
        data = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    w = data.get("weights") if isinstance(data, dict) else None
    return w if isinstance(w, dict) else None


def load_folder_model(model_dir: Path, twin: bool = False,
                      expected: dict[str, str] | None = None) -> IntModel:
    """The int8 model (spiking, or the twin) of a compressed model folder. When the folder's
    config.json lists weights, the int8 files must be among them, with those checksums."""
    name = TWIN_NAME if twin else SPIKING_NAME
    if expected is None:
        expected = config_weights(model_dir)
        if expected is not None and f"{name}.safetensors" not in expected:
            from vo2spike.compress.intmodel import fail

            fail(f"{Path(model_dir) / (name + '.safetensors')}: not listed in config.json's "
                   f"weights ({', '.join(sorted(expected)) or 'none'}): not a compressed model "
                   "folder; create one with `vo2spike compress`")
    return load_int_model(model_dir, name, expected)


def predictions(m: IntModel, o: IntOutputs) -> WindowPredictions:
    """WindowPredictions (float mL/min) from integer outputs."""
    rates = {}
    if m.spiking and len(o.out):
        per_window = m.arch["hidden"] * m.arch["window_s"]
        rates = {"lif1": float(o.spikes[:, 0].sum()) / (per_window * len(o.out)),
                 "lif2": float(o.spikes[:, 1].sum()) / (per_window * len(o.out))}
    return WindowPredictions(o.out[:, 0].astype(np.float64), o.out[:, 1].astype(np.float64),
                             rates)


class Int8Engine:
    """The NumPy integer engine of a compressed model folder (``int8.*``; ``int8_twin.*``
    with ``twin``)."""

    name = "int8"

    def __init__(self, model_dir: Path, twin: bool = False,
                 expected: dict[str, str] | None = None) -> None:
        self.model = load_folder_model(model_dir, twin, expected)

    def predict(self, x: np.ndarray) -> WindowPredictions:
        """Window VO2 and VO2max (mL/min) of raw windows x (N, C, T)."""
        return predictions(self.model, run_windows(self.model, encode_inputs(x)))
