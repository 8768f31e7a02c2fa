"""Benchmark: how well do simulation-trained models transfer to real recordings?

For each simulator setting (calibration x protocol): simulate the cohort of the real Malaga
demographics, train the spiking model and its twin, then run leave-one-person-out on the
real Yo-Yo recordings. Writes bench/results/sim_transfer.{json,md}. About 18 minutes on
2 cores for one seed (six settings: foundation, k5-matched and malaga, each ramp and mixed).

With several ``--seeds`` each setting is repeated with a fresh simulated cohort, split and
initialisation per seed, and the table gives mean ± SD over the seeds: how much of a
difference between models or settings is noise (about 3 minutes per setting and seed).

    .venv/bin/python bench/sim_transfer.py [--n-tests N] [--seeds S [S ...]] \
        [--settings foundation-mixed ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

from vo2spike.config import TrainConfig
from vo2spike.crossval import MODELS, crossval_run
from vo2spike.data.k5 import convert_yoyo
from vo2spike.data.simulate import write_cohort
from vo2spike.data.windows import prepare_windows
from vo2spike.metrics import label
from vo2spike.pipeline import REPO, SHARED_DEMOGRAPHICS, SHARED_YOYO
from vo2spike.train import train_run

SETTINGS = [("foundation", "ramp"), ("foundation", "mixed"), ("k5-matched", "ramp"),
            ("k5-matched", "mixed"), ("malaga", "ramp"), ("malaga", "mixed")]
METRICS = [("vo2_r2", "{:.3f}"), ("vo2_rmse", "{:.0f}"), ("vo2max_mape", "{:.1f}%")]


def _cell(values: list[float], fmt: str) -> str:
    """One value, or mean ± SD of several."""
    if len(values) == 1:
        return fmt.format(values[0])
    sd = fmt.format(statistics.stdev(values)).rstrip("%")
    return f"{fmt.format(statistics.mean(values))} ± {sd}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-tests", type=int, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="one run per seed (cohort, split and initialisation)")
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
        name = f"{calibration}-{protocol}"
        if name not in args.settings:
            continue
        for seed in args.seeds:
            t0 = time.time()
            sim_dir = write_cohort(args.work / f"sim-{name}", n_tests=args.n_tests,
                                   demographics_csv=SHARED_DEMOGRAPHICS, protocol=protocol,
                                   seed=seed, calibration=calibration, force=True)
            prepared = prepare_windows(sim_dir)
            run = args.work / f"run-{name}"
            train_run(sim_dir, run, TrainConfig(), seed=seed, force=True, prepared=prepared)
            r = crossval_run(run, real, real_ds.source["kind"], prepared[1], run / "real_cv",
                             force=True)
            row = {"calibration": calibration, "protocol": protocol, "seed": seed,
                   "seconds": round(time.time() - t0)}
            for m in MODELS:
                row[m] = {"vo2_r2": r["models"][m]["vo2_ml_min"]["r2"],
                          "vo2_rmse": r["models"][m]["vo2_ml_min"]["rmse"],
                          "vo2max_mape": r["models"][m]["vo2max_ml_min"]["mape"]}
            results.append(row)
            print(json.dumps(row), flush=True)
    (out / "sim_transfer.json").write_text(json.dumps(results, indent=2) + "\n")
    seeds = " ".join(map(str, args.seeds))
    spread = "; mean ± SD over the seeds" if len(args.seeds) > 1 else ""
    lines = ["Leave-one-person-out on the REAL Yo-Yo recordings "
             f"({real_ds.source['kind']}); models trained on SIMULATED cohorts "
             f"(real Malaga demographics, {args.n_tests or 'all 992'} tests, seeds {seeds}"
             f"{spread}).",
             "", "| simulator | model | VO2 R² | VO2 RMSE (mL/min) | VO2max MAPE |",
             "|---|---|---|---|---|"]
    for calibration, protocol in SETTINGS:
        rows = [r for r in results if (r["calibration"], r["protocol"]) == (calibration, protocol)]
        for m in MODELS if rows else []:
            cells = [_cell([r[m][k] for r in rows], fmt) for k, fmt in METRICS]
            lines.append(f"| {calibration}, {protocol} | {label(m)} | " + " | ".join(cells)
                         + " |")
    (out / "sim_transfer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
