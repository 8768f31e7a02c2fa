"""Benchmark: how well do simulation-trained models transfer to real recordings?

For each simulator setting (calibration x protocol): simulate the cohort of the real Malaga
demographics, train the spiking model and its twin, then run leave-one-person-out on the
real Yo-Yo recordings. Writes bench/results/sim_transfer.{json,md}. About 12 minutes on
2 cores.

    .venv/bin/python bench/sim_transfer.py [--n-tests N] [--seed S] \
        [--settings foundation-mixed ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from vo2spike.cli import REPO, SHARED_DEMOGRAPHICS, SHARED_YOYO
from vo2spike.crossval import crossval_run
from vo2spike.data.k5 import convert_yoyo
from vo2spike.data.simulate import write_cohort
from vo2spike.data.windows import prepare_windows
from vo2spike.train import TrainConfig, train_run

SETTINGS = [("foundation", "ramp"), ("foundation", "mixed"), ("k5-matched", "ramp"),
            ("k5-matched", "mixed")]
ROWS = ["spiking, simulation only", "spiking TCN+LIF (sim + real)", "ANN twin (sim + real)"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-tests", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "work")
    ap.add_argument("--settings", nargs="*", default=[f"{c}-{p}" for c, p in SETTINGS],
                    help="subset of calibration-protocol settings to run")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    real_dir = args.work / "yoyo"
    convert_yoyo(SHARED_YOYO, real_dir, force=True)
    real_ds, real = prepare_windows(real_dir)
    results = []
    for calibration, protocol in SETTINGS:
        t0 = time.time()
        name = f"{calibration}-{protocol}"
        if name not in args.settings:
            continue
        sim_dir = write_cohort(args.work / f"sim-{name}", n_tests=args.n_tests,
                               demographics_csv=SHARED_DEMOGRAPHICS, protocol=protocol,
                               seed=args.seed, calibration=calibration, force=True)
        prepared = prepare_windows(sim_dir)
        run = args.work / f"run-{name}"
        train_run(sim_dir, run, TrainConfig(seed=args.seed), force=True, prepared=prepared)
        r = crossval_run(run, real, real_ds.source["kind"], prepared[1], run / "real_cv",
                         force=True)
        row = {"calibration": calibration, "protocol": protocol,
               "seconds": round(time.time() - t0)}
        for m in ROWS:
            row[m] = {"vo2_r2": r["models"][m]["vo2_ml_min"]["r2"],
                      "vo2_rmse": r["models"][m]["vo2_ml_min"]["rmse"],
                      "vo2max_mape": r["models"][m]["vo2max_ml_min"]["mape"]}
        results.append(row)
        print(json.dumps(row), flush=True)
    (out / "sim_transfer.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["Leave-one-person-out on the REAL Yo-Yo recordings "
             f"({real_ds.source['kind']}); models trained on SIMULATED cohorts "
             f"(real Malaga demographics, {args.n_tests or 'all 992'} tests, seed {args.seed}).",
             "", "| simulator | model | VO2 R² | VO2 RMSE (mL/min) | VO2max MAPE |",
             "|---|---|---|---|---|"]
    for row in results:
        for m in ROWS:
            v = row[m]
            lines.append(f"| {row['calibration']}, {row['protocol']} | {m} | {v['vo2_r2']:.3f} "
                         f"| {v['vo2_rmse']:.0f} | {v['vo2max_mape']:.1f}% |")
    (out / "sim_transfer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
