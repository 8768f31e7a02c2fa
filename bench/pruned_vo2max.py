"""Benchmark: what 70% pruning costs in VO2max accuracy, with plain fine-tuning on real
recordings and with the weight-space ensemble (``FineTuneConfig.tuned_fraction``, 0.5 by
default: the fine-tuned weights are moved halfway back to the starting ones), one-shot
against gradual pruning (which ``vo2spike compress`` adopted from these measurements), and
distillation, tried and not adopted.

For a run fine-tuned on real recordings (``vo2spike run``), starting from its float
simulation-only model:
- pruned one-shot: 70% global L1 pruning, masked fine-tuning on simulation (up to 8 epochs,
  early stopping), as ``vo2spike compress --one-shot`` does;
- pruned gradually: 40%, then 60% (3 epochs each), then 70% (up to 8 epochs), as
  ``vo2spike compress`` does;
- pruned + distilled: one-shot, but the masked fine-tuning learns the float model's outputs
  on the simulated windows instead of their labels.
Each is fine-tuned on real recordings (masks kept). SIMULATED: the run's test split, models
fine-tuned on all real recordings. REAL: the simulation-only models applied unchanged, and
leave-one-person-out (each fold fine-tunes on the other people only), with the paired
bootstrap interval over people of each pruned model's R² difference against the float
model fine-tuned the same way. Writes bench/results/pruned_vo2max-<run folder>.{md,json}.
About 10 minutes per run on 2 cores.

    .venv/bin/python bench/pruned_vo2max.py [--model models/default]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vo2spike.compress.prune import (
    FINETUNE_EPOCHS,
    GRADUAL_STEPS,
    fine_tune_pruned,
    prune_and_fine_tune,
    score_model,
)
from vo2spike.config import load_config
from vo2spike.crossval import r2_difference_interval, score_lopo
from vo2spike.data.split import split_masks
from vo2spike.data.windows import Windows, prepare_windows
from vo2spike.inference import load_model, predict_windows
from vo2spike.pipeline import REPO, recorded_inputs
from vo2spike.train import fine_tune

SPARSITY = 0.7
#: (starting model, tuned_fraction) pairs fine-tuned on real recordings.
VARIANTS = [("float", 1.0), ("pruned one-shot", 1.0), ("float", 0.5),
            ("pruned one-shot", 0.5), ("pruned gradually", 0.5), ("pruned + distilled", 0.5)]


def relabel(w: Windows, model, norm) -> Windows:
    """``w`` with VO2 and VO2max labels replaced by ``model``'s predictions (distillation)."""
    p = predict_windows(model, norm, w.x)
    return dataclasses.replace(w, vo2=p.vo2.astype(w.vo2.dtype),
                               vo2max=p.vo2max.astype(w.vo2max.dtype))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    args = ap.parse_args()
    cfg = load_config(args.model)
    if cfg.fine_tune is None:
        raise SystemExit(f"{args.model}: not fine-tuned on real recordings")
    data, real_dir = recorded_inputs(args.model, None, None, say=print)
    _, w = prepare_windows(data)
    _, real = prepare_windows(real_dir)
    masks = split_masks(w.person, cfg.split)
    train, val, test = (w.subset(masks[k]) for k in ("train", "val", "test"))
    sim_only, norm, _ = load_model(args.model, sim_only=True)

    def prune_fit(steps, tr=train, va=val):
        return prune_and_fine_tune(sim_only, norm, tr, va, None, SPARSITY, cfg.train, None,
                                   cfg.seed, FINETUNE_EPOCHS, steps)

    starts = {"float": sim_only, "pruned one-shot": prune_fit(()),
              "pruned gradually": prune_fit(GRADUAL_STEPS),
              "pruned + distilled": prune_fit((), relabel(train, sim_only, norm),
                                              relabel(val, sim_only, norm))}

    def tune(start: str, fraction: float, people: Windows):
        ft = dataclasses.replace(cfg.fine_tune.config, tuned_fraction=fraction)
        torch.manual_seed(cfg.seed)
        if start == "float":
            return fine_tune(sim_only, people, train, norm, ft, cfg.seed)
        return fine_tune_pruned(starts[start], people, train, norm, ft, cfg.seed)

    name = {f"{s}_sim": f"{s}, simulation only" for s in starts}
    name.update({f"{s}_{f:g}": f"{s}, tuned_fraction {f:g}" for s, f in VARIANTS})
    simulated = {name[f"{s}_sim"]: score_model(m, norm, test) for s, m in starts.items()}
    simulated.update({name[f"{s}_{f:g}"]: score_model(tune(s, f, real), norm, test)
                      for s, f in VARIANTS})

    person = np.array([str(p) for p in real.person])
    pred = pd.DataFrame({"ID_test": real.id_test, "ID": person, "vo2": real.vo2,
                         "vo2max": real.vo2max})
    for s, model in starts.items():  # no real data
        p = predict_windows(model, norm, real.x)
        pred[f"{s}_sim_vo2"], pred[f"{s}_sim_vo2max"] = p.vo2, p.vo2max
    for held_out in sorted(set(person)):
        rows = person == held_out
        for s, f in VARIANTS:
            p = predict_windows(tune(s, f, real.subset(~rows)), norm, real.x[rows])
            pred.loc[rows, f"{s}_{f:g}_vo2"], pred.loc[rows, f"{s}_{f:g}_vo2max"] = \
                p.vo2, p.vo2max
        print(f"held out {held_out}", flush=True)
    weights = real.tests.set_index("ID_test")["Weight"]
    lopo = score_lopo(pred, weights, list(name))
    pairs = [(f"{s}_{f:g}", f"float_{f:g}") for s, f in VARIANTS if s != "float"]
    pairs += [(f"{s}_sim", "float_sim") for s in starts if s != "float"]
    intervals = {a: r2_difference_interval(pred, a, b) for a, b in pairs}

    lines = [f"# VO2max after 70% pruning: {args.model} (seed {cfg.seed})", "",
             f"SIMULATED test split ({len(test)} windows); real fine-tuning on all "
             f"{len(set(person))} people:", "",
             "| model | VO2 R² | VO2max R² |", "|---|---|---|"]
    lines += [f"| {k} | {s['vo2_r2']:.3f} | {s['vo2max_r2']:.3f} |" for k, s in simulated.items()]
    lines += ["", f"REAL ({len(set(person))} people, {len(set(real.id_test))} sessions): "
              "simulation-only models unchanged, the others by leave-one-person-out:", "",
              "| model | VO2 R² | VO2max R² | VO2max MAPE |", "|---|---|---|---|"]
    for k, r in lopo.items():
        lines.append(f"| {name[k]} | {r['vo2_ml_min']['r2']:.3f} | "
                     f"{r['vo2max_ml_min']['r2']:.3f} | {r['vo2max_ml_min']['mape']:.1f}% |")
    lines += ["", "Pruned minus float (fine-tuned the same way), REAL, R² points, with the 95% "
              "interval over people resampled (paired bootstrap):", "",
              "| model | VO2 | VO2max |", "|---|---|---|"]
    for a, b in pairs:
        i = intervals[a]
        d = {k: 100 * (lopo[a][f"{k}_ml_min"]["r2"] - lopo[b][f"{k}_ml_min"]["r2"])
             for k in ("vo2", "vo2max")}
        lines.append(f"| {name[a]} | {d['vo2']:+.1f} [{100 * i['vo2'][0]:+.1f}, "
                     f"{100 * i['vo2'][1]:+.1f}] | {d['vo2max']:+.1f} "
                     f"[{100 * i['vo2max'][0]:+.1f}, {100 * i['vo2max'][1]:+.1f}] |")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"pruned_vo2max-{args.model.resolve().name}"
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (out / f"{stem}.json").write_text(json.dumps(
        {"simulated": simulated, "real": {name[k]: v for k, v in lopo.items()},
         "r2_difference_95": {name[k]: v for k, v in intervals.items()}}, indent=2,
        default=float) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
