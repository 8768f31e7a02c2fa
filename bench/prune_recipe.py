"""Benchmark: pruning recipes compared over several seeds, on the SIMULATED test split and on
REAL people held out, with the multiply-accumulate blocks each keeps (what the C engine's
instruction count follows).

For each run folder (one per seed; ``vo2spike run --seed S`` or ``vo2spike train --seed S``
on the cohort simulated with seed S) and each recipe of ``RECIPES``
(``vo2spike.compress.prune.PruneRecipe``), the run's simulation-only spiking model is given
the shift-and-add leak and pruned to 70% as ``vo2spike compress`` does (40% -> 60% -> 70%,
masked fine-tuning on simulation after each step), then:
- SIMULATED: fine-tuned on all real recordings (masks kept) and scored on the run's test
  split, against the float model fine-tuned the same way;
- REAL: leave-one-person-out, each fold fine-tuned (masks kept) on the other people, against
  the float model's leave-one-person-out (the run's recipe).
The figures are the pruned float model's; int8 has followed it within 0.2 R² points on the
shipped model. Blocks: non-zero 2 x 4 blocks of the block-pruned layers, each computed once
a step (60 a window); the instruction estimate adds 13 x 60 ARM instructions per block (the
M4 kernel's cost) to the shipped model's measured count, and is only that, an estimate.

Writes bench/results/prune_recipe.{md,json}. About 8 minutes per seed (three recipes) on 2 cores.

    .venv/bin/python bench/prune_recipe.py --runs models/default runs/recipe-seed1 ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vo2spike.compress.blocks import sparse_blocks
from vo2spike.compress.prune import (
    FINETUNE_EPOCHS,
    GRADUAL_STEPS,
    PruneRecipe,
    block_pruned,
    fine_tune_pruned,
    prune_and_fine_tune,
    score_model,
    with_shift_leak,
)
from vo2spike.config import FineTuneConfig, Normalizer, RunConfig, load_config
from vo2spike.crossval import score_lopo
from vo2spike.data.split import split_masks
from vo2spike.data.windows import Windows, prepare_windows
from vo2spike.inference import load_model, predict_windows
from vo2spike.model.net import VO2Net
from vo2spike.pipeline import REPO, RunOptions, recorded_inputs, resolve_real
from vo2spike.train import fine_tune

SPARSITY = 0.7
RECIPES = {
    "abs-w": PruneRecipe(keep_heads=False, bn_folded=False),  # scores |w|, heads pruned
    "abs-w-heads-kept": PruneRecipe(bn_folded=False),  # the same, heads never pruned
    "shipped": PruneRecipe(),  # heads kept, TCN scored by |w x BatchNorm gain|
}
#: The shipped model's measured count (compression.md) and its blocks, for the estimate.
SHIPPED_INSTRUCTIONS = 596_645
INSTRUCTIONS_PER_BLOCK = 13 * 60


def mac_blocks(model) -> int:
    """Non-zero 2 x 4 blocks of the block-pruned layers (each computed once a step)."""
    return sum(len(sparse_blocks(m.weight.detach().numpy())[1]) for m in block_pruned(model))


@dataclasses.dataclass
class Study:
    """What a study needs of one run: its config, SIMULATED splits, REAL windows, the
    simulation-only spiking model, its normaliser and the run's fine-tuning recipe."""

    cfg: RunConfig
    train: Windows
    val: Windows
    test: Windows
    real: Windows
    snn: VO2Net
    norm: Normalizer
    ft: FineTuneConfig


def load_study(run: Path) -> Study:
    """The run's recorded simulated data (split as it was) and real recordings, and its
    simulation-only spiking model."""
    cfg = load_config(run)
    data, real_dir = recorded_inputs(run, None, None, say=print)
    if real_dir is None:
        real_dir = resolve_real(RunOptions(), print)
    _, w = prepare_windows(data)
    _, real = prepare_windows(real_dir)
    masks = split_masks(w.person, cfg.split)
    train, val, test = (w.subset(masks[k]) for k in ("train", "val", "test"))
    snn, norm, _ = load_model(run, sim_only=True)
    ft = cfg.fine_tune.config if cfg.fine_tune else \
        FineTuneConfig(spike_rate_penalty=cfg.train.spike_rate_penalty)
    return Study(cfg, train, val, test, real, snn, norm, ft)


