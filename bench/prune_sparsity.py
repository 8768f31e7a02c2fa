"""Benchmark: global magnitude pruning with masked fine-tuning, and energy per window.

One-shot pruning throughout, the recipe of ``vo2spike compress`` when these results were
measured (it prunes gradually since: bench/pruned_vo2max.py).

Simulates the cohort of the real Malaga demographics (mixed protocols) and trains a run
(``train.train_run``: spiking model and ANN twin, with the given spike-rate penalty), then:

1. masked fine-tuning epochs against accuracy and time at 70% sparsity (both models);
2. the sparsity sweep (VO2 R², VO2max R² against sparsity, both models) on the SIMULATED
   person-disjoint test split, with the chosen epochs;
3. leave-one-person-out on the REAL Yo-Yo recordings, float against 70% pruned: the
   simulation-only model (float), or its pruned and simulation-fine-tuned copy (masks kept
   with ``prune.fine_tune_pruned``), fine-tuned per fold on the other people's real windows
   (``crossval``'s recipe), with the run's penalty;
4. operations and energy per window (``compress.energy``) of the float and the 70%-pruned
   spiking model and twin on the simulated test split.

Writes bench/results/prune_sparsity.{json,md,png} (``prune_sparsity-pP-seedS.*`` for
another penalty or seed); trained and pruned
models are kept in ``--work`` and reused (delete them to recompute).

    .venv/bin/python bench/prune_sparsity.py [--penalty 0] [--epochs 8] \
        [--epochs-grid 0 2 4 8] [--sparsities 0.5 0.7 0.8 0.9 0.95] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from vo2spike.compress.energy import energy_report, energy_table
from vo2spike.compress.prune import (
    DEFAULT_SPARSITY,
    fine_tune_pruned,
    prune_and_fine_tune,
    score_model,
    sparsity,
    sweep_plot,
    sweep_table,
)
from vo2spike.config import FineTuneConfig, TrainConfig
from vo2spike.data.k5 import convert_yoyo
from vo2spike.data.simulate import DEFAULT_CALIBRATION, write_cohort
from vo2spike.data.split import split_masks
from vo2spike.data.windows import prepare_windows
from vo2spike.inference import load_model
from vo2spike.model.net import VO2Net
from vo2spike.pipeline import REPO, SHARED_DEMOGRAPHICS, SHARED_YOYO
from vo2spike.train import fine_tune, save_weights, train_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spike_sparsity import lopo  # noqa: E402

MODELS = ("spiking", "twin")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--penalty", default=str(TrainConfig().spike_rate_penalty),
                    help="spike-rate penalty of the training")
    ap.add_argument("--epochs", type=int, default=8, help="masked fine-tuning epochs")
    ap.add_argument("--epochs-grid", type=int, nargs="*", default=[0, 2, 4, 8])
    ap.add_argument("--sparsities", type=float, nargs="*", default=[0.5, 0.7, 0.8, 0.9, 0.95])
    ap.add_argument("--lopo-models", nargs="*", default=list(MODELS), choices=MODELS)
    ap.add_argument("--n-tests", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 epoch of training and of each fine-tuning")
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "prune_sparsity")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(args.threads)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    tag = f"seed{args.seed}-n{args.n_tests or 'all'}-p{args.penalty}"
    default_penalty = float(args.penalty) == TrainConfig().spike_rate_penalty
    stem = "prune_sparsity" + ("" if default_penalty else f"-p{args.penalty}") + (
        f"-seed{args.seed}" if args.seed else "")

    sim_dir = write_cohort(args.work / f"sim-{DEFAULT_CALIBRATION}-mixed", n_tests=args.n_tests,
                           demographics_csv=SHARED_DEMOGRAPHICS, protocol="mixed",
                           seed=args.seed, force=True)
    prepared = prepare_windows(sim_dir)
    sim = prepared[1]
    run = args.work / f"run-{tag}"
    quick = {"epochs": 1} if args.quick else {}
    tcfg = TrainConfig(spike_rate_penalty=float(args.penalty), **quick)
    ftcfg = FineTuneConfig(spike_rate_penalty=float(args.penalty), **quick)
    if not (run / "metrics.json").exists():
        train_run(sim_dir, run, tcfg, seed=args.seed, force=True, prepared=prepared)
    floats: dict[str, VO2Net] = {}
    for name in MODELS:
        floats[name], norm, config = load_model(run, twin=name == "twin")
    masks = split_masks(sim.person, config.split)
    train, val, test = (sim.subset(masks[k]) for k in ("train", "val", "test"))
    convert_yoyo(SHARED_YOYO, args.work / "yoyo", force=True)
    real_ds, real = prepare_windows(args.work / "yoyo")

    results_file = args.work / f"results-{tag}.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    results.update(seed=args.seed, penalty=args.penalty, simulated=prepared[0].source["kind"],
                   real=real_ds.source["kind"], n_tests=int(sim.tests.shape[0]),
                   n_prunable=16_512)
    pruned_cache: dict[tuple[str, float, int], VO2Net] = {}

    def pruned(name: str, amount: float, epochs: int) -> tuple[VO2Net, float]:
        """The pruned + masked-fine-tuned model (cached on disk) and its seconds."""
        key = (name, amount, epochs)
        path = args.work / f"pruned-{tag}-{name}-s{amount:g}-e{epochs}.safetensors"
        seconds_file = path.with_suffix(".seconds")
        if key in pruned_cache:
            return pruned_cache[key], float(seconds_file.read_text())
        if path.exists():
            model = VO2Net(floats[name].config)
            model.load_state_dict(load_file(str(path)))
            seconds = float(seconds_file.read_text())
        else:
            t0 = time.time()
            model = prune_and_fine_tune(floats[name], norm, train, val, None, amount,
                                        config.train, None, args.seed, epochs, steps=())
            seconds = round(time.time() - t0, 1)
            save_weights(model, path)
            seconds_file.write_text(str(seconds))
        pruned_cache[key] = model.eval()
        return model, seconds

    def save() -> None:
        results_file.write_text(json.dumps(results, indent=2) + "\n")

    # 1. Masked fine-tuning epochs against accuracy and time, at 70% sparsity.
    rows = []
    for epochs in args.epochs_grid:
        for name in MODELS:
            model, seconds = pruned(name, DEFAULT_SPARSITY, epochs)
            rows.append({"model": name, "epochs": epochs, "seconds": seconds,
                         **score_model(model, norm, test)})
            print("epochs", json.dumps(rows[-1]), flush=True)
    results["epochs_tradeoff"] = rows
    save()

    # 2. Sweep at the chosen epochs.
    sweep = []
    for name in MODELS:
        sweep.append({"model": name, "sparsity": 0.0, "measured_sparsity": 0.0,
                      **score_model(floats[name], norm, test), "seconds": 0.0})
        for amount in args.sparsities:
            model, seconds = pruned(name, amount, args.epochs)
            sweep.append({"model": name, "sparsity": amount,
                          "measured_sparsity": sparsity(model),
                          **score_model(model, norm, test), "seconds": seconds})
            print("sweep", json.dumps(sweep[-1]), flush=True)
    results["sweep"] = sweep
    save()
    sweep_plot(sweep, out / f"{stem}.png",
               f"SIMULATED test split, penalty {args.penalty}, {args.epochs} masked epochs")

    # 3. REAL leave-one-person-out: float against 70% pruned.
    results.setdefault("lopo", {})
    for name in args.lopo_models:
        for kind in ("float", "pruned"):
            key = f"{name}_{kind}"
            if key in results["lopo"]:
                continue
            t0 = time.time()
            if kind == "float":
                r = lopo(floats[name], norm, real, train, ftcfg, args.seed, fine_tune)
            else:
                model, _ = pruned(name, DEFAULT_SPARSITY, args.epochs)
                r = lopo(model, norm, real, train, ftcfg, args.seed, fine_tune_pruned)
            r["seconds"] = round(time.time() - t0)
            results["lopo"][key] = r
            print("lopo", key, json.dumps(r), flush=True)
            save()

    # 4. Energy per window: float and 70% pruned, simulated test split and real windows.
    snn70, twin70 = (pruned(n, DEFAULT_SPARSITY, args.epochs)[0] for n in MODELS)
    results["energy"] = {
        "float, SIMULATED test split": energy_report(floats["spiking"], floats["twin"], norm,
                                                     test.x),
        "70% pruned, SIMULATED test split": energy_report(snn70, twin70, norm, test.x),
        "70% pruned, REAL windows (simulation-trained models)": energy_report(
            snn70, twin70, norm, real.x)}
    save()
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{stem}.md").write_text(render(results, args.epochs, stem) + "\n")
    print(render(results, args.epochs, stem))


def render(results: dict, epochs: int, stem: str) -> str:
    """The markdown report."""
    lines = [f"Pruning benchmark, seed {results['seed']}, spike-rate penalty "
             f"{results['penalty']}. SIMULATED: {results['n_tests']} tests of the real Malaga "
             "demographics, mixed protocols, person-disjoint test split. REAL: "
             f"leave-one-person-out on the Yo-Yo recordings ({results['real']}).", "",
             "## Masked fine-tuning epochs at 70% sparsity (SIMULATED test split)", "",
             "| model | epochs (max; early stopping) | VO2 R² | VO2max R² | seconds |",
             "|---|---|---|---|---|"]
    for r in results["epochs_tradeoff"]:
        lines.append(f"| {r['model']} | {r['epochs']} | {r['vo2_r2']:.3f} | "
                     f"{r['vo2max_r2']:.3f} | {r['seconds']:.0f} |")
    lines += ["", f"## Sparsity sweep ({epochs} masked fine-tuning epochs; SIMULATED test "
              "split)", "", sweep_table(results["sweep"]), "", f"![sweep]({stem}.png)", "",
              "## REAL recordings, leave-one-person-out: float against 70% pruned", "",
              "| model | VO2 R² | VO2 RMSE (mL/min) | VO2max R² (sessions) | VO2max MAPE | "
              "seconds |", "|---|---|---|---|---|---|"]
    for key, r in results.get("lopo", {}).items():
        lines.append(f"| {key.replace('_', ', ')} | {r['vo2']['r2']:.3f} | "
                     f"{r['vo2']['rmse']:.0f} | {r['vo2max']['r2']:.3f} | "
                     f"{r['vo2max']['mape']:.1f}% | {r['seconds']} |")
    for kind, rep in results.get("energy", {}).items():
        lines += ["", f"## Operations and energy per window: {kind}", "", energy_table(rep)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
