"""A fixed number of compute threads for torch (intra-op, OpenMP) and BLAS (numpy, through
threadpoolctl).

A float sum split between 2 threads rounds differently from one split between 4, so torch's
default (one thread per core) would make the weights depend on the machine. vo2spike uses
:data:`COMPUTE_THREADS` everywhere, whatever the machine has; a run records it in
config.json (``threads``). The models in models/ were trained with 2 threads.
"""

from __future__ import annotations

COMPUTE_THREADS = 2


def fix_threads(n: int = COMPUTE_THREADS) -> int:
    """Use ``n`` threads for torch and for the BLAS / OpenMP libraries loaded; returns n."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(limits=n)
    return n
