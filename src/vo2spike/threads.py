"""A fixed number of compute threads for torch (intra-op, OpenMP) and BLAS (numpy, through
threadpoolctl), and the CPU kernels' instruction set, recorded.

A float sum split between 2 threads rounds differently from one split between 4, so torch's
default (one thread per core) would make the weights depend on the core count. vo2spike uses
:data:`COMPUTE_THREADS` everywhere, whatever the machine has; a run records it in
config.json (``threads``). The models in models/ were trained with 2 threads.

The thread count is not the only thing: torch picks its vectorised kernels (ATen, oneDNN)
for the CPU's instruction set, and an AVX2 kernel rounds differently from an AVX-512 or a
plain one. So the same command gives byte-identical weights on machines whose
:func:`cpu_kernels` agree, and weights that differ in the last bits (and after 40 epochs,
in the figures) where they do not; a run records it in config.json (``cpu_kernels``).
Measured: one epoch of ``vo2spike train`` gives other weights under
``ATEN_CPU_CAPABILITY=default`` or ``ONEDNN_MAX_CPU_ISA=SSE41`` than with this machine's
AVX2.
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


def cpu_kernels() -> str:
    """The machine and the instruction set of torch's CPU kernels, e.g. "x86_64 AVX2"
    (``torch.backends.cpu.get_cpu_capability``): runs agree to the byte only where it
    agrees."""
    import platform

    import torch

    return f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"