def lopo_r2(s: Study, fold_models: Callable[[Windows], dict[str, VO2Net]]) -> dict:
    """REAL leave-one-person-out: per held-out person, ``fold_models(others' windows)``
    gives the models (name -> model) that predict that person; VO2 and VO2max R² by name."""
    person = np.array([str(p) for p in s.real.person])
    pred = pd.DataFrame({"ID_test": s.real.id_test, "ID": person, "vo2": s.real.vo2,
                         "vo2max": s.real.vo2max})
    names: list[str] = []
    for held_out in sorted(set(person)):
        rows = person == held_out
        models = fold_models(s.real.subset(~rows))
        names = list(models)
        for n, m in models.items():
            p = predict_windows(m, s.norm, s.real.x[rows])
            pred.loc[rows, f"{n}_vo2"], pred.loc[rows, f"{n}_vo2max"] = p.vo2, p.vo2max
        print(f"held out {held_out}", flush=True)
    lopo = score_lopo(pred, s.real.tests.set_index("ID_test")["Weight"], names)
    return {n: {"vo2_r2": r["vo2_ml_min"]["r2"], "vo2max_r2": r["vo2max_ml_min"]["r2"]}
            for n, r in lopo.items()}


def study_run(run: Path, recipes: dict[str, PruneRecipe]) -> dict:
    """Every recipe on one run: SIMULATED and REAL R² of the pruned and float models."""
    s = load_study(run)
    cfg, train, norm, ft = s.cfg, s.train, s.norm, s.ft

    def tuned_float(people):
        torch.manual_seed(cfg.seed)
        return fine_tune(s.snn, people, train, norm, ft, cfg.seed)

    starts = {}
    for name, recipe in recipes.items():
        torch.manual_seed(cfg.seed)
        starts[name] = prune_and_fine_tune(with_shift_leak(s.snn), norm, train, s.val, None,
                                           SPARSITY, cfg.train, ft, cfg.seed, FINETUNE_EPOCHS,
                                           GRADUAL_STEPS, recipe)
    sim = {"float": score_model(tuned_float(s.real), norm, s.test)}
    sim.update({n: score_model(fine_tune_pruned(m, s.real, train, norm, ft, cfg.seed), norm,
                               s.test)
                for n, m in starts.items()})

    def fold_models(others):
        return {"float": tuned_float(others),
                **{n: fine_tune_pruned(m, others, train, norm, ft, cfg.seed)
                   for n, m in starts.items()}}

    return {"seed": cfg.seed, "run": str(run),
            "sim": {n: {"vo2_r2": r["vo2_r2"], "vo2max_r2": r["vo2max_r2"]}
                    for n, r in sim.items()},
            "real": lopo_r2(s, fold_models),
            "blocks": {n: mac_blocks(m) for n, m in starts.items()}}


def render(results: list[dict], recipes: list[str]) -> str:
    """Markdown: per recipe and seed, pruned minus float R² points and blocks a step."""
    seeds = [r["seed"] for r in results]
    shipped = {r["seed"]: r["blocks"]["shipped"] for r in results if "shipped" in r["blocks"]}
    lines = ["# Pruning recipes over seeds (70%, 2 x 4 blocks)", "",
             "Pruned (float) minus float, R² points. SIMULATED: each run's test split, models "
             "fine-tuned on all real recordings. REAL: leave-one-person-out on the Yo-Yo "
             "recordings (11 people, 19 sessions). Blocks: multiply-accumulate blocks a step; "
             "instructions: an ESTIMATE, the shipped count plus 780 per block more than the "
             "shipped recipe keeps on the same seed.", ""]
    for metric, where in [("vo2_r2", "sim"), ("vo2max_r2", "sim"), ("vo2_r2", "real"),
                          ("vo2max_r2", "real")]:
        label = f"{'SIMULATED' if where == 'sim' else 'REAL'} {metric[:-3].upper()}"
        lines += [f"## {label}", "",
                  "| recipe | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
                  "|---|" + "---|" * (len(seeds) + 1)]
        for name in recipes:
            d = [100 * (r[where][name][metric] - r[where]["float"][metric]) for r in results]
            lines.append(f"| {name} | " + " | ".join(f"{v:+.1f}" for v in d)
                         + f" | **{np.mean(d):+.1f}** |")
        lines.append("")
    lines += ["## Blocks a step (estimated ARM instructions a window)", "",
              "| recipe | " + " | ".join(f"seed {s}" for s in seeds) + " |",
              "|---|" + "---|" * len(seeds)]
    for name in recipes:
        cells = []
        for r in results:
            b = r["blocks"][name]
            est = SHIPPED_INSTRUCTIONS + INSTRUCTIONS_PER_BLOCK * (b - shipped.get(r["seed"], b))
            cells.append(f"{b} ({est:,})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, nargs="+", default=[REPO / "models" / "default"])
    ap.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    args = ap.parse_args()
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for run in args.runs:
        results.append(study_run(run, {n: RECIPES[n] for n in args.recipes}))
        (out / "prune_recipe.json").write_text(json.dumps(results, indent=1))
        (out / "prune_recipe.md").write_text(render(results, args.recipes))
        print(render(results, args.recipes), flush=True)


if __name__ == "__main__":
    main()
