"""Benchmark: accuracy against mean spike rate, for several spike-rate penalties.

Simulates the cohort of the real Malaga demographics (mixed protocols, as ``vo2spike run``
does), trains the spiking model with each penalty (``TrainConfig.spike_rate_penalty``: loss +=
penalty x mean spike rate) on the same split and initialisation, and reports
per penalty: spike rate per LIF layer and their mean, VO2 R² / RMSE and VO2max R² on the
SIMULATED person-disjoint test split; for the penalties named in ``--lopo``, the
leave-one-person-out VO2 R² on the REAL Yo-Yo recordings (the recipe of
``vo2spike.crossval``: fine-tune on the other people's real windows mixed with simulated
ones, with the same penalty; spiking model only). Writes bench/results/spike_sparsity.{json,md}
(``spike_sparsity-seedS.*`` for a seed S > 0).
Each trained model is kept in ``--work`` and reused by later calls (delete it to retrain).
About 6 minutes per penalty on 2 cores, 8 more per leave-one-person-out.

    .venv/bin/python bench/spike_sparsity.py [--penalties 0 0.3 1 2 3 10] [--lopo 0 2] \
        [--seed S] [--threads 1]

Rates are fractions of neuron-steps that fire (0..1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from vo2spike.config import FineTuneConfig, Normalizer, TrainConfig
from vo2spike.data.k5 import convert_yoyo
from vo2spike.data.simulate import DEFAULT_CALIBRATION, write_cohort
from vo2spike.data.split import split_by_person, split_masks
from vo2spike.data.windows import Windows, prepare_windows
from vo2spike.inference import predict_windows
from vo2spike.metrics import regression_metrics, score
from vo2spike.model.net import ModelConfig, VO2Net
from vo2spike.pipeline import REPO, SHARED_DEMOGRAPHICS, SHARED_YOYO
from vo2spike.train import fine_tune, fit, save_weights


def rates_summary(rates: dict[str, float]) -> dict[str, float]:
    """Per-layer rates plus their mean (both layers have 64 neurons)."""
    return {**rates, "mean": float(np.mean(list(rates.values())))}


def lopo(model: VO2Net, norm: Normalizer, real: Windows, sim_train: Windows,
         cfg: FineTuneConfig, seed: int, tune=fine_tune) -> dict:
    """Leave-one-person-out on ``real`` for one model, with the recipe of
    ``crossval.leave_one_person_out`` (``spiking_real`` / ``twin_real``): per held-out person,
    ``tune`` (``train.fine_tune``, or ``prune.fine_tune_pruned`` to keep pruned weights zero)
    on the others' real windows mixed with simulated training windows; predict the person.
    Returns window VO2 metrics (mL/min), per-session VO2max metrics (the mean of the
    session's window estimates, mL/min) and the held-out spike rates."""
    person = np.array([str(p) for p in real.person])
    vo2, vo2max = np.zeros(len(real)), np.zeros(len(real))
    rates: dict[str, float] = {}
    for held_out in sorted(set(person)):
        test = person == held_out
        torch.manual_seed(seed)
        tuned = tune(model, real.subset(~test), sim_train, norm, cfg, seed)
        p = predict_windows(tuned, norm, real.x[test])
        vo2[test], vo2max[test] = p.vo2, p.vo2max
        for k, r in p.spike_rates.items():
            rates[k] = rates.get(k, 0.0) + r * test.sum() / len(real)
    sessions = {t: i for i, t in enumerate(sorted(set(real.id_test)))}
    idx = np.array([sessions[t] for t in real.id_test])
    est = np.bincount(idx, vo2max) / np.bincount(idx)
    true = np.bincount(idx, real.vo2max) / np.bincount(idx)
    return {"vo2": regression_metrics(real.vo2, vo2), "vo2max": regression_metrics(true, est),
            "vo2max_mape": regression_metrics(true, est)["mape"],
            "spike_rates_held_out": rates_summary(rates) if rates else {}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--penalties", nargs="+", default=["0", "0.3", "1", "2", "3"])
    ap.add_argument("--lopo", nargs="*", default=["0", "2"],
                    help="penalties also scored on REAL data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-tests", type=int, default=None)
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "spike_sparsity")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads (1 is several times faster on a crowded machine)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(args.threads)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    sim_dir = write_cohort(args.work / f"sim-{DEFAULT_CALIBRATION}-mixed", n_tests=args.n_tests,
                           demographics_csv=SHARED_DEMOGRAPHICS, protocol="mixed",
                           seed=args.seed, force=True)
    sim_ds, sim = prepare_windows(sim_dir)
    masks = split_masks(sim.person, split_by_person(sim.person, args.seed))
    train, val, test = (sim.subset(masks[k]) for k in ("train", "val", "test"))
    norm = Normalizer.fit(train)
    convert_yoyo(SHARED_YOYO, args.work / "yoyo", force=True)
    real_ds, real = prepare_windows(args.work / "yoyo")
    results = {"simulated": sim_ds.source["kind"], "real": real_ds.source["kind"],
               "seed": args.seed, "n_tests": int(sim.tests.shape[0]), "penalties": {}}
    for spec in args.penalties:
        tcfg = TrainConfig(spike_rate_penalty=float(spec))
        tag = f"seed{args.seed}-n{args.n_tests or 'all'}-p{spec}"
        weights, cache = args.work / f"model-{tag}.safetensors", args.work / f"result-{tag}.json"
        r = json.loads(cache.read_text()) if cache.exists() else {}
        torch.manual_seed(args.seed)
        model = VO2Net(ModelConfig())
        if weights.exists():
            model.load_state_dict(load_file(str(weights)))
        else:
            t0 = time.time()
            ckpt = args.work / f"checkpoint-{tag}.safetensors"
            fitted = fit(model, train, val, norm, tcfg, ckpt, f"penalty {spec}", args.seed)
            ckpt.unlink()
            save_weights(model, weights)
            r = {"train_config": dataclasses.asdict(tcfg), "best_epoch": fitted["best_epoch"],
                 "train_seconds": round(time.time() - t0)}
        model.eval()
        p = predict_windows(model, norm, test.x)
        m, _ = score(test, p.vo2, p.vo2max)
        r.update(vo2_r2=m["vo2_ml_min"]["r2"], vo2_rmse=m["vo2_ml_min"]["rmse"],
                 vo2max_r2=m["vo2max_ml_min"]["r2"], spike_rates=rates_summary(p.spike_rates),
                 spike_rates_real=rates_summary(predict_windows(model, norm, real.x).spike_rates))
        if spec in args.lopo and "lopo" not in r:
            t0 = time.time()
            ft = FineTuneConfig(spike_rate_penalty=float(spec))
            r["lopo"] = lopo(model, norm, real, train, ft, args.seed)
            r["lopo_seconds"] = round(time.time() - t0)
        cache.write_text(json.dumps(r, indent=2) + "\n")
        results["penalties"][spec] = r
        print(spec, json.dumps(r), flush=True)
    stem = "spike_sparsity" + (f"-seed{args.seed}" if args.seed else "")
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{stem}.md").write_text(render(results) + "\n")
    print(render(results))


def render(results: dict) -> str:
    """Markdown: accuracy against spike rate, one row per penalty."""
    base = results["penalties"].get("0")
    lines = [f"Spike-rate penalty sweep, seed {results['seed']}. Trained and tested on a "
             f"SIMULATED cohort ({results['n_tests']} tests of the real Malaga demographics, "
             "mixed protocols; person-disjoint test split); REAL: leave-one-person-out on the "
             f"Yo-Yo recordings ({results['real']}), fine-tuned with the same penalty. Rates: "
             "fraction of neuron-steps that fire (test split; REAL: held-out people after "
             "fine-tuning).", "",
             "| penalty | LIF1 rate | LIF2 rate | mean rate | VO2 R² | "
             "ΔVO2 R² (points) | VO2 RMSE (mL/min) | VO2max R² | mean rate, REAL sim-only | "
             "REAL LOPO VO2 R² | REAL LOPO VO2 RMSE | REAL LOPO mean rate | best epoch |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for spec, r in results["penalties"].items():
        s, lo = r["spike_rates"], r.get("lopo")
        delta = f"{100 * (r['vo2_r2'] - base['vo2_r2']):+.1f}" if base else "–"
        real = (f"{lo['vo2']['r2']:.3f} | {lo['vo2']['rmse']:.0f} | "
                f"{lo['spike_rates_held_out']['mean']:.3f}") if lo else "– | – | –"
        lines.append(f"| {spec} | {s['lif1']:.3f} | {s['lif2']:.3f} | {s['mean']:.3f} | "
                     f"{r['vo2_r2']:.3f} | {delta} | {r['vo2_rmse']:.0f} | {r['vo2max_r2']:.3f} "
                     f"| {r['spike_rates_real']['mean']:.3f} | {real} | {r['best_epoch']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
