"""``vo2spike compress``: prune a trained run, quantise it to integer-only int8, and measure
what that costs and saves, on the simulated test split and on real people held out.

Recipe (the run's own): the simulation-only weights of the spiking model and of its ANN twin
are pruned (global L1 magnitude over all Conv1d and Linear weights) and fine-tuned with their
masks on the simulated training windows; when the run was fine-tuned on real recordings, the
pruned models are fine-tuned on them the same way (masks kept); the masks are made permanent
and the models quantised (activation scales calibrated on simulated training windows).

Real people held out: leave-one-person-out exactly as ``vo2spike crossval`` does it for the
float model, starting from the pruned simulation-only models: in each fold they are
fine-tuned (masks kept) on the other people's real windows, quantised, and predict the
held-out person.

The compressed folder is a run directory (``config.json`` with a ``compression`` record,
pruned float ``model.safetensors`` / ``twin.safetensors``) plus ``int8.*`` / ``int8_twin.*``
and the report ``compression.md`` / ``compression.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vo2spike.compress import export_c as ec
from vo2spike.compress.energy import dense_lif2_note, energy_report, energy_table
from vo2spike.compress.fixedpoint import leak_shifts
from vo2spike.compress.int_engine import Int8Engine, encode_inputs, predictions, run_windows
from vo2spike.compress.prune import (
    DEFAULT_SPARSITY,
    FINETUNE_EPOCHS,
    GRADUAL_STEPS,
    PruneRecipe,
    fine_tune_pruned,
    prune_and_fine_tune,
    pruning_schedule,
    sparsity,
    sparsity_sweep,
    step_epochs,
    sweep_plot,
    sweep_table,
    with_shift_leak,
)
from vo2spike.compress.quantize import quantize_folder, quantize_model
from vo2spike.config import (
    MODEL_FILE,
    TWIN_FILE,
    CompressionRecord,
    FineTuneConfig,
    RunConfig,
    load_config,
    save_config,
)
from vo2spike.crossval import (
    leave_one_person_out,
    r2_difference_interval,
    score_lopo,
    set_column,
)
from vo2spike.data.read import DataError, Dataset
from vo2spike.data.split import split_masks
from vo2spike.data.windows import (
    FULL_INPUT_SET,
    INPUT_SETS,
    Windows,
    prepare_windows,
    with_input_set,
)
from vo2spike.inference import load_model, predict_windows
from vo2spike.metrics import input_set_results, input_set_table, interval_table, label, score
from vo2spike.model.net import VO2Net, count_parameters
from vo2spike.outputs import atomic_dir, check_writable, write_json
from vo2spike.threads import cpu_kernels
from vo2spike.timing import untimed
from vo2spike.train import save_weights
from vo2spike.vo2max import vo2max_record

log = logging.getLogger("vo2spike")

#: Where ``vo2spike run`` puts the compressed model inside a run directory.
#: Test windows run on the emulated Cortex-M4 (QEMU with -icount; spread over the split).
QEMU_WINDOWS = 16
#: Test windows of the per-stage instruction profiles (QEMU trace, callgrind): every
#: fourth of the QEMU windows.
PROFILE_WINDOWS = 4
#: The models compared, by id (labels in vo2spike.metrics.MODEL_LABELS).
SIM_ROWS = ["spiking", "pruned", "pruned_int8", "pruned_c", "twin", "twin_pruned_int8"]
REAL_ROWS = ["spiking_real", "pruned_real", "pruned_int8_real", "twin_pruned_int8_real"]


@dataclass
class CompressOptions:
    """What ``vo2spike compress`` was asked to do."""

    sparsity: float = DEFAULT_SPARSITY  # fraction of Conv1d + Linear weights set to zero
    finetune_epochs: int = FINETUNE_EPOCHS  # most epochs of masked fine-tuning (simulated)
    gradual: bool = True  # prune in the steps of prune.pruning_schedule; False: one-shot
    real: Path | None = None  # real recordings; default: those the run was fine-tuned on
    sweep: tuple[float, ...] = ()  # also measure accuracy at these sparsities
    c_engine: bool = True  # also run and measure the C engine (needs gcc)


def _check_same_data(found: dict, expected: dict, data_dir: Path, what: str) -> None:
    if found.get("sha256") != expected.get("sha256"):
        raise DataError(f"{data_dir}: not the {what} this run used ({expected.get('path')}; "
                        "SHA256 differs); pass that folder")


def lopo_compressed(pruned_sim: dict[str, VO2Net], norm, real: Windows, sim_train: Windows,
                    cfg: FineTuneConfig, seed: int, calibration_x: np.ndarray) -> pd.DataFrame:
    """Leave-one-person-out of the pruned models: columns ``<id>_vo2``, ``<id>_vo2max`` for
    pruned_real (float), pruned_int8_real and twin_pruned_int8_real (mL/min), and
    pruned_int8_real given each watch input set (``crossval.set_column``)."""
    person = np.array([str(p) for p in real.person])
    out = pd.DataFrame({"ID_test": real.id_test, "ID": person, "vo2": real.vo2,
                        "vo2max": real.vo2max})
    for held_out in tqdm(sorted(set(person)), desc="leave-one-person-out (compressed)",
                         leave=False):
        test = person == held_out
        for name in ("spiking", "twin"):
            tuned = fine_tune_pruned(pruned_sim[name], real.subset(~test), sim_train, norm,
                                     cfg, seed)
            if name == "spiking":
                p = predict_windows(tuned, norm, real.x[test])
                out.loc[test, "pruned_real_vo2"] = p.vo2
                out.loc[test, "pruned_real_vo2max"] = p.vo2max
            key = "pruned_int8_real" if name == "spiking" else "twin_pruned_int8_real"
            m = quantize_model(tuned, norm, calibration_x)
            for input_set in INPUT_SETS if name == "spiking" else [FULL_INPUT_SET]:
                x = with_input_set(real.x[test], input_set)
                q = predictions(m, run_windows(m, encode_inputs(x)))
                col = set_column(key, input_set)
                out.loc[test, f"{col}_vo2"], out.loc[test, f"{col}_vo2max"] = q.vo2, q.vo2max
    return out


def _c_measurements(folder: Path, test_x: np.ndarray, int8_out) -> dict:
    """The C engine on the test windows (bit-exactness with the NumPy engine), its flash and
    RAM on a Cortex-M4, instructions per window, time and energy at 64 MHz. Whatever needs a
    missing tool is reported as not measured."""
    out: dict = {}
    if shutil.which("gcc") is None or shutil.which("make") is None:
        return {"skipped": "gcc / make not installed"}
    engine = ec.CEngine(folder)
    q = encode_inputs(test_x)
    o = engine.run(q)
    out["bit_exact_windows"] = [int((o.out == int8_out.out).all(axis=1).sum()), len(q)]
    out["predictions"] = predictions(engine.model, o)
    # The emulated M4 runs windows spread evenly over the test split (its activity, and so
    # its spike-driven work, changes along a test).
    pick = np.linspace(0, len(q) - 1, min(QEMU_WINDOWS, len(q))).astype(int)
    few = q[pick[np.linspace(0, len(pick) - 1, min(PROFILE_WINDOWS, len(pick))).astype(int)]]
    if shutil.which("arm-none-eabi-gcc"):
        elf = ec.build_arm(engine.c_dir, test_windows=q[pick])
        out["sizes"] = ec.size_report(engine.c_dir)
        if shutil.which("qemu-system-arm"):
            run = ec.run_qemu(elf, icount=True)
            host = np.concatenate([int8_out.out, int8_out.spikes], axis=1)[pick]
            same = (run.windows == host).all(axis=1)
            stream = ec.expected_stream(engine.model, q[pick])
            out["qemu"] = {"board": "mps2-an386 (Cortex-M4)", "windows": len(run.windows),
                           "bit_exact_windows": int(same.sum()),
                           "stream_bit_exact": bool(np.array_equal(run.stream, stream)),
                           "instructions_per_window": float(run.ticks.mean()
                                                            * ec.INSTRUCTIONS_PER_TICK)}
            out["profile_qemu"] = ec.profile_qemu(engine.c_dir, few)
            out["energy_estimate_64mhz"] = ec.energy_estimate(
                out["qemu"]["instructions_per_window"])
        else:
            out["qemu_skipped"] = "qemu-system-arm not installed"
    else:
        out["sizes_skipped"] = "arm-none-eabi-gcc not installed"
    if shutil.which("valgrind"):
        n = ec.callgrind_instructions(engine.c_dir, q[pick])
        out["x86_instructions_per_window"] = n
        out["profile_callgrind"] = ec.profile_callgrind(engine.c_dir, few)
        out["instructions_build"] = "host build (gcc -O2, x86-64), valgrind callgrind, " \
                                    f"vo2spike_window only, {len(pick)} test windows"
    else:
        out["instructions_skipped"] = "valgrind not installed"
    out["storage_bytes"] = ec.storage_report(engine.model)
    return out


def _model_row(model: VO2Net | None, m: dict, *, nonzero: int, params: int, model_bytes: int,
               storage: str, spike_rates: dict, energy_nj: float | None,
               synaptic_ops: float | None) -> dict:
    return {"sim": m, "nonzero_params": nonzero, "params": params, "model_bytes": model_bytes,
            "storage": storage, "spike_rates": spike_rates, "energy_nj_per_window": energy_nj,
            "synaptic_ops_per_window": synaptic_ops}


def _nonzero(model: VO2Net) -> int:
    """Non-zero trainable parameters (BatchNorm's running statistics are not counted)."""
    return int(sum(int((p != 0).sum()) for p in model.parameters()))


def compress_run(run_dir: Path, data_dir: Path, out: Path, opts: CompressOptions | None = None,
                 *, force: bool = False, prepared: tuple[Dataset, Windows] | None = None,
                 real_prepared: tuple[Dataset, Windows] | None = None,
                 float_lopo: pd.DataFrame | None = None, source: str | None = None,
                 say: Callable[[str], None] = print,
                 stage: Callable[[str], ContextManager[None]] = untimed) -> dict:
    """Prune, quantise and measure a run; write the compressed folder ``out``. Returns the
    report (what compression.json holds). ``prepared`` / ``real_prepared``: already loaded
    training data / real recordings; ``float_lopo``: the float models' leave-one-person-out
    predictions when already computed (``crossval.leave_one_person_out``); ``source``: the
    run's name in the report when ``run_dir`` is a temporary place (default: run_dir);
    ``stage``: times each stage (``StageClock.stage``)."""
    t0 = time.time()
    source = source or str(run_dir)
    opts = opts or CompressOptions()
    run_dir, data_dir, out = Path(run_dir), Path(data_dir), Path(out)
    if not 0.0 <= opts.sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {opts.sparsity}")
    config = load_config(run_dir)
    real_dir = None
    if config.fine_tune is not None:
        real_dir = Path(opts.real or config.fine_tune.data["path"])
    inputs = [p for p in (run_dir, data_dir, real_dir) if p is not None]
    check_writable(out, force, kind="compressed", inputs=inputs)
    dataset, windows = prepared or prepare_windows(data_dir)
    _check_same_data(dataset.source, config.data, data_dir, "training data")
    masks = split_masks(windows.person, config.split)
    sim_train, sim_val, sim_test = (windows.subset(masks[k]) for k in ("train", "val", "test"))
    real = None
    if real_dir is not None:
        real_ds, real = real_prepared or prepare_windows(real_dir)
        _check_same_data(real_ds.source, config.fine_tune.data, real_dir, "real recordings")
    ft_cfg = config.fine_tune.config if config.fine_tune else \
        FineTuneConfig(spike_rate_penalty=config.train.spike_rate_penalty)

    # The integer engines leak by shift and subtract (beta = 1 - 2^-k): the pruned models
    # are fine-tuned with that leak.
    sim_only = {name: with_shift_leak(load_model(run_dir, twin=name == "twin",
                                                 sim_only=True)[0])
                for name in ("spiking", "twin")}
    final = {name: load_model(run_dir, twin=name == "twin")[0] for name in ("spiking", "twin")}
    norm = config.normalization
    steps = GRADUAL_STEPS if opts.gradual else ()
    recipe = PruneRecipe()
    schedule = pruning_schedule(opts.sparsity, steps)
    say(f"pruning {' -> '.join(f'{s:.0%}' for s in schedule)} of the weights (global L1) of "
        f"the spiking model and its twin, masked fine-tuning after each step (up to "
        f"{opts.finetune_epochs} epochs at the last)")
    with stage("compress: gradual pruning + fine-tuning (sim)"):
        pruned_sim = {name: prune_and_fine_tune(model, norm, sim_train, sim_val, None,
                                                opts.sparsity, config.train, ft_cfg,
                                                config.seed, opts.finetune_epochs, steps,
                                                recipe)
                      for name, model in sim_only.items()}
    pruned = dict(pruned_sim)
    if real is not None:
        with stage("compress: pruned models fine-tuned on real"):
            pruned = {name: fine_tune_pruned(m, real, sim_train, norm, ft_cfg, config.seed)
                      for name, m in pruned_sim.items()}

    report: dict = {"data": {"simulated": dataset.source["kind"],
                             "real": real_ds.source["kind"] if real is not None else None},
                    "sparsity": opts.sparsity, "schedule": schedule,
                    "finetune_epochs": opts.finetune_epochs,
                    "prune_recipe": dataclasses.asdict(recipe),
                    "measured_sparsity": {k: sparsity(m) for k, m in pruned.items()},
                    "source": source, "models": {}}
    with atomic_dir(out, force=force, kind="compressed", inputs=inputs) as work:
        cfg = dataclasses.replace(
            config, model=pruned["spiking"].config,
            weights={MODEL_FILE: save_weights(pruned["spiking"], work / MODEL_FILE),
                     TWIN_FILE: save_weights(pruned["twin"], work / TWIN_FILE)},
            compression=CompressionRecord(source, dict(config.weights), opts.sparsity,
                                          opts.finetune_epochs, int(len(sim_train)),
                                          schedule[:-1], cpu_kernels()))
        save_config(work, cfg)
        with stage("compress: int8 calibration"):
            # quantize_folder lists the int8 files in config.json: keep them in cfg, which
            # is saved again below with the VO2max interval.
            cfg.weights.update(quantize_folder(work, sim_train.x))
        say("measuring float, pruned, int8 and C engines on the simulated test split")
        with stage("compress: float, int8 and C engines on the sim test split"):
            report["models"] = _simulated_rows(work, final, pruned, norm, sim_test, opts,
                                               report)
        if real is not None:
            say("real recordings: leave-one-person-out of the pruned and int8 models")
            with stage("compress: leave-one-person-out, pruned + int8 (real)"):
                report["real"] = _real_rows(run_dir, final, pruned_sim, norm, real,
                                            sim_train, windows, ft_cfg, config, float_lopo)
            cfg.vo2max = vo2max_record(
                report["real"]["input_sets"],
                "leave-one-person-out residuals of the pruned + int8 model on REAL recordings "
                f"({real_ds.source['kind']}; {report['real']['n_sessions']} sessions of "
                f"{report['real']['n_people']} people)")
            save_config(work, cfg)
        if opts.sweep:
            say(f"sparsity sweep: {', '.join(f'{s:g}' for s in opts.sweep)}")
            rows = sparsity_sweep(sim_only, norm, sim_train, sim_val, sim_test, opts.sweep,
                                  real=real, train_cfg=config.train, fine_tune_cfg=ft_cfg,
                                  seed=config.seed, epochs=opts.finetune_epochs, steps=steps,
                                  references=final)
            report["sweep"] = rows
            (work / "sweep.md").write_text(sweep_table(rows) + "\n")
            sweep_plot(rows, work / "sweep.png")
        report["seconds"] = round(time.time() - t0, 1)
        write_json(work / "compression.json", _jsonable(report))
        (work / "compression.md").write_text(render_compression(report, cfg))
    return report


def _simulated_rows(folder: Path, final: dict, pruned: dict, norm, test: Windows,
                    opts: CompressOptions, report: dict) -> dict:
    """Every model's metrics on the simulated test split, sizes, spike rates and energy."""
    rows: dict = {}
    float_energy = energy_report(final["spiking"], final["twin"], norm, test.x)
    pruned_energy = energy_report(pruned["spiking"], pruned["twin"], norm, test.x)
    report["energy"] = {"float": float_energy, "pruned": pruned_energy}
    params = count_parameters(final["spiking"])
    for name, model, energy, prec in (("spiking", final["spiking"], float_energy, "float"),
                                      ("pruned", pruned["spiking"], pruned_energy, "float"),
                                      ("twin", final["twin"], float_energy, "float")):
        p = predict_windows(model, norm, test.x)
        key = "twin_dense" if name == "twin" else "snn"
        ops = energy["synaptic_ops"]
        rows[name] = _model_row(
            model, score(test, p.vo2, p.vo2max)[0], nonzero=_nonzero(model), params=params,
            model_bytes=4 * params, storage="float32, dense", spike_rates=p.spike_rates,
            energy_nj=energy["energy_nj"][prec][key]["total"],
            synaptic_ops=None if name == "twin" else ops["snn_lif1_macs"] + ops["snn_lif2_acs"])
    int8 = Int8Engine(folder)
    q = encode_inputs(test.x)
    int8_out = run_windows(int8.model, q)
    p = predictions(int8.model, int8_out)
    storage = ec.storage_report(int8.model)
    ops = pruned_energy["synaptic_ops"]
    int8_row = dict(nonzero=_nonzero(pruned["spiking"]), params=params,
                    model_bytes=storage["stored"],
                    storage="int8, 2x4 blocks; LIF2 " + ("dense" if ec.is_dense(
                        int8.model.t("lif2.weight").T) else "bitmap"),
                    energy_nj=pruned_energy["energy_nj"]["int8"]["snn"]["total"],
                    synaptic_ops=ops["snn_lif1_macs"] + ops["snn_lif2_acs"])
    rows["pruned_int8"] = _model_row(None, score(test, p.vo2, p.vo2max)[0],
                                     spike_rates=p.spike_rates, **int8_row)
    if opts.c_engine:
        c = _c_measurements(folder, test.x, int8_out)
        report["c_engine"] = {k: v for k, v in c.items() if k != "predictions"}
        if "predictions" in c:
            cp = c["predictions"]
            rows["pruned_c"] = _model_row(None, score(test, cp.vo2, cp.vo2max)[0],
                                          spike_rates=cp.spike_rates, **int8_row)
    twin8 = Int8Engine(folder, twin=True)
    tp = twin8.predict(test.x)
    rows["twin_pruned_int8"] = _model_row(
        None, score(test, tp.vo2, tp.vo2max)[0], nonzero=_nonzero(pruned["twin"]),
        params=params, model_bytes=ec.storage_report(twin8.model)["stored"],
        storage="int8, 2x4 blocks", spike_rates={},
        energy_nj=pruned_energy["energy_nj"]["int8"]["twin_dense"]["total"], synaptic_ops=None)
    return rows


def _real_rows(run_dir: Path, final: dict, pruned_sim: dict, norm, real: Windows,
               sim_train: Windows, sim_all: Windows, cfg: FineTuneConfig, config: RunConfig,
               float_lopo: pd.DataFrame | None) -> dict:
    """Leave-one-person-out metrics on real recordings: the float spiking model and the
    pruned / int8 models (each fold fine-tuned on the other people only)."""
    if float_lopo is None:
        float_lopo = leave_one_person_out(run_dir, real, sim_all, cfg)
    calibration = sim_train.x
    comp = lopo_compressed(pruned_sim, norm, real, sim_train, cfg, config.seed, calibration)
    pred = comp.copy()
    pred["spiking_real_vo2"] = float_lopo["spiking_real_vo2"].to_numpy()
    pred["spiking_real_vo2max"] = float_lopo["spiking_real_vo2max"].to_numpy()
    weights = real.tests.set_index("ID_test")["Weight"]
    return {"n_people": int(pred["ID"].nunique()), "n_sessions": int(pred["ID_test"].nunique()),
            "n_windows": int(len(pred)), "models": score_lopo(pred, weights, REAL_ROWS),
            "input_sets": input_set_results(
                real, {name: {"spiking": (pred[f"{set_column('pruned_int8_real', name)}_vo2"]
                                          .to_numpy(),
                                          pred[f"{set_column('pruned_int8_real', name)}_vo2max"]
                                          .to_numpy())}
                       for name in INPUT_SETS}, choose=True),
            "r2_difference_95": {m: r2_difference_interval(pred, m, "spiking_real")
                                 for m in ("pruned_real", "pruned_int8_real")}}


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def _points(a: float, b: float) -> str:
    return f"{100 * (a - b):+.1f}"


def compression_table(report: dict) -> str:
    """Markdown: every model on the simulated test split (accuracy, size, spikes, energy)."""
    rows = report["models"]
    base = rows["spiking"]["sim"]
    lines = ["| model | VO2 R² | Δ (points) | VO2 RMSE (mL/min) | VO2max R² | Δ (points) | "
             "VO2max RMSE (mL/min) | non-zero parameters | model bytes | spike rate "
             "LIF1 / LIF2 | synaptic ops / window | energy / window |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for mid in SIM_ROWS:
        if mid not in rows:
            continue
        r = rows[mid]
        m = r["sim"]
        v, x = m["vo2_ml_min"], m["vo2max_ml_min"]
        rates = r["spike_rates"]
        rate = f"{rates['lif1']:.3f} / {rates['lif2']:.3f}" if rates else "–"
        ops = f"{r['synaptic_ops_per_window']:,.0f}" if r["synaptic_ops_per_window"] else "–"
        energy = f"{r['energy_nj_per_window']:,.0f} nJ" if r["energy_nj_per_window"] else "–"
        lines.append(
            f"| {label(mid)} | {v['r2']:.3f} | {_points(v['r2'], base['vo2_ml_min']['r2'])} | "
            f"{v['rmse']:.0f} | {x['r2']:.3f} | "
            f"{_points(x['r2'], base['vo2max_ml_min']['r2'])} | {x['rmse']:.0f} | "
            f"{r['nonzero_params']:,} of {r['params']:,} | {r['model_bytes']:,} "
            f"({r['storage']}) | {rate} | {ops} | {energy} |")
    return "\n".join(lines)


def real_table(real: dict) -> str:
    """Markdown: leave-one-person-out on real recordings, float vs compressed."""
    rows = real["models"]
    base = rows["spiking_real"]
    lines = ["| model (REAL, held-out people) | VO2 R² | Δ (points) | VO2 RMSE (mL/min) | "
             "VO2max R² | Δ (points) | VO2max RMSE (mL/min) | VO2max MAPE |",
             "|---|---|---|---|---|---|---|---|"]
    for mid in REAL_ROWS:
        v, x = rows[mid]["vo2_ml_min"], rows[mid]["vo2max_ml_min"]
        lines.append(f"| {label(mid)} | {v['r2']:.3f} | "
                     f"{_points(v['r2'], base['vo2_ml_min']['r2'])} | {v['rmse']:.0f} | "
                     f"{x['r2']:.3f} | {_points(x['r2'], base['vo2max_ml_min']['r2'])} | "
                     f"{x['rmse']:.0f} | {x['mape']:.1f}% |")
    intervals = real.get("r2_difference_95", {})
    if intervals:
        lines += ["", "How much of a Δ is noise: 95% interval of the R² difference against the "
                  "float model, people resampled with replacement (paired bootstrap, 2,000 "
                  "resamples):", ""]
        lines += [f"- {label(m)}: VO2 [{100 * i['vo2'][0]:+.1f}, {100 * i['vo2'][1]:+.1f}] "
                  f"points, VO2max [{100 * i['vo2max'][0]:+.1f}, {100 * i['vo2max'][1]:+.1f}] "
                  "points." for m, i in intervals.items()]
    if "input_sets" in real:
        lines += ["", "The pruned + int8 model per input set (the same held-out people; "
                  "VO2max with its 90% split-conformal interval, as `predict --engine int8` "
                  "reports it):", "", input_set_table(real["input_sets"]), "",
                  interval_table(real["input_sets"])]
    return "\n".join(lines)


def c_summary(c: dict | None) -> str:
    """Markdown lines on the C engine: bit-exactness, flash, RAM, instructions, energy."""
    if not c:
        return "The C engine was not measured."
    if "skipped" in c:
        return f"The C engine was not measured: {c['skipped']}."
    n_eq, n = c["bit_exact_windows"]
    lines = [f"- C engine (host build) equal to the NumPy integer engine on {n_eq} of {n} "
             "test windows."]
    if "sizes" in c:
        s = c["sizes"]
        lines.append(f"- Cortex-M4 build (`arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -O2`): "
                     f"flash {s['flash_bytes']:,} bytes (code {s['engine_code_bytes']:,}, "
                     f"weights and tables {s['engine_const_bytes']:,}, library "
                     f"{s['engine_runtime_bytes']:,}); RAM {s['ram_bytes']:,} bytes (static "
                     f"{s['engine_ram_bytes']:,} + stack bound {s['engine_stack_bytes']:,}).")
    else:
        lines.append(f"- Cortex-M4 sizes not measured: {c.get('sizes_skipped')}.")
    if "qemu" in c:
        r = c["qemu"]
        lines.append(f"- Emulated Cortex-M4 (`qemu-system-arm -M {r['board'].split()[0]}`, "
                     f"semihosting): {r['bit_exact_windows']} of {r['windows']} test windows "
                     "print the same outputs and spike counts as the host engine; streaming "
                     f"{'bit-exact' if r['stream_bit_exact'] else 'DIFFERS'}; "
                     f"{r['instructions_per_window']:,.0f} ARM instructions per window "
                     "(QEMU -icount).")
    elif "qemu_skipped" in c:
        lines.append(f"- Emulated Cortex-M4 not run: {c['qemu_skipped']}.")
    if "energy_estimate_64mhz" in c:
        e = c["energy_estimate_64mhz"]
        lines.append(f"- At 64 MHz, from the ARM count, assuming 1.4 cycles per instruction "
                     f"(loads 2 cycles, ALU and SMLAD 1, taken branches 2-4; flash wait "
                     f"states hidden by the MCU's cache) and 50 µA/MHz at 3 V: "
                     f"{e['ms']:.1f} ms and {e['uJ']:.0f} µJ per window, "
                     f"{e['average_uW_at_30s']:.1f} µW on average at one estimate every 30 s.")
    if "x86_instructions_per_window" in c:
        lines.append(f"- Host: {c['x86_instructions_per_window']:,.0f} instructions per "
                     f"window ({c['instructions_build']}; the plain-C fallback of the "
                     "SMLAD / SXTB16 kernels).")
    if "profile_qemu" in c:
        lines += ["", f"Per stage on the emulated Cortex-M4 (-O2; an exact per-instruction "
                  f"trace of {PROFILE_WINDOWS} test windows, `export_c.profile_qemu`):", "",
                  ec.profile_table(c["profile_qemu"])]
    if "profile_callgrind" in c:
        lines += ["", "Per stage type on the host (x86-64, gcc -O2, callgrind; the kernels "
                  "are plain C here):", "",
                  ec.profile_table(c["profile_callgrind"], "x86-64 instructions / window")]
    return "\n".join(lines)


def _leak_text(cfg: RunConfig) -> str:
    k1, k2 = leak_shifts(cfg.model.beta)
    return (f"U - (U >> {k1})" + (f" - (U >> {k2})" if k2 else "")
            + f" (beta {cfg.model.beta:g}, the nearest such to the trained beta)")


def _recipe_text(report: dict) -> str:
    """The pruning scores, in words (``PruneRecipe``; older reports: |w|, heads pruned)."""
    recipe = PruneRecipe(**report.get("prune_recipe", {"keep_heads": False,
                                                       "bn_folded": False}))
    weights = ("|w| (a TCN convolution's with its BatchNorm gain folded in, as int8 "
               "computes with it)") if recipe.bn_folded else "|w|"
    heads = "LIF2 by |w|, the VO2 and VO2max heads never pruned" if recipe.keep_heads \
        else "LIF2 and the heads by |w|"
    return f"{recipe.mac_score_scale:g} x their mean {weights}; {heads}"


def _schedule_text(report: dict) -> str:
    """How the pruning went, in words: one-shot or the gradual steps."""
    schedule = report.get("schedule") or [report["sparsity"]]  # older reports: one-shot
    epochs = report["finetune_epochs"]
    if len(schedule) == 1:
        return f"one-shot, then masked fine-tuning (up to {epochs} epochs)"
    per_step = ", ".join(map(str, step_epochs(schedule, epochs)))
    return (f"{' → '.join(f'{s:.0%}' for s in schedule)}, masked fine-tuning after each "
            f"step (up to {per_step} epochs)")


def render_compression(report: dict, cfg: RunConfig) -> str:
    """compression.md."""
    sim = report["models"]["spiking"]["sim"]
    real = report.get("real")
    real_section = "" if not real else (
        f"""## Real recordings, people held out ({real['n_people']} people, \
{real['n_sessions']} sessions, {real['n_windows']} windows)

Data: **{report['data']['real']}**. Leave-one-person-out: in each fold the pruned
simulation-only models are fine-tuned (masks kept) on the other people's real windows only,
quantised, and predict the held-out person; the float row is the run's own
leave-one-person-out.

{real_table(real)}
""")
    measured = ", ".join(f"{k} {v:.1%}" for k, v in report["measured_sparsity"].items())
    energy = report["energy"]["pruned"]
    dense = "LIF2 dense" in report["models"]["pruned_int8"]["storage"]
    dense_note = dense_lif2_note(energy, cfg.model.hidden) + "\n" if dense else ""
    return f"""# Compression: pruning, int8, C engine

- source run: `{report['source']}`.
- pruning: {report['sparsity']:.0%} of the Conv1d and Linear weights (global L1; measured:
  {measured}); the multiply-accumulate layers (TCN, LIF1; the twin's hidden layers) lose
  whole blocks of 2 rows x 4 columns, ranked by {_recipe_text(report)}
  (`vo2spike.compress.prune.PruneRecipe`).
- LIF leak: {_leak_text(cfg)}; the pruned model is fine-tuned with it.
- pruning schedule: {_schedule_text(report)}.
- int8: integer-only, activation scales from {cfg.compression.calibration_windows:,}
  simulated training windows.
- data: **{report['data']['simulated']}** test split ({sim['n_windows']} windows of
  {sim['n_tests']} tests).

## Simulated test split

{compression_table(report)}

Energy per window: arithmetic only (45 nm per-operation energies, Horowitz 2014; float rows
in float32, int8 rows in int8/int32; see below), TCN included. Synaptic operations: LIF1's
multiply-accumulates (its inputs are the TCN's real values) plus LIF2's accumulates (one per
input spike and non-zero outgoing weight).

{c_summary(report.get('c_engine'))}

{real_section}
## Energy: the pruned spiking model against its pruned ANN twin

{energy_table(energy)}
{dense_note}"""
