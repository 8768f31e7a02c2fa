"""Benchmark: the real-data fine-tuning of the pruned model, varied, on REAL people held out.

The run's simulation-only spiking model is given the shift-and-add leak and pruned to 70%
as ``vo2spike compress`` does (the default ``PruneRecipe``, 40% -> 60% -> 70% with masked
fine-tuning on simulation). Then leave-one-person-out on the real recordings: in each fold
the float model is fine-tuned on the other people with the run's recipe, and the pruned one
(masks kept) with each variant of ``VARIANTS`` (the run's recipe, more epochs, a weaker
pull back to the pruned start: ``FineTuneConfig.tuned_fraction``). Figures: REAL VO2 and
VO2max R² of the pruned **float** models, and their difference from the float model in R²
points.

Writes bench/results/pruned_fine_tune.{md,json}. About 8 minutes on 2 cores.

    .venv/bin/python bench/pruned_fine_tune.py [--run models/default]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from vo2spike.compress.prune import (
    DEFAULT_SPARSITY,
    FINETUNE_EPOCHS,
    GRADUAL_STEPS,
    fine_tune_pruned,
    prune_and_fine_tune,
    with_shift_leak,
)
from vo2spike.pipeline import REPO
from vo2spike.train import fine_tune

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prune_recipe import load_study, lopo_r2  # noqa: E402

#: name -> change to the run's fine-tuning recipe (FineTuneConfig fields)
VARIANTS: dict[str, dict] = {
    "run's recipe": {},
    "40 epochs": {"epochs": 40},
    "tuned_fraction 0.75": {"tuned_fraction": 0.75},
    "tuned_fraction 1.0": {"tuned_fraction": 1.0},
}


def study(run: Path) -> dict:
    """REAL leave-one-person-out R² of the float model and of the pruned one per variant."""
    s = load_study(run)
    cfg = s.cfg
    torch.manual_seed(cfg.seed)
    start = prune_and_fine_tune(with_shift_leak(s.snn), s.norm, s.train, s.val, None,
                                DEFAULT_SPARSITY, cfg.train, s.ft, cfg.seed, FINETUNE_EPOCHS,
                                GRADUAL_STEPS)

    def fold_models(others):
        torch.manual_seed(cfg.seed)
        models = {"float": fine_tune(s.snn, others, s.train, s.norm, s.ft, cfg.seed)}
        models.update({name: fine_tune_pruned(start, others, s.train, s.norm,
                                              dataclasses.replace(s.ft, **change), cfg.seed)
                       for name, change in VARIANTS.items()})
        return models

    return {"run": str(run), "seed": cfg.seed, "real": lopo_r2(s, fold_models)}


def render(result: dict) -> str:
    """Markdown: R² and R² points against the float model, per variant."""
    real = result["real"]
    base = real["float"]
    lines = [f"# Fine-tuning the pruned model on real recordings (run {result['run']}, "
             f"seed {result['seed']})", "",
             "REAL leave-one-person-out on the Yo-Yo recordings (11 people, 19 sessions); "
             "pruned float models (70%, the default PruneRecipe), before int8.", "",
             "| model | VO2 R² | Δ (points) | VO2max R² | Δ (points) |", "|---|---|---|---|---|"]
    for name, r in real.items():
        label = "float (run's recipe)" if name == "float" else f"pruned, {name}"
        lines.append(f"| {label} | {r['vo2_r2']:.4f} | "
                     f"{100 * (r['vo2_r2'] - base['vo2_r2']):+.2f} | {r['vo2max_r2']:.4f} | "
                     f"{100 * (r['vo2max_r2'] - base['vo2max_r2']):+.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=REPO / "models" / "default")
    args = ap.parse_args()
    result = study(args.run)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pruned_fine_tune.json").write_text(json.dumps(result, indent=1))
    (out / "pruned_fine_tune.md").write_text(render(result))
    print(render(result), flush=True)


if __name__ == "__main__":
    main()
