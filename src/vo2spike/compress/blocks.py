"""Block sparsity of the multiply-accumulate layers (torch-free): the layout that pruning
selects and that the C engine computes with.

The C engine's matrix-vector kernel multiplies blocks of ``BLOCK_ROWS`` x ``BLOCK_COLS``
weights (2 output rows x 4 adjacent input columns): one block is two 32-bit weight loads,
one pair of 32-bit input loads and four dual 16-bit multiply-accumulates (SMLAD) on a
Cortex-M4. Pruning therefore keeps or removes whole blocks of these layers: the TCN
convolutions, block 0's 1x1 residual, LIF1 (the twin: both hidden layers). LIF2 (driven by
0/1 spikes, no multiplication) and the heads are pruned weight by weight.

Columns follow the engines' layout: a conv weight (O, I, K) becomes (O, K x I4), column
``k x I4 + c``, where I4 is I rounded up to a multiple of ``BLOCK_COLS`` (the padded input
channels hold zero weights), so that every tap starts a block; a Linear weight (O, I)
becomes (O, I4).
"""

from __future__ import annotations

import numpy as np

BLOCK_ROWS = 2
BLOCK_COLS = 4


def padded(n: int, multiple: int = BLOCK_COLS) -> int:
    """n rounded up to a multiple of ``multiple``."""
    return -(-n // multiple) * multiple


def flat_columns(w: np.ndarray) -> np.ndarray:
    """Conv (O, I, K) or Linear (O, I) weight -> the (O', C) matrix of the block layout:
    rows padded to a multiple of BLOCK_ROWS, input channels to a multiple of BLOCK_COLS
    (zeros), column ``k x I4 + c``."""
    w = np.asarray(w)
    if w.ndim == 2:
        w = w[:, :, None]
    o, i, k = w.shape
    i4, o2 = padded(i), padded(o, BLOCK_ROWS)
    out = np.zeros((o2, k, i4), dtype=w.dtype)
    out[:o, :, :i] = w.transpose(0, 2, 1)
    return out.reshape(o2, k * i4)


def unflatten(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`flat_columns` for a weight of ``shape`` (padding dropped)."""
    o, i = shape[0], shape[1]
    k = shape[2] if len(shape) == 3 else 1
    w = flat.reshape(flat.shape[0], k, -1)[:o, :, :i].transpose(0, 2, 1)
    return w if len(shape) == 3 else w[:, :, 0]


def block_view(flat: np.ndarray) -> np.ndarray:
    """(O', C) block-layout matrix -> (O'/R, C/4, R, 4): group g, column block j."""
    o2, c = flat.shape
    return flat.reshape(o2 // BLOCK_ROWS, BLOCK_ROWS, c // BLOCK_COLS,
                        BLOCK_COLS).transpose(0, 2, 1, 3)


def block_importance(w: np.ndarray) -> np.ndarray:
    """Each weight's pruning score: the mean |w| of its block (same shape as ``w``), so
    that an L1 ranking of these scores keeps or removes whole blocks and ranks blocks
    against single weights of other layers fairly (by mean magnitude)."""
    flat = np.abs(flat_columns(np.asarray(w, dtype=np.float64)))
    view = block_view(flat)
    full = np.broadcast_to(view.mean(axis=(2, 3), keepdims=True), view.shape)
    o2, c = flat.shape
    return np.ascontiguousarray(unflatten(full.transpose(0, 2, 1, 3).reshape(o2, c),
                                          np.shape(w)))


def sparse_blocks(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An int8 weight -> its non-zero blocks: (count per row group uint8 (G,),
    column-block index uint8 (n,), block weights int8 (n, R, 4)), groups in order and
    blocks in column order within each."""
    blocks = block_view(flat_columns(w))  # (G, J, R, 4)
    keep = (blocks != 0).any(axis=(2, 3))  # (G, J)
    if blocks.shape[1] > 256:
        raise ValueError(f"{blocks.shape[1]} column blocks: at most 256 fit a uint8 index")
    g, j = np.nonzero(keep)
    return (keep.sum(axis=1).astype(np.uint8), j.astype(np.uint8),
            blocks[g, j].astype(np.int8))


def block_fraction(w: np.ndarray) -> float:
    """Fraction (0..1) of the blocks of ``w`` that hold a non-zero weight."""
    keep = (block_view(flat_columns(w)) != 0).any(axis=(2, 3))
    return float(keep.mean())
