"""Measure the int8 path on a trained run: float vs int8 R² (spiking model and ANN twin, with
and without 70% of the weights zeroed by global magnitude), the calibration rule, and the C
engine (bit-exact counts, flash / RAM, instructions, QEMU time, time and energy per window).

    python -m vo2spike.compress.measure --model RUN_DIR --data DATA_DIR [--real REAL_DIR]

Pruning here is a stand-in (no fine-tuning), only to check that the int8 path keeps zeros
and accuracy; real pruning is ``vo2spike.compress.prune``'s job.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vo2spike.compress import export_c as ec
from vo2spike.compress.int_engine import encode_inputs, predictions, run_windows
from vo2spike.compress.prune import make_permanent, prunable, prune_global
from vo2spike.compress.quantize import DEFAULT_PERCENTILE, quantize_model
from vo2spike.config import load_config
from vo2spike.data.split import split_masks
from vo2spike.data.windows import prepare_windows
from vo2spike.inference import load_model, predict_windows
from vo2spike.metrics import score


def zero_smallest(model: torch.nn.Module, amount: float) -> int:
    """Zero the ``amount`` fraction of conv / linear weights with the smallest magnitude
    over the whole model (global L1, in place); returns how many weights are now zero."""
    pruned = make_permanent(prune_global(model, amount))
    model.load_state_dict(pruned.state_dict())
    return sum(int((m.weight == 0).sum()) for m, _ in prunable(model))


def _splits(run_dir: Path, data_dir: Path) -> dict:
    """The run's train / val / test windows of ``data_dir``."""
    config = load_config(run_dir)
    _, w = prepare_windows(data_dir)
    return {k: w.subset(m) for k, m in split_masks(w.person, config.split).items()}


def _r2(w, pred) -> tuple[float, float]:
    s, _ = score(w, pred.vo2, pred.vo2max)
    return s["vo2_ml_min"]["r2"], s["vo2max_ml_min"]["r2"]


def accuracy_table(run_dir: Path, data_dir: Path, percentile: float = DEFAULT_PERCENTILE,
                   amounts: tuple[float, ...] = (0.0, 0.7)) -> list[dict]:
    """Float vs int8 R² on the run's test split, for the spiking model and the twin, at each
    fraction of zeroed weights; also returns the int8 models (key ``model``)."""
    split = _splits(run_dir, data_dir)
    train, test = split["train"], split["test"]
    rows = []
    for twin in (False, True):
        for amount in amounts:
            model, norm, _ = load_model(run_dir, twin=twin)
            zeros = zero_smallest(model, amount) if amount else 0
            m = quantize_model(model, norm, train.x, percentile=percentile)
            f = predict_windows(model, norm, test.x)
            p = predictions(m, run_windows(m, encode_inputs(test.x)))
            (fv, fm), (iv, im) = _r2(test, f), _r2(test, p)
            rows.append({"model": "ANN twin" if twin else "spiking", "zeroed": amount,
                         "zeros": zeros, "float_vo2_r2": fv, "int8_vo2_r2": iv,
                         "float_vo2max_r2": fm, "int8_vo2max_r2": im,
                         "float_rates": f.spike_rates, "int8_rates": p.spike_rates,
                         "n_windows": len(test), "model_int8": m})
    return rows


def calibration_table(run_dir: Path, data_dir: Path,
                      percentiles: tuple[float, ...] = (100.0, 99.999, 99.99, 99.9)) -> list:
    """Validation-split R² of the int8 models for each calibration percentile (100 = max)."""
    split = _splits(run_dir, data_dir)
    train, val = split["train"], split["val"]
    rows = []
    for twin in (False, True):
        model, norm, _ = load_model(run_dir, twin=twin)
        f = _r2(val, predict_windows(model, norm, val.x))
        for p in percentiles:
            m = quantize_model(model, norm, train.x, percentile=p)
            rows.append({"model": "ANN twin" if twin else "spiking", "percentile": p,
                         "float": f, "int8": _r2(val, predictions(m, run_windows(
                             m, encode_inputs(val.x))))})
    return rows


