"""Benchmark: speed of the inference engines of a compressed model, on the host.

Times the float PyTorch model, the NumPy integer engine (int8) and the compiled C engine
(host build, gcc -O2) on the same simulated windows, and the streaming API (one 1 Hz sample
at a time), and reads the Cortex-M4 figures of the compressed model's compression.json.
Writes bench/results/engines.{md,json}. About a minute on 2 cores.

    .venv/bin/python bench/engines.py [--model models/default] [--windows 2000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from vo2spike.compress.int_engine import Int8Engine, IntStream, encode_inputs
from vo2spike.config import COMPRESSED_DIR
from vo2spike.data.simulate import write_cohort
from vo2spike.data.windows import prepare_windows
from vo2spike.engines import load_engine
from vo2spike.pipeline import REPO


def timed(fn, repeat: int = 3) -> float:
    """Best wall-clock seconds of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--windows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = REPO / "bench" / "work" / "engines"
    cohort = write_cohort(work / "cohort", n_tests=60, seed=args.seed, protocol="mixed",
                          force=True)
    x = prepare_windows(cohort)[1].x
    x = np.concatenate([x] * (args.windows // len(x) + 1))[:args.windows]
    rows = {}
    for name in ("float", "int8", "c"):
        if name == "c" and shutil.which("gcc") is None:
            continue
        engine = load_engine(args.model, name)
        engine.predict(x[:8])  # build / warm up
        s = timed(lambda e=engine: e.predict(x))
        rows[name] = {"seconds": s, "windows_per_s": len(x) / s}
    m = Int8Engine(args.model / COMPRESSED_DIR).model
    stream = IntStream(m)
    samples = encode_inputs(x[:20]).transpose(0, 2, 1).reshape(-1, x.shape[1])
    t0 = time.perf_counter()
    for s in samples:
        stream.push(s)
    seconds = time.perf_counter() - t0
    rows["int8 streaming"] = {"seconds": seconds, "samples_per_s": len(samples) / seconds}
    report = json.loads((args.model / COMPRESSED_DIR / "compression.json").read_text())
    c = report.get("c_engine", {})
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# Engine speed (host, {len(x)} SIMULATED windows of 60 s; model {args.model})",
             "", "| engine | seconds | windows/s |", "|---|---|---|"]
    for k, r in rows.items():
        rate = (f"{r['windows_per_s']:,.0f}" if "windows_per_s" in r
                else f"{r['samples_per_s']:,.0f} samples/s")
        lines.append(f"| {k} | {r['seconds']:.2f} | {rate} |")
    if "sizes" in c:
        lines += ["", "Cortex-M4 (from compression.json): "
                  f"flash {c['sizes']['flash_bytes']:,} B, RAM {c['sizes']['ram_bytes']:,} B"
                  + (f", {c['qemu']['instructions_per_window']:,.0f} instructions per window "
                     "(QEMU -icount)" if "qemu" in c else "") + "."]
    (out / "engines.md").write_text("\n".join(lines) + "\n")
    (out / "engines.json").write_text(json.dumps({"engines": rows, "c_engine": c}, indent=2,
                                                 default=str) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
