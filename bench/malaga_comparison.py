"""Benchmark: the simulator's graded tests against the real Malaga cohort's aggregates.

Simulates `vo2spike simulate --protocol ramp` with the real Malaga demographics (992 tests)
for each calibration and prints, per quintile of the top speed, the REAL vs SIMULATED
end-of-test VO2, the RMSE and bias of the VO2 / HR / RR curves and the largest difference
of the fraction of tests still running, with issue 10's targets. Writes
bench/results/malaga_comparison.{md,json,png}. About 30 s per calibration on 2 cores.

    .venv/bin/python bench/malaga_comparison.py [--calibrations foundation malaga] [--seed S]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vo2spike.data.malaga import (
    TARGETS,
    comparison_plot,
    malaga_comparisons,
    malaga_report,
)
from vo2spike.data.simulate import CALIBRATIONS
from vo2spike.pipeline import REPO, SHARED_DEMOGRAPHICS, SHARED_MALAGA


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--malaga", type=Path, default=SHARED_MALAGA)
    ap.add_argument("--demographics", type=Path, default=SHARED_DEMOGRAPHICS)
    ap.add_argument("--calibrations", nargs="+", default=sorted(CALIBRATIONS),
                    choices=sorted(CALIBRATIONS))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    demo = args.demographics if args.demographics.is_file() else None
    comps = malaga_comparisons(args.malaga, demo, seed=args.seed,
                               calibrations=[CALIBRATIONS[c] for c in args.calibrations])
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    text = malaga_report(comps, args.malaga, demo, args.seed)
    met = {n: [k for k, lim in TARGETS.items() if c.summary[k] > lim] for n, c in comps.items()}
    text += "\nTargets missed: " + "; ".join(
        f"{n}: {', '.join(m) if m else 'none'}" for n, m in met.items()) + "\n"
    (out / "malaga_comparison.md").write_text(text)
    (out / "malaga_comparison.json").write_text(json.dumps(
        {n: {"summary": c.summary,
             "by_quintile": c.by_quintile.round(3).reset_index().to_dict("records")}
         for n, c in comps.items()}, indent=2) + "\n")
    comparison_plot(comps, out / "malaga_comparison.png")
    print(text)


if __name__ == "__main__":
    main()