def c_measurements(m, q_test: np.ndarray, q_real: np.ndarray | None, arm_windows: int = 32,
                   workdir: Path | None = None) -> dict:
    """Export + build ``m``; bit-exact counts on the host (test split, real windows) and on
    QEMU; flash / RAM; instructions per window (QEMU icount on the Cortex-M4 build,
    callgrind on the host build); time and energy estimate at 64 MHz."""
    tmp = Path(tempfile.mkdtemp(prefix="vo2spike-measure-", dir=workdir))
    try:
        c_dir = tmp / "c"
        report = ec.export_c(m, c_dir, test_windows=q_test[:arm_windows])
        ec.build_host(c_dir)
        out: dict = {"export": report}
        ref = run_windows(m, q_test)
        o = ec.run_harness(c_dir, q_test)
        out["host_equal_test"] = [int((o == np.concatenate([ref.out, ref.spikes], 1))
                                      .all(axis=1).sum()), len(q_test)]
        if q_real is not None:
            ref = run_windows(m, q_real)
            o = ec.run_harness(c_dir, q_real)
            out["host_equal_real"] = [int((o == np.concatenate([ref.out, ref.spikes], 1))
                                          .all(axis=1).sum()), len(q_real)]
        elf = ec.build_arm(c_dir)
        run = ec.run_qemu(elf)
        host = ec.run_harness(c_dir, q_test[:arm_windows])
        out["qemu_equal"] = [int((run.windows == host).all(axis=1).sum()), len(run.windows)]
        out["qemu_stream_equal"] = bool((run.stream == ec.expected_stream(
            m, q_test[:arm_windows])).all())
        out["qemu_seconds"] = run.seconds
        counted = ec.run_qemu(elf, icount=True)
        arm_instr = float(counted.ticks.mean() * ec.INSTRUCTIONS_PER_TICK)
        out["arm_instructions_per_window"] = arm_instr
        out["arm_instructions_range"] = [int(counted.ticks.min() * ec.INSTRUCTIONS_PER_TICK),
                                         int(counted.ticks.max() * ec.INSTRUCTIONS_PER_TICK)]
        out["sizes"] = ec.size_report(c_dir)
        out["float_symbols"] = ec.float_symbols(c_dir)
        out["x86_instructions_per_window"] = ec.callgrind_instructions(c_dir, q_test[:8])
        out["energy"] = ec.energy_estimate(arm_instr)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="trained run directory")
    ap.add_argument("--data", type=Path, required=True, help="the data it was trained on")
    ap.add_argument("--real", type=Path, help="a converted real data directory (Yo-Yo)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--no-calibration", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.time()
    results: dict = {}
    if not args.no_calibration:
        results["calibration"] = calibration_table(args.model, args.data)
        print("| model | calibration | float VO2 R² | int8 VO2 R² | float VO2max R² | "
              "int8 VO2max R² |\n|---|---|---|---|---|---|")
        for r in results["calibration"]:
            rule = "max" if r["percentile"] >= 100 else f"p{r['percentile']:g}"
            print(f"| {r['model']} | {rule} | {r['float'][0]:.4f} | {r['int8'][0]:.4f} | "
                  f"{r['float'][1]:.4f} | {r['int8'][1]:.4f} |")
    rows = accuracy_table(args.model, args.data)
    print("\n| model | zeroed | float VO2 R² | int8 VO2 R² | Δ | float VO2max R² | "
          "int8 VO2max R² | Δ |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['zeroed']:.0%} | {r['float_vo2_r2']:.4f} | "
              f"{r['int8_vo2_r2']:.4f} | {r['int8_vo2_r2'] - r['float_vo2_r2']:+.4f} | "
              f"{r['float_vo2max_r2']:.4f} | {r['int8_vo2max_r2']:.4f} | "
              f"{r['int8_vo2max_r2'] - r['float_vo2max_r2']:+.4f} |")
    results["accuracy"] = [{k: v for k, v in r.items() if k != "model_int8"} for r in rows]
    config = load_config(args.model)
    _, w = prepare_windows(args.data)
    q_test = encode_inputs(w.subset(split_masks(w.person, config.split)["test"]).x)
    q_real = encode_inputs(prepare_windows(args.real)[1].x) if args.real else None
    results["c"] = {}
    for r in rows:
        key = f"{r['model']} {r['zeroed']:.0%}"
        c = c_measurements(r["model_int8"], q_test, q_real)
        results["c"][key] = c
        s, e = c["sizes"], c["energy"]
        print(f"\nC engine, {key}: host bit-exact {c['host_equal_test']}"
              + (f", real {c['host_equal_real']}" if "host_equal_real" in c else "")
              + f"; QEMU bit-exact {c['qemu_equal']}, stream {c['qemu_stream_equal']}, "
              f"{c['qemu_seconds']:.1f} s for 32 windows + stream\n"
              f"  flash {s['flash_bytes']} B (code {s['engine_code_bytes']}, constants "
              f"{s['engine_const_bytes']}), RAM {s['engine_ram_bytes']} B static + "
              f"{s['engine_stack_bytes']} B stack; weights stored "
              f"{c['export']['storage_bytes']}\n"
              f"  Cortex-M4 instructions/window {c['arm_instructions_per_window']:.0f} "
              f"(range {c['arm_instructions_range']}); x86-64 (callgrind, gcc -O2 host "
              f"build) {c['x86_instructions_per_window']:.0f}; at 64 MHz: {e['ms']:.1f} ms, "
              f"{e['uJ']:.0f} µJ per window; float symbols {c['float_symbols']}")
    print(f"\n({time.time() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
