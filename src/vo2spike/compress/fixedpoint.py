"""The integer arithmetic of the int8 model: the one spec that the NumPy engine and the C
engine both follow (torch-free).

- ``rq(x, M, n) = (x * M + 2**(n-1)) >> n``: x int32, M int32 in [2**30, 2**31) (fewer bits
  only when the real multiplier is below 2**-32), 1 <= n <= 62; the product and the sum are
  64-bit, ``>>`` is an arithmetic shift (floor), so ties round up (towards +inf). It stands
  for multiplying by the real number ``M * 2**-n`` and rounding to an integer.
- ``sat8(x) = min(127, max(-127, x))``: int8 activations are symmetric (-127..127).
- LIF decay: ``decay(U) = (U * BETA_Q15 + 2**14) >> 15`` with ``BETA_Q15 = round(beta * 2**15)``
  (64-bit product, arithmetic shift).
"""

from __future__ import annotations

import math

import numpy as np

#: Activations are int8 in -ACT_MAX..ACT_MAX; weights in -WEIGHT_MAX..WEIGHT_MAX.
ACT_MAX = 127
WEIGHT_MAX = 127
#: Q format of the LIF decay constant beta.
BETA_BITS = 15
MAX_SHIFT = 62


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
    """Saturate to the symmetric int8 range -127..127 (int64 kept)."""
    return np.clip(x, -ACT_MAX, ACT_MAX)


def decay(u: np.ndarray, beta_q15: int) -> np.ndarray:
    """LIF leak ``(u * beta_q15 + 2**14) >> 15`` in int64."""
    return (np.asarray(u, dtype=np.int64) * beta_q15 + (1 << (BETA_BITS - 1))) >> BETA_BITS


def quantize_weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8: ``s = max|w| / 127`` over each output channel (axis
    0), ``q = clip(round(w / s), -127, 127)``. Returns (q int8 same shape, s float64 (O,)).

    An all-zero channel gets s = 1 (its q stays 0); exact zeros (pruned weights) stay 0."""
    w = np.asarray(w, dtype=np.float64)
    flat = np.abs(w.reshape(w.shape[0], -1))
    s = flat.max(axis=1) / WEIGHT_MAX
    s = np.where(s > 0, s, 1.0)
    q = np.clip(np.round(w / s.reshape((-1,) + (1,) * (w.ndim - 1))), -WEIGHT_MAX, WEIGHT_MAX)
    return q.astype(np.int8), s
