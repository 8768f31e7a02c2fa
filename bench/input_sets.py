"""Benchmark: one network for every input set (channel dropout) against one network per set.

The shipped model (``vo2spike run``) is one spiking network trained with channel dropout
(``TrainConfig.input_set_weights``): it serves speed,hr / speed,hr,rr / speed,hr,rr,ve at
once. The alternative is a specialist per input set, trained and fine-tuned on that set's
signals only. This trains the specialists on the same SIMULATED cohort, split, seed and
recipe (spiking model only) and compares, per input set: VO2 R² / RMSE and VO2max MAPE on
the SIMULATED person-disjoint test split, and the same on the REAL Yo-Yo recordings held
out by person (each fold fine-tuned on the other people, as ``vo2spike.crossval``). The
dropout model's figures are computed here the same way from its simulation-only weights
(``sim_only.safetensors`` of ``--model``). Writes bench/results/input_sets.{json,md}.
About 3 minutes per specialist on 2 cores.

    .venv/bin/python bench/input_sets.py [--model models/default] [--sets speed,hr ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from vo2spike.config import INPUT_SET_WEIGHTS, FineTuneConfig, Normalizer
from vo2spike.crossval import leave_one_person_out, lopo_input_sets
from vo2spike.data.split import split_masks
from vo2spike.data.windows import (
    FULL_INPUT_SET,
    INPUT_SETS,
    Windows,
    prepare_windows,
    with_input_set,
)
from vo2spike.inference import load_model, predict_windows
from vo2spike.metrics import score
from vo2spike.model.net import VO2Net
from vo2spike.pipeline import REPO, RunOptions, resolve_real, resolve_training_data
from vo2spike.threads import fix_threads
from vo2spike.train import fit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spike_sparsity import lopo  # noqa: E402

FULL_ONLY = {name: float(name == FULL_INPUT_SET) for name in INPUT_SETS}


def as_set(w: Windows, name: str) -> Windows:
    """Windows as a wearable with input set ``name`` gives them."""
    return dataclasses.replace(w, x=with_input_set(w.x, name))


def sim_metrics(model: VO2Net, norm: Normalizer, test: Windows) -> dict:
    p = predict_windows(model, norm, test.x)
    m, _ = score(test, p.vo2, p.vo2max)
    return {"vo2_r2": m["vo2_ml_min"]["r2"], "vo2_rmse": m["vo2_ml_min"]["rmse"],
            "vo2max_mape": m["vo2max_ml_min"]["mape"]}


def real_lopo(model: VO2Net, norm: Normalizer, real: Windows, sim_train: Windows,
              seed: int) -> dict:
    """Leave-one-person-out (spike_sparsity.lopo: the crossval recipe), fine-tuned on every
    signal of the windows given: they are already of one input set."""
    r = lopo(model, norm, real, sim_train, FineTuneConfig(input_set_weights=FULL_ONLY), seed)
    return {"vo2_r2": r["vo2"]["r2"], "vo2_rmse": r["vo2"]["rmse"],
            "vo2max_mape": r["vo2max_mape"]}


def fine_tune_choice(model_dir: Path, real: Windows, sim: Windows) -> dict:
    """REAL leave-one-person-out of the run's spiking model per input set, fine-tuned on
    every signal (the default) or with pre-training's channel dropout: VO2 R² and VO2max
    MAPE per set (crossval's recipe and tables)."""
    out = {}
    for name, weights in (("every signal", FULL_ONLY), ("dropout", dict(INPUT_SET_WEIGHTS))):
        pred = leave_one_person_out(model_dir, real, sim, FineTuneConfig(
            input_set_weights=weights))
        sets = lopo_input_sets(pred, real)
        out[name] = {s: {"vo2_r2": r["models"]["spiking"]["vo2_ml_min"]["r2"],
                         "vo2max_mape": r["models"]["spiking"]["vo2max_mape"]}
                     for s, r in sets.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--sets", nargs="+", default=[n for n in INPUT_SETS if n != FULL_INPUT_SET])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--fine-tune-only", action="store_true",
                    help="only compare fine-tuning on every signal with fine-tuning with "
                         "channel dropout (REAL leave-one-person-out; about 2 minutes)")
    args = ap.parse_args()
    fix_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    dropout, norm, config = load_model(args.model, sim_only=True)
    opts = RunOptions(seed=config.seed)
    _, sim = prepare_windows(resolve_training_data(opts, print))
    real_dir = resolve_real(opts, print)
    _, real = prepare_windows(real_dir)
    choice = fine_tune_choice(args.model, real, sim)
    choice_lines = ["| fine-tuning on real | " + " | ".join(choice["dropout"]) + " |",
                    "|---|" + "---|" * len(choice["dropout"])]
    choice_lines += [f"| {k} | " + " | ".join(f"{v['vo2_r2']:.3f} / {v['vo2max_mape']:.1f}%"
                                              for v in sets.values()) + " |"
                     for k, sets in choice.items()]
    (args.out / "input_sets_fine_tune.md").write_text(
        "# Fine-tuning on the real recordings: every signal or channel dropout\n\n"
        f"`bench/input_sets.py --fine-tune-only --model {args.model}`; REAL Yo-Yo "
        "recordings, leave-one-person-out, spiking model: VO2 R² / VO2max MAPE per input "
        "set\n\n" + "\n".join(choice_lines) + "\n")
    print("\n".join(choice_lines), flush=True)
    if args.fine_tune_only:
        return
    masks = split_masks(sim.person, config.split)
    train, val, test = (sim.subset(masks[k]) for k in ("train", "val", "test"))
    rows = {}
    for name in args.sets:
        print(f"input set {name}: dropout model, then a specialist", flush=True)
        row = {"dropout": {"sim": sim_metrics(dropout, norm, as_set(test, name)),
                           "real": real_lopo(dropout, norm, as_set(real, name), train,
                                             config.seed)}}
        torch.manual_seed(config.seed)
        special = VO2Net(config.model)
        cfg = dataclasses.replace(config.train, input_set_weights=FULL_ONLY)
        t1 = time.time()
        fit(special, as_set(train, name), as_set(val, name), norm, cfg,
            args.out / f"input_sets-{name.replace(',', '_')}.ckpt", name, config.seed)
        (args.out / f"input_sets-{name.replace(',', '_')}.ckpt").unlink(missing_ok=True)
        row["specialist"] = {"sim": sim_metrics(special, norm, as_set(test, name)),
                             "real": real_lopo(special, norm, as_set(real, name),
                                               as_set(train, name), config.seed),
                             "train_seconds": round(time.time() - t1, 1)}
        rows[name] = row
    result = {"model": str(args.model), "seed": config.seed, "sets": rows, "fine_tune": choice,
              "data": {"simulated": str(config.data.get("path")), "real": str(real_dir)},
              "seconds": round(time.time() - t0, 1)}
    (args.out / "input_sets.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| inputs | network | SIMULATED VO2 R² | RMSE (mL/min) | VO2max MAPE | "
             "REAL held-out VO2 R² | RMSE (mL/min) | VO2max MAPE |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        for kind in ("dropout", "specialist"):
            s, r = row[kind]["sim"], row[kind]["real"]
            lines.append(f"| {name} | {kind} | {s['vo2_r2']:.3f} | {s['vo2_rmse']:.0f} | "
                         f"{s['vo2max_mape']:.1f}% | {r['vo2_r2']:.3f} | {r['vo2_rmse']:.0f} | "
                         f"{r['vo2max_mape']:.1f}% |")
    (args.out / "input_sets.md").write_text(
        "# One network with channel dropout vs one per input set\n\n"
        f"`bench/input_sets.py --model {args.model}` (seed {config.seed}; spiking models; "
        "VO2max: the head)\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
