"""The integer arithmetic of the int8 model: the one spec that the NumPy engine and the C
engine both follow (torch-free).

- ``rq(x, M, n) = (x * M + 2**(n-1)) >> n`` (``>>`` an arithmetic shift, so ties round up):
  multiplying by the real number ``M * 2**-n`` and rounding to an integer.
  - 32-bit requantisation (input standardisation, TCN blocks, twin layers): M is at most
    ``MULT16_MAX`` (stored as int16; a residual's is int32) and n is chosen, from a bound
    on |x| that the weights give, so that ``|x| * M + 2**(n-1)`` stays below 2**31: the
    product and the sum are then exact in int32, and the C engine computes them with one
    32-bit multiply-accumulate. A TCN block adds its residual inside the same rounding,
    with one shift per block:
    ``out = sat8((max(acc, 0) * M[o] + r * Mr[o] + 2**(n-1)) >> n)``.
  - the heads (once per window): M in [2**30, 2**31), a 64-bit product.
- ``sat8(x) = min(127, max(-128, x))`` (one SSAT on the Cortex-M4); activation scales are
  set by 127 (``ACT_MAX``), weights are symmetric (-127..127).
- LIF leak: ``decay(U) = U - (U >> k1) - (U >> k2)`` (beta = 1 - 2**-k1 - 2**-k2; k2 = 0:
  one term): two shifted subtracts (two Cortex-M4 instructions), no multiply; the shifts
  per layer (``leak_shifts`` of the trained beta: 0.9 -> 4, 5).
"""

from __future__ import annotations

import math

import numpy as np

#: Activation scales map the calibrated range to ACT_MAX; activations are int8 in
#: ACT_MIN..ACT_MAX (so |activation| <= ACT_BOUND); weights in -WEIGHT_MAX..WEIGHT_MAX.
ACT_MAX = 127
ACT_MIN = -128
ACT_BOUND = 128
WEIGHT_MAX = 127
#: Largest multiplier of the 32-bit requantisation (it is stored as int16).
MULT16_MAX = (1 << 15) - 1
INT32_MAX = (1 << 31) - 1
MAX_SHIFT = 62
#: Largest shift of the shift-and-add leak.
MAX_LEAK_SHIFT = 15


def quantize_multiplier(m: float) -> tuple[int, int]:
    """Real multiplier m > 0 -> (M, n) with m ~= M * 2**-n, M in [2**30, 2**31), 1 <= n <= 62.

    For m < 2**-32 the shift is capped at 62 and M keeps fewer bits (M may then be 0)."""
    if not (m > 0 and math.isfinite(m)):
        raise ValueError(f"requantisation multiplier must be positive and finite, got {m!r}")
    mant, exp = math.frexp(m)  # m = mant * 2**exp, mant in [0.5, 1)
    mult = round(mant * (1 << 31))
    if mult == 1 << 31:  # rounding reached the next power of two
        mult, exp = 1 << 30, exp + 1
    shift = 31 - exp
    if shift > MAX_SHIFT:
        mult, shift = round(m * 2.0**MAX_SHIFT), MAX_SHIFT
    if shift < 1:
        raise ValueError(f"requantisation multiplier {m!r} is too large (>= 2**30)")
    return int(mult), int(shift)


def rq(x: np.ndarray, mult: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """``(x * mult + 2**(shift-1)) >> shift`` in int64 (x: int32-range values; broadcasts)."""
    x = np.asarray(x, dtype=np.int64)
    mult = np.asarray(mult, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    return (x * mult + (np.int64(1) << (shift - 1))) >> shift


def sat8(x: np.ndarray) -> np.ndarray:
    """Saturate to int8, -128..127 (int64 kept)."""
    return np.clip(x, ACT_MIN, ACT_MAX)


def decay(u: np.ndarray, shifts: tuple[int, int]) -> np.ndarray:
    """LIF leak ``u - (u >> k1) - (u >> k2)`` in int64 (k2 = 0: ``u - (u >> k1)``)."""
    u = np.asarray(u, dtype=np.int64)
    k1, k2 = shifts
    return u - (u >> k1) - ((u >> k2) if k2 else 0)


def multipliers32(reals: list[np.ndarray], bounds: list[np.ndarray]) -> tuple[
        list[np.ndarray], int]:
    """32-bit requantisation with one shift: real multipliers ``reals[i]`` (per row, > 0)
    applied to values bounded by ``bounds[i]`` (per row, |x| <= bound) and summed ->
    (int multipliers per term, n). n is the largest in 1..31 with the first term's M <=
    MULT16_MAX (stored as int16; the others, a residual's, are int32) and
    ``sum_i bound_i * M_i + 2**(n-1) <= 2**31 - 1`` on every row (exact in int32)."""
    reals = [np.asarray(r, dtype=np.float64) for r in reals]
    bounds = [np.asarray(b, dtype=np.float64) for b in bounds]
    if any(not (np.isfinite(r).all() and (r > 0).all()) for r in reals):
        raise ValueError("requantisation multipliers must be positive and finite")
    for n in range(31, 0, -1):
        mults = [np.round(r * 2.0**n) for r in reals]
        peak = sum(b * m for b, m in zip(bounds, mults, strict=True)) + 2.0**(n - 1)
        if float(mults[0].max(initial=0)) <= MULT16_MAX and \
                float(np.max(peak, initial=0)) <= INT32_MAX:
            return [m.astype(np.int64) for m in mults], n
    raise ValueError("no 32-bit requantisation fits these bounds (values too large)")


def leak_shifts(beta: float) -> tuple[int, int]:
    """The shift-and-add LIF leak nearest to ``beta``: (k1, k2) of
    ``U - (U >> k1) - (U >> k2)`` (k2 = 0: no second term), beta = 1 - 2**-k1 - 2**-k2,
    1 <= k1 < k2 <= MAX_LEAK_SHIFT: 0.9 -> (4, 5), beta 0.90625."""
    if not 0.0 < beta < 1.0:
        raise ValueError(f"LIF beta must be in (0, 1), got {beta}")
    options = [(k, 0) for k in range(1, MAX_LEAK_SHIFT + 1)] + [
        (k1, k2) for k1 in range(1, MAX_LEAK_SHIFT) for k2 in range(k1 + 1, MAX_LEAK_SHIFT + 1)]
    return min(options, key=lambda ks: (abs(shift_beta(ks) - beta), ks[1] > 0))


def shift_beta(shifts: tuple[int, int]) -> float:
    """The beta of the leak ``U - (U >> k1) - (U >> k2)``: 1 - 2**-k1 - 2**-k2 (k2 = 0:
    no second term)."""
    k1, k2 = shifts
    return 1.0 - 2.0**-k1 - (2.0**-k2 if k2 else 0.0)


def quantize_weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8: ``s = max|w| / 127`` over each output channel (axis
    0), ``q = clip(round(w / s), -127, 127)``. Returns (q int8 same shape, s float64 (O,)).

    Exact zeros (pruned weights) stay 0."""
    w = np.asarray(w, dtype=np.float64)
    flat = np.abs(w.reshape(w.shape[0], -1))
    s = flat.max(axis=1) / WEIGHT_MAX
    # An all-zero channel (pruned away) takes the layer's largest scale, so that its bias
    # and its requantisation stay in the range of the other channels'.
    s = np.where(s > 0, s, s.max() if (s > 0).any() else 1.0)
    q = np.clip(np.round(w / s.reshape((-1,) + (1,) * (w.ndim - 1))), -WEIGHT_MAX, WEIGHT_MAX)
    return q.astype(np.int8), s
