"""The same weights whatever the machine's thread count: vo2spike fixes torch's and BLAS's
threads (vo2spike.threads) and records them in config.json, with the CPU kernels' instruction
set, which the weights do depend on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vo2spike.data.simulate import write_cohort
from vo2spike.threads import COMPUTE_THREADS, cpu_kernels, fix_threads

EXE = Path(sys.executable).with_name("vo2spike")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _train(data: Path, out: Path, threads: int, **extra_env: str) -> None:
    """`vo2spike train` as on a machine with ``threads`` threads available: the thread
    variables say so, and with one thread the process may use a single CPU."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update({k: str(threads) for k in THREAD_VARS}, **extra_env)
    one_cpu = threads == 1 and hasattr(os, "sched_setaffinity")
    cpu = sorted(os.sched_getaffinity(0))[0] if one_cpu else None
    proc = subprocess.run([str(EXE), "train", "--data", str(data), "--out", str(out),
                           "--epochs", "1", "--seed", "0"], env=env, capture_output=True,
                          text=True, timeout=300,
                          preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if one_cpu
                          else None)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_weights_are_byte_identical_with_1_2_and_4_threads_available(tmp_path):
    data = write_cohort(tmp_path / "cohort", n_tests=14, seed=5)
    weights = {}
    for threads in (1, 2, 4):
        out = tmp_path / f"run-{threads}"
        _train(data, out, threads)
        weights[threads] = [(out / f).read_bytes() for f in ("model.safetensors",
                                                              "twin.safetensors")]
        config = json.loads((out / "config.json").read_text())
        assert config["threads"] == COMPUTE_THREADS
        assert config["cpu_kernels"] == cpu_kernels()
    assert weights[1] == weights[2] == weights[4]


def test_the_cpu_kernels_are_recorded_because_the_weights_follow_them(tmp_path):
    """Plain (non-vectorised) ATen kernels round otherwise than this machine's: other
    weights, and config.json says which kernels made them."""
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("this machine's torch kernels are the plain ones already")
    data = write_cohort(tmp_path / "cohort", n_tests=14, seed=5)
    weights = {}
    for name, env in {"native": {}, "plain": {"ATEN_CPU_CAPABILITY": "default"}}.items():
        out = tmp_path / name
        _train(data, out, COMPUTE_THREADS, **env)
        weights[name] = (out / "model.safetensors").read_bytes()
        recorded = json.loads((out / "config.json").read_text())["cpu_kernels"]
        assert recorded.endswith("DEFAULT") == (name == "plain"), recorded
    assert weights["native"] != weights["plain"]


def test_fix_threads_sets_torch_and_blas():
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    try:
        assert fix_threads(1) == 1 and torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    finally:
        fix_threads(before)
