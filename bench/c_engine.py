"""Benchmark: the C engine of the shipped compressed model on the emulated Cortex-M4,
stage by stage.

Exports the int8 spiking model of ``MODEL/compressed`` as C, builds it for the Cortex-M4
at -Os, -O2 and -O3 (flash, RAM, QEMU -icount instructions per window, bit-exactness against
the NumPy integer engine), and profiles the -O2 build (the one ``vo2spike compress``
measures) per stage: an exact per-instruction trace on QEMU (``export_c.profile_qemu``) and
valgrind callgrind on the host build. Windows: SIMULATED (a fresh 60-test cohort, seed 0).
Writes bench/results/c_engine.{md,json}. About a minute on 2 cores.

    .venv/bin/python bench/c_engine.py [--model models/default] [--windows 8]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from vo2spike.compress import export_c as ec
from vo2spike.compress.int_engine import encode_inputs, load_folder_model, run_windows
from vo2spike.config import COMPRESSED_DIR
from vo2spike.data.simulate import write_cohort
from vo2spike.data.windows import mixed_input_sets, prepare_windows
from vo2spike.pipeline import REPO

LEVELS = ("-Os", "-O2", "-O3")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--windows", type=int, default=8, help="test windows run on QEMU")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")):
        raise SystemExit("needs arm-none-eabi-gcc and qemu-system-arm (make system-deps)")
    work = REPO / "bench" / "work" / "c_engine"
    cohort = write_cohort(work / "cohort", n_tests=60, seed=args.seed, protocol="mixed",
                          force=True)
    x = prepare_windows(cohort)[1].x
    x = mixed_input_sets(x[np.linspace(0, len(x) - 1, args.windows).astype(int)])
    q = encode_inputs(x)
    m = load_folder_model(args.model / COMPRESSED_DIR)
    ref = run_windows(m, q)
    ref_rows = np.concatenate([ref.out, ref.spikes], axis=1)
    levels = {}
    for opt in LEVELS:
        c_dir = work / opt.strip("-")
        shutil.rmtree(c_dir, ignore_errors=True)
        c_dir.mkdir(parents=True)
        ec.write_c_folder(m, c_dir, q)
        run = ec.run_qemu(ec.build_arm(c_dir, q, opt=opt), icount=True)
        sizes = ec.size_report(c_dir)
        levels[opt] = {"instructions_per_window": float(run.ticks.mean()
                                                        * ec.INSTRUCTIONS_PER_TICK),
                       "flash_bytes": sizes["flash_bytes"], "code_bytes":
                       sizes["engine_code_bytes"], "ram_bytes": sizes["ram_bytes"],
                       "bit_exact_windows": int((run.windows == ref_rows).all(axis=1).sum()),
                       "windows": len(q), "float_symbols": ec.float_symbols(c_dir)}
    c_dir = work / "O2"
    profile = ec.profile_qemu(c_dir, q[:4])
    ec.build_host(c_dir)
    host = ec.profile_callgrind(c_dir, q[:4])
    energy = ec.energy_estimate(levels["-O2"]["instructions_per_window"])
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# C engine on the emulated Cortex-M4 (model {args.model}; {len(q)} SIMULATED "
             "windows, every input set)", "",
             "| build | instructions / window (QEMU -icount) | flash (B) | code (B) | RAM (B) | "
             "bit-exact windows |", "|---|---|---|---|---|---|"]
    for opt, r in levels.items():
        lines.append(f"| arm-none-eabi-gcc {opt} | {r['instructions_per_window']:,.0f} | "
                     f"{r['flash_bytes']:,} | {r['code_bytes']:,} | {r['ram_bytes']:,} | "
                     f"{r['bit_exact_windows']} of {r['windows']} |")
    lines += ["", f"At 64 MHz (-O2; {energy['cycles']:,.0f} cycles at 1.4 cycles per "
              f"instruction, 50 uA/MHz at 3 V): {energy['ms']:.1f} ms and {energy['uJ']:.0f} uJ "
              "per window.", "", "## Per stage, -O2, emulated Cortex-M4 (exact trace, 4 windows)",
              "", ec.profile_table(profile), "",
              "## Per stage type, host build (gcc -O2, x86-64, callgrind, 4 windows)", "",
              ec.profile_table(host, "x86-64 instructions / window")]
    (out / "c_engine.md").write_text("\n".join(lines) + "\n")
    (out / "c_engine.json").write_text(json.dumps(
        {"levels": levels, "profile_qemu": profile, "profile_callgrind": host,
         "energy_64mhz": energy}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
