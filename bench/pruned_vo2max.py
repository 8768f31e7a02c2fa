"""Benchmark: where a run's VO2max accuracy goes after 70% pruning (issue 8's open target).

For a run fine-tuned on real recordings (``vo2spike run``), on its simulated test split:
the float simulation-only model, the same pruned and masked-fine-tuned on simulation (as
``vo2spike compress`` does), and that pruned model fine-tuned on all real recordings with
VO2max loss weights 1 (the recipe), 0.2 and 0. Then leave-one-person-out on the real
recordings (REAL): the float model, the pruned model (the recipe), the pruned model
distilled from the float fold model (real and simulated windows relabelled with its
outputs), and the fold's float model pruned late (after its real fine-tuning) and
fine-tuned again with its masks. Writes bench/results/pruned_vo2max-<run>.{md,json}.
About 8 minutes per run on 2 cores.

    .venv/bin/python bench/pruned_vo2max.py [--model models/default]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import r2_score

from vo2spike.compress.prune import (
    detach_masked,
    fine_tune_pruned,
    make_permanent,
    prune_and_fine_tune,
    prune_global,
    score_model,
)
from vo2spike.config import load_config
from vo2spike.data.split import split_masks
from vo2spike.data.windows import Windows, prepare_windows
from vo2spike.inference import load_model, predict_windows
from vo2spike.pipeline import REPO, recorded_inputs
from vo2spike.train import fine_tune

SPARSITY = 0.7


def relabel(w: Windows, model, norm) -> Windows:
    """``w`` with VO2 and VO2max labels replaced by ``model``'s predictions (distillation)."""
    p = predict_windows(model, norm, w.x)
    return dataclasses.replace(w, vo2=p.vo2.astype(w.vo2.dtype),
                               vo2max=p.vo2max.astype(w.vo2max.dtype))


def session_scores(real: Windows, vo2: np.ndarray, vo2max: np.ndarray) -> dict:
    """Window VO2 R² and per-session VO2max R² (mean of the window estimates) and MAPE."""
    sessions = sorted(set(real.id_test))
    est = np.array([vo2max[real.id_test == s].mean() for s in sessions])
    true = np.array([real.vo2max[real.id_test == s][0] for s in sessions])
    return {"vo2_r2": float(r2_score(real.vo2, vo2)), "vo2max_r2": float(r2_score(true, est)),
            "vo2max_mape": float(np.mean(np.abs(est - true) / true) * 100)}


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
    ft = cfg.fine_tune.config

    pruned = prune_and_fine_tune(sim_only, norm, train, val, None, SPARSITY, cfg.train, None,
                                 cfg.seed)
    simulated = {"float, simulation only": score_model(sim_only, norm, test),
                 "pruned, simulation only": score_model(pruned, norm, test)}
    for weight in (1.0, 0.2, 0.0):
        tuned = fine_tune_pruned(pruned, real, train, norm,
                                 dataclasses.replace(ft, vo2max_loss_weight=weight), cfg.seed)
        simulated[f"pruned + real fine-tuning, VO2max weight {weight:g}"] = score_model(
            tuned, norm, test)

    def late(model, others):
        masked = detach_masked(prune_global(model, SPARSITY))
        return make_permanent(fine_tune(masked, others, train, norm, ft, cfg.seed)).eval()

    person = np.array([str(p) for p in real.person])
    names = ("float", "pruned", "pruned, distilled", "pruned late")
    pred = {k: (np.zeros(len(real)), np.zeros(len(real))) for k in names}
    for held_out in sorted(set(person)):
        test_rows = person == held_out
        others = real.subset(~test_rows)
        teacher = fine_tune(sim_only, others, train, norm, ft, cfg.seed)
        models = {"float": teacher,
                  "pruned": fine_tune_pruned(pruned, others, train, norm, ft, cfg.seed),
                  "pruned, distilled": fine_tune_pruned(
                      pruned, relabel(others, teacher, norm), relabel(train, teacher, norm),
                      norm, ft, cfg.seed),
                  "pruned late": late(teacher, others)}
        for k, model in models.items():
            p = predict_windows(model, norm, real.x[test_rows])
            pred[k][0][test_rows], pred[k][1][test_rows] = p.vo2, p.vo2max
        print(f"held out {held_out}", flush=True)
    lopo = {k: session_scores(real, *pred[k]) for k in names}

    lines = [f"# VO2max after 70% pruning: {args.model} (seed {cfg.seed})", "",
             f"SIMULATED test split ({len(test)} windows):", "",
             "| model | VO2 R² | VO2max R² |", "|---|---|---|"]
    lines += [f"| {k} | {s['vo2_r2']:.3f} | {s['vo2max_r2']:.3f} |" for k, s in simulated.items()]
    lines += ["", f"REAL leave-one-person-out ({len(set(person))} people, "
              f"{len(set(real.id_test))} sessions):", "",
              "| model | VO2 R² | VO2max R² | VO2max MAPE |", "|---|---|---|---|"]
    lines += [f"| {k} | {s['vo2_r2']:.3f} | {s['vo2max_r2']:.3f} | {s['vo2max_mape']:.1f}% |"
              for k, s in lopo.items()]
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"pruned_vo2max-{args.model.resolve().name}"
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (out / f"{stem}.json").write_text(json.dumps({"simulated": simulated, "real": lopo},
                                                 indent=2, default=float) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
