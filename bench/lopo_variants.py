"""Benchmark: recipe variants of the spiking model, measured on the real Yo-Yo recordings.

Each variant changes one thing in the shipped recipe (simulated cohort: foundation
calibration, mixed protocols; pre-training; fine-tuning on the other people's real windows)
and is scored by leave-one-person-out on the REAL recordings, spiking model only. It also
measures how far the real labels themselves limit VO2max accuracy: a person's two sessions
can differ a lot. Writes bench/results/lopo_variants.{json,md}. About 12 minutes on 2 cores.

    .venv/bin/python bench/lopo_variants.py [--seed S] [--variants baseline ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vo2spike.config import FineTuneConfig, Normalizer, TrainConfig
from vo2spike.data.k5 import convert_yoyo
from vo2spike.data.simulate import write_cohort
from vo2spike.data.split import split_by_person, split_masks
from vo2spike.data.windows import CHANNELS, Windows, prepare_windows
from vo2spike.inference import predict_windows
from vo2spike.metrics import regression_metrics
from vo2spike.model.net import ModelConfig, VO2Net
from vo2spike.pipeline import REPO, SHARED_DEMOGRAPHICS, SHARED_YOYO
from vo2spike.train import fine_tune, fit

#: name -> (what it changes, settings). Settings: "train" / "fine_tune" / "model" override
#: fields of the configs; "truth_vo2max" labels simulated tests with the simulator's true
#: VO2max instead of their highest 30 s mean; "load_channel" adds speed x weight (km/h x kg)
#: as a ninth input; "fine_tune_seeds" averages the predictions of several fine-tunings.
VARIANTS = {
    "baseline": ("the shipped recipe", {}),
    "pretrain_vo2max_w0.1": ("pre-training loss: VO2max head weighted 0.1, not 1",
                             {"train": {"vo2max_loss_weight": 0.1}}),
    "sim_truth_vo2max": ("simulated VO2max label = simulator's true VO2max",
                         {"truth_vo2max": True}),
    "finetune_vo2max_w0.2": ("fine-tuning loss: VO2max head weighted 0.2",
                             {"fine_tune": {"vo2max_loss_weight": 0.2}}),
    "finetune_5_seeds": ("mean of 5 fine-tunings (seeds 0-4)", {"fine_tune_seeds": 5}),
    "tcn_dilation_16": ("fifth TCN block, dilation 16 (receptive field 63 s)",
                        {"model": {"dilations": (1, 2, 4, 8, 16)}}),
    "load_channel": ("extra input: speed x weight (external load)", {"load_channel": True}),
}


def _with(w: Windows, x: np.ndarray | None = None, vo2max: np.ndarray | None = None) -> Windows:
    return Windows(w.x if x is None else x, w.vo2, w.vo2max if vo2max is None else vo2max,
                   w.id_test, w.person, w.t_start, w.t_end, w.tests)


def _load_channel(w: Windows) -> Windows:
    speed, weight = CHANNELS.index("Speed"), CHANNELS.index("Weight")
    load = w.x[:, [speed]] * w.x[:, [weight]]  # km/h x kg
    return _with(w, x=np.concatenate([w.x, load], axis=1).astype(np.float32))


def run_variant(settings: dict, sim: Windows, truth_vo2max: np.ndarray, real: Windows,
                seed: int) -> dict:
    """Pre-train on ``sim``, then leave-one-person-out on ``real``; spiking model only."""
    if settings.get("truth_vo2max"):
        sim = _with(sim, vo2max=truth_vo2max)
    if settings.get("load_channel"):
        sim, real = _load_channel(sim), _load_channel(real)
    tcfg = TrainConfig(**settings.get("train", {}))
    mcfg = ModelConfig(n_inputs=sim.x.shape[1], **settings.get("model", {}))
    ftcfg = FineTuneConfig(**settings.get("fine_tune", {}))
    masks = split_masks(sim.person, split_by_person(sim.person, seed))
    train, val = sim.subset(masks["train"]), sim.subset(masks["val"])
    norm = Normalizer.fit(train)
    torch.manual_seed(seed)
    model = VO2Net(mcfg)
    ckpt = REPO / "bench" / "work" / "variant-checkpoint.safetensors"
    ckpt.unlink(missing_ok=True)
    fit(model, train, val, norm, tcfg, ckpt, "variant", seed)
    ckpt.unlink(missing_ok=True)
    sim_test = sim.subset(masks["test"])
    sim_r2 = regression_metrics(sim_test.vo2, predict_windows(model, norm, sim_test.x).vo2)["r2"]
    person = np.array([str(p) for p in real.person])
    pred = {k: np.zeros(len(real)) for k in ("sim_only", "vo2", "vo2max")}
    seeds = range(seed, seed + settings.get("fine_tune_seeds", 1))
    for held_out in sorted(set(person)):
        test = person == held_out
        pred["sim_only"][test] = predict_windows(model, norm, real.x[test]).vo2
        for s in seeds:
            torch.manual_seed(s)
            tuned = fine_tune(model, real.subset(~test), train, norm, ftcfg, s)
            p = predict_windows(tuned, norm, real.x[test])
            pred["vo2"][test] += p.vo2 / len(seeds)
            pred["vo2max"][test] += p.vo2max / len(seeds)
    sessions = pd.DataFrame({"t": real.id_test, "vo2max": pred["vo2max"], "vo2": pred["vo2"],
                             "true": real.vo2max}).groupby("t")
    true = sessions["true"].first()
    fine, sim_only = (regression_metrics(real.vo2, pred[k]) for k in ("vo2", "sim_only"))
    return {"vo2_r2": fine["r2"], "vo2_rmse": fine["rmse"],
            "vo2max_mape": regression_metrics(true, sessions["vo2max"].mean())["mape"],
            "peak_window_mape": regression_metrics(true, sessions["vo2"].max())["mape"],
            "sim_only_vo2_r2": sim_only["r2"], "simulated_test_vo2_r2": sim_r2}


def label_limits(real: Windows) -> dict:
    """How much the real VO2max labels vary within a person, and the session VE/VO2 range."""
    tests = real.tests.assign(person=real.tests["ID"].astype(str))
    errors = []
    for _, d in tests.groupby("person"):
        v = d["vo2max"].to_numpy()
        # Best single value for all of a person's sessions (least mean absolute % error);
        # the error is piecewise linear in that value, so the best one is one of the labels.
        best = min(v, key=lambda c: np.sum(np.abs(c - v) / v))
        errors += list(np.abs(best - v) / v)
    ve_1hz = real.x[:, CHANNELS.index("VE")]
    ve = pd.Series(ve_1hz.mean(axis=1), index=real.id_test).groupby(level=0).sum()
    vo2 = pd.Series(real.vo2, index=real.id_test).groupby(level=0).sum()
    ratio = ve * 1000 / vo2
    return {"person_constant_oracle_vo2max_mape": float(np.mean(errors) * 100),
            "session_ve_vo2_min": float(ratio.min()), "session_ve_vo2_max": float(ratio.max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "work")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(2)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    convert_yoyo(SHARED_YOYO, args.work / "yoyo", force=True)
    real_ds, real = prepare_windows(args.work / "yoyo")
    sim_dir = write_cohort(args.work / "sim-foundation-mixed", demographics_csv=SHARED_DEMOGRAPHICS,
                           protocol="mixed", seed=args.seed, force=True, calibration="foundation")
    _, sim = prepare_windows(sim_dir)
    truth = pd.read_csv(sim_dir / "truth.csv").set_index("ID_test")["vo2max"]
    truth_vo2max = truth.loc[sim.id_test].to_numpy(dtype=np.float32)
    results = {"data": real_ds.source["kind"], "seed": args.seed, "labels": label_limits(real),
               "variants": {}}
    for name in args.variants:
        t0 = time.time()
        r = run_variant(VARIANTS[name][1], sim, truth_vo2max, real, args.seed)
        r["seconds"] = round(time.time() - t0)
        results["variants"][name] = r
        print(name, json.dumps(r), flush=True)
    (out / "lopo_variants.json").write_text(json.dumps(results, indent=2) + "\n")
    lab = results["labels"]
    lines = [f"Leave-one-person-out on the REAL Yo-Yo recordings ({results['data']}); spiking "
             f"model pre-trained on a SIMULATED cohort (foundation, mixed, seed {args.seed}).",
             "", "| variant | what changes | VO2 R² | VO2 RMSE (mL/min) | VO2max MAPE | "
             "peak-window MAPE | simulation-only VO2 R² | SIMULATED test split VO2 R² "
             "(pre-trained) |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results["variants"].items():
        lines.append(f"| {name} | {VARIANTS[name][0]} | {r['vo2_r2']:.3f} | {r['vo2_rmse']:.0f} "
                     f"| {r['vo2max_mape']:.1f}% | {r['peak_window_mape']:.1f}% | "
                     f"{r['sim_only_vo2_r2']:.3f} | {r['simulated_test_vo2_r2']:.3f} |")
    lines += ["", "Limits set by the real labels: giving each person one VO2max value for all "
              "of their sessions (the best possible one, chosen with the answers) already "
              f"scores {lab['person_constant_oracle_vo2max_mape']:.1f}% MAPE; session "
              f"VE/VO2 ranges from {lab['session_ve_vo2_min']:.1f} to "
              f"{lab['session_ve_vo2_max']:.1f}."]
    (out / "lopo_variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
