"""Command-line interface: ``vo2spike COMMAND`` (simulate, data fetch, convert, train,
evaluate, predict, crossval, realism, run); a thin layer over the package."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from vo2spike import interrupts
from vo2spike.config import RunDirError, TrainConfig
from vo2spike.data.fetch import PHYSIONET_URL, FetchError, fetch_physionet
from vo2spike.data.read import SIMULATION_MARKER, DataError
from vo2spike.data.simulate import (
    CALIBRATIONS,
    DEFAULT_CALIBRATION,
    PROTOCOLS,
    write_cohort,
)
from vo2spike.data.windows import prepare_windows
from vo2spike.outputs import OutputExistsError, check_writable, partial_path
from vo2spike.pipeline import (
    QUICK_TESTS,
    QUICK_TRAIN,
    SHARED_DEMOGRAPHICS,
    SHARED_MALAGA,
    SHARED_YOYO,
)
from vo2spike.threads import COMPUTE_THREADS, fix_threads

log = logging.getLogger("vo2spike")
#: Seeds feed numpy, scikit-learn and torch generators: keep them in 0 .. 2**31 - 1.
MAX_SEED = 2**31 - 1


def _int_at_least(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            where = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: must be {where}")
        return value
    return parse


PENALTY_HELP = ("weight of the spike-rate term of the loss (loss += weight x mean spike "
                "rate); default from TrainConfig, stored in config.json")
positive_int = _int_at_least(1)
seed_int = _int_at_least(0, MAX_SEED)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    cfg = TrainConfig(**(QUICK_TRAIN if args.quick else {}))
    if getattr(args, "epochs", None) is not None:
        cfg.epochs = args.epochs
    if getattr(args, "spike_rate_penalty", None) is not None:
        cfg.spike_rate_penalty = args.spike_rate_penalty
    return cfg


def _penalty(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value >= 0.0):
        raise argparse.ArgumentTypeError(f"{text} is out of range: must be a finite number >= 0")
    return value


def cmd_simulate(args: argparse.Namespace) -> None:
    check_writable(args.out, args.force, kind="cohort",
                   inputs=[args.demographics] if args.demographics else [])
    out = write_cohort(args.out, n_tests=args.n_tests, demographics_csv=args.demographics,
                       protocol=args.protocol, seed=args.seed, force=args.force,
                       calibration=args.calibration)
    info = json.loads((out / SIMULATION_MARKER).read_text())
    print(f"wrote SIMULATED cohort to {out}: {info['n_tests']} tests of {info['n_people']} "
          f"people, protocol {args.protocol}, seed {args.seed}")


def cmd_fetch(args: argparse.Namespace) -> None:
    out = fetch_physionet(args.out, base_url=args.base_url, force=args.force)
    print(f"downloaded and verified the PhysioNet release in {out}")


def cmd_train(args: argparse.Namespace) -> None:
    from vo2spike.train import train_run

    try:
        m = train_run(args.data, args.out, _train_config(args), seed=args.seed,
                      force=args.force, resume=args.resume)
    except KeyboardInterrupt:
        partial = partial_path(args.out)
        if partial.is_dir():
            print(f"the interrupted run is kept in {partial}: `vo2spike train ... --resume` "
                  "continues it", file=sys.stderr)
        raise
    print(f"trained on {m['data_kind']} data: {args.out} (spiking best epoch "
          f"{m['spiking']['best_epoch']}, twin best epoch {m['twin']['best_epoch']}, "
          f"{m['total_seconds']:.0f} s)")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from vo2spike.evaluate import evaluate_run, results_table
    from vo2spike.inference import DEFAULT_MODEL

    model = args.model or DEFAULT_MODEL
    r = evaluate_run(model, args.data, out=args.out, force=args.force)
    print(f"\nData: {r['data_kind']} — {r['split']}\n")
    print(results_table(r))
    print(f"\nreport: {Path(args.out) if args.out else Path(model) / 'evaluation'}/report.md")


def cmd_predict(args: argparse.Namespace) -> None:
    from vo2spike.predict import predict_dir

    windows, tests = predict_dir(args.data, args.out, model_dir=args.model, force=args.force,
                                 engine=args.engine, inputs=args.inputs)
    used = tests["input_set"].value_counts().sort_index()
    how = "forced by --inputs" if args.inputs else "the signals each test has"
    print("input set used (" + how + "): "
          + "; ".join(f"{name} for {n} test(s)" for name, n in used.items()))
    print(f"wrote {len(windows)} windows of {len(tests)} tests to {args.out}/windows.csv "
          f"and {args.out}/tests.csv")


def cmd_run(args: argparse.Namespace) -> None:
    from vo2spike.crossval import lopo_table
    from vo2spike.evaluate import results_table
    from vo2spike.pipeline import RunOptions, run_pipeline

    opts = RunOptions(out=args.out, data=args.data, demographics=args.demographics,
                      protocol=args.protocol, real=args.real, use_real=not args.no_real,
                      seed=args.seed, quick=args.quick, force=args.force,
                      spike_rate_penalty=args.spike_rate_penalty)
    result = run_pipeline(opts, say=lambda line: print(line, flush=True))
    r, lopo, out = result.evaluation, result.lopo, result.out
    print(f"\nResults on the person-disjoint test split. Data: {r['data_kind'].upper()}\n")
    print(results_table(r))
    if lopo:
        print(f"\nREAL recordings, leave-one-person-out ({lopo['n_people']} people, "
              f"{lopo['n_sessions']} sessions, {lopo['n_windows']} windows). "
              f"Data: {lopo['data_kind']}\n")
        print(lopo_table(lopo["models"]))
    _print_compression(result.compression)
    rates = ", ".join(f"{k} {v:.3f}" for k, v in r["spike_rates"].items())
    print(f"\nspike rates: {rates}; parameters: {r['parameters']['spiking']:,}")
    print(f"\nTime per stage ({COMPUTE_THREADS} compute threads):\n")
    print(result.stages.table(result.seconds))
    print(f"\nrun directory: {out} (report: {out / 'evaluation' / 'report.md'}); "
          f"{result.seconds:.0f} s")


def cmd_convert(args: argparse.Namespace) -> None:
    from vo2spike.data.k5 import convert_k5, convert_yoyo

    fit_only = {"--person": args.person, "--age": args.age, "--weight": args.weight,
                "--height": args.height, "--sex": args.sex}
    if args.source == "fit":
        _print_converted(_convert_fit(args), args.out)
        return
    used = [k for k, v in fit_only.items() if v is not None]
    if used:
        raise DataError(f"{', '.join(used)}: only for --from fit (--from {args.source} reads "
                        "the person from its metadata or --subjects table)")
    if len(args.src) != 1:
        raise DataError(f"--from {args.source} takes one SRC, got {len(args.src)}: "
                        f"{' '.join(map(str, args.src))}")
    args.src = args.src[0]
    inputs = [args.src] + ([args.subjects] if args.subjects else [])
    check_writable(args.out, args.force, kind="converted", inputs=inputs)
    if args.source == "yoyo":
        r = convert_yoyo(args.src, args.out, force=args.force)
    else:
        if not args.subjects:
            raise DataError("--from k5 needs --subjects CSV (File,ID,Age,Weight,Height,Sex)")
        src = Path(args.src)
        if not src.exists():
            raise DataError(f"{src}: no such file or folder")
        files = sorted(src.glob("*.csv")) if src.is_dir() else [src]
        files = [f for f in files if f.resolve() != Path(args.subjects).resolve()]
        if not files:
            raise DataError(f"{src}: no .csv export found")
        r = convert_k5(files, args.subjects, args.out, force=args.force)
    _print_converted(r, args.out)


def _print_converted(r: dict, out: Path) -> None:
    print(f"wrote {len(r['written'])} session(s) to {out}")
    for test, why in r["skipped"].items():
        print(f"skipped {test}: {why}")


def _convert_fit(args: argparse.Namespace) -> dict:
    """``convert --from fit``: FIT files (or folders of them) of one person; the
    converter's result."""
    from vo2spike.data.fit import DEFAULT_PERSON, convert_fit

    if args.subjects:
        raise DataError("--subjects is for --from k5; for FIT files give the person with "
                        "--age, --weight, --height, --sex (when a file has no user_profile)")
    files = []
    for src in map(Path, args.src):
        if not src.exists():
            raise DataError(f"{src}: no such file or folder")
        found = sorted(f for f in src.iterdir() if f.suffix.lower() == ".fit"
                       and f.is_file()) if src.is_dir() else [src]
        if not found:
            raise DataError(f"{src}: no .fit file found in this folder")
        files += found
    check_writable(args.out, args.force, kind="converted", inputs=files)
    return convert_fit(files, args.out, person=args.person or DEFAULT_PERSON, age=args.age,
                       weight_kg=args.weight, height_cm=args.height, sex=args.sex,
                       force=args.force)


def cmd_crossval(args: argparse.Namespace) -> None:
    from vo2spike.config import load_config
    from vo2spike.crossval import crossval_run, lopo_table
    from vo2spike.evaluate import REAL_CV_DIR
    from vo2spike.pipeline import cleaning_summary

    sim_dir = Path(args.sim or load_config(args.model).data["path"])
    out = Path(args.out) if args.out else Path(args.model) / REAL_CV_DIR
    check_writable(out, args.force, kind="crossval", inputs=[args.real, sim_dir, args.model])
    real_ds, real_w = prepare_windows(args.real)
    _, sim_w = prepare_windows(sim_dir)
    r = crossval_run(args.model, real_w, real_ds.source["kind"], sim_w, out, force=args.force,
                     cleaning=cleaning_summary(real_ds))
    print(f"\nREAL recordings, leave-one-person-out. Data: {r['data_kind']}\n")
    print(lopo_table(r["models"]))
    print(f"\nreport: {out / 'report.md'}")


def cmd_realism(args: argparse.Namespace) -> None:
    from vo2spike.data.malaga import comparison_plot, malaga_comparisons, malaga_report
    from vo2spike.data.realism import realism_columns, realism_plot, realism_report
    from vo2spike.outputs import atomic_write_text

    if args.out:  # before the work: the report and its two plots
        out = Path(args.out)
        png, mpng = out.with_suffix(".png"), out.with_name(f"{out.stem}-malaga.png")
        for path in (out, png, mpng):
            check_writable(path, args.force, inputs=[args.yoyo, args.malaga])
    columns = realism_columns(args.yoyo, n_sim=args.n_sim, seed=args.seed)
    text = realism_report(columns, args.yoyo, args.n_sim, args.seed)
    malaga, malaga_text = None, ""
    if args.malaga and Path(args.malaga).is_dir():
        demo = args.demographics or (SHARED_DEMOGRAPHICS if SHARED_DEMOGRAPHICS.is_file()
                                     else None)
        malaga = malaga_comparisons(args.malaga, demo, seed=args.seed)
        malaga_text = malaga_report(malaga, args.malaga, demo, args.seed)
    elif args.malaga:
        malaga_text = f"Malaga aggregates not found at {args.malaga}: comparison skipped.\n"
    if args.out:
        realism_plot(columns, png)
        doc = (f"# Simulator vs real recordings\n\n## Yo-Yo sessions (COSMED K5)\n\n{text}\n"
               f"![]({png.name})\n")
        if malaga:  # the plot: before (foundation) and after (malaga); the table has all
            comparison_plot({n: c for n, c in malaga.items() if n != "k5-matched"}, mpng)
            doc += (f"\n## Graded treadmill tests: the Malaga cohort's aggregates\n\n"
                    f"{malaga_text}\n![]({mpng.name})\n")
        atomic_write_text(out, doc)
        print(f"wrote {out}, {png}" + (f" and {mpng}" if malaga else ""))
    print(text)
    print(malaga_text)


def _fraction(text: str) -> float:
    """An argparse type: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} is out of range: must be in [0, 1)")
    return value


def _fractions(text: str) -> tuple[float, ...]:
    """An argparse type: comma-separated numbers in [0, 1), e.g. 0.5,0.7,0.9."""
    return tuple(_fraction(t) for t in text.split(",") if t.strip())


def _print_compression(report: dict) -> None:
    """The tables of a compress_run report, each with its data."""
    from vo2spike.compress.workflow import c_summary, compression_table, real_table

    print(f"\nCompressed model ({report['sparsity']:.0%} pruned, int8). Data: "
          f"{report['data']['simulated'].upper()} test split\n")
    print(compression_table(report))
    print("\n" + c_summary(report.get("c_engine")))
    if report.get("real"):
        print(f"\nREAL recordings, people held out. Data: {report['data']['real']}\n")
        print(real_table(report["real"]))


def cmd_compress(args: argparse.Namespace) -> None:
    from vo2spike.compress.workflow import CompressOptions, compress_run
    from vo2spike.config import load_config
    from vo2spike.inference import DEFAULT_MODEL
    from vo2spike.pipeline import recorded_inputs

    model = args.model or DEFAULT_MODEL
    load_config(model)  # a missing or damaged model folder is named before anything else
    check_writable(args.out, args.force, kind="compressed", inputs=[model])
    data, real = recorded_inputs(Path(model), args.data, args.real,
                                 say=lambda line: print(line, flush=True))
    opts = CompressOptions(sparsity=args.sparsity, real=real, sweep=args.sweep or (),
                           c_engine=not args.no_c, gradual=not args.one_shot)
    if args.finetune_epochs is not None:
        opts.finetune_epochs = args.finetune_epochs
    r = compress_run(model, data, args.out, opts, force=args.force,
                     say=lambda line: print(line, flush=True))
    _print_compression(r)
    print(f"\nwrote {args.out} (report: {Path(args.out) / 'compression.md'}); "
          f"{r['seconds']:.0f} s")


def cmd_export_c(args: argparse.Namespace) -> None:
    from vo2spike.compress.export_c import describe_export, export_c
    from vo2spike.engines import compressed_folder
    from vo2spike.inference import DEFAULT_MODEL

    folder = compressed_folder(args.model or DEFAULT_MODEL)
    report = export_c(folder, args.out, force=args.force, twin=args.twin)
    print(describe_export(report))
    print(f"wrote {args.out}: build with `make -C {args.out}` (host harness) or "
          f"`make -C {args.out} arm` (Cortex-M4 image for qemu-system-arm)")


def cmd_export_onnx(args: argparse.Namespace) -> None:
    import numpy as np

    from vo2spike.compress.onnx_export import check_onnx, export_onnx
    from vo2spike.inference import DEFAULT_MODEL, load_model
    from vo2spike.outputs import atomic_dir, write_json

    model_dir = args.model or DEFAULT_MODEL
    model, norm, config = load_model(model_dir, twin=args.twin)
    inputs = [model_dir] + ([args.data] if args.data else [])
    check_writable(args.out, args.force, kind="onnx", inputs=inputs)
    if args.data:
        _, w = prepare_windows(args.data)
        x = w.x[np.linspace(0, len(w) - 1, min(len(w), 256)).astype(int)]
        source = f"{len(x)} windows of {args.data}"
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            cohort = write_cohort(Path(tmp) / "cohort", n_tests=8, protocol="mixed", seed=0)
            _, w = prepare_windows(cohort)
        x, source = w.x[:256], f"{min(len(w), 256)} windows of 8 simulated tests"
    print(f"exporting the {'ANN twin' if args.twin else 'spiking model'} of {model_dir} "
          "(this traces 60 unrolled steps: about a minute)", flush=True)
    with atomic_dir(args.out, force=args.force, kind="onnx", inputs=inputs) as tmp:
        files = export_onnx(model, config.window_s, tmp)
        write_json(tmp / "normalization.json", {
            "channels": config.channels, "x_mean": norm.x_mean, "x_std": norm.x_std,
            "outputs": {"vo2": [norm.vo2_mean, norm.vo2_std],
                        "vo2max": [norm.vo2max_mean, norm.vo2max_std]},
            "note": "inputs: (x - x_mean) / x_std per channel; outputs: value * std + mean, "
                    "mL/min"})
        check = check_onnx(tmp, model, norm.inputs(x))
    for name, what in files.items():
        print(f"{args.out / name}: {what}")
    print(f"onnxruntime vs PyTorch on {source}: largest difference "
          f"{check['window_max_abs_diff']:.2g} (window), {check['cell_max_abs_diff']:.2g} "
          "(cell), in standardised units")


def cmd_demo(args: argparse.Namespace) -> None:
    from vo2spike.demo.server import serve
    from vo2spike.inference import DEFAULT_MODEL
    from vo2spike.pipeline import SHARED_YOYO

    serve(args.model or DEFAULT_MODEL, host=args.host, port=args.port, yoyo_root=SHARED_YOYO)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for every sub-command."""
    p = argparse.ArgumentParser(prog="vo2spike", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="write a simulated cohort (PhysioNet format)")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--n-tests", type=positive_int, default=None,
                   help="number of tests (default 992, or every row of --demographics)")
    s.add_argument("--demographics", type=Path, help="subject-info.csv whose people to simulate")
    s.add_argument("--protocol", choices=PROTOCOLS, default="ramp")
    s.add_argument("--calibration", choices=sorted(CALIBRATIONS), default=DEFAULT_CALIBRATION,
                   help=f"simulator constants (default {DEFAULT_CALIBRATION}: calibrated to the "
                        "real Malaga aggregates; see docs/simulator.md, sections 5-6)")
    s.add_argument("--seed", type=seed_int, default=0)
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.set_defaults(func=cmd_simulate)

    d = sub.add_parser("data", help="data utilities")
    dsub = d.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="download and verify the PhysioNet release")
    f.add_argument("--out", type=Path, default=Path("data/physionet-treadmill-1.0.1"))
    f.add_argument("--base-url", default=PHYSIONET_URL,
                   help="where the release's files are (default: PhysioNet)")
    f.add_argument("--force", action="store_true")
    f.set_defaults(func=cmd_fetch)

    t = sub.add_parser("train", help="train the spiking model and its ANN twin")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--epochs", type=positive_int, help="maximum epochs (default 40)")
    t.add_argument("--seed", type=seed_int, default=0)
    t.add_argument("--quick", action="store_true", help="a few epochs only (smoke test)")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run")
    t.add_argument("--spike-rate-penalty", type=_penalty, default=None, help=PENALTY_HELP)
    t.add_argument("--force", action="store_true", help="replace --out if it exists")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="metrics, baselines and report on the test split")
    e.add_argument("--model", type=Path, help="run directory (default: models/default)")
    e.add_argument("--data", type=Path, required=True)
    e.add_argument("--out", type=Path, help="report folder (default: MODEL/evaluation)")
    e.add_argument("--force", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="predict every test of a data directory")
    pr.add_argument("--model", type=Path, help="run directory (default: models/default)")
    pr.add_argument("--data", type=Path, required=True)
    pr.add_argument("--out", type=Path, required=True)
    pr.add_argument("--engine", choices=["float", "int8", "c"], default="float",
                    help="float: the PyTorch model; int8: the NumPy integer engine; c: the "
                         "compiled C engine (both run the compressed model)")
    pr.add_argument("--inputs", metavar="SET",
                    help="predict every test from this input set: speed,hr (a watch), "
                         "speed,hr,rr or speed,hr,rr,ve; default: the signals each test has "
                         "(RR and VE columns may be absent or empty)")
    pr.add_argument("--force", action="store_true")
    pr.set_defaults(func=cmd_predict)

    r = sub.add_parser("run", help="the main job: data (real or simulated), train, evaluate")
    r.add_argument("--data", type=Path, help="real data directory (default: $VO2SPIKE_DATA)")
    r.add_argument("--out", type=Path, help="run directory (default: runs/run-<time>)")
    r.add_argument("--demographics", type=Path,
                   help="subject-info.csv for the simulated cohort (default: the shared one)")
    r.add_argument("--protocol", choices=PROTOCOLS, default="mixed",
                   help="protocol of the simulated cohort")
    r.add_argument("--real", type=Path,
                   help="real recordings (canonical dir or Yo-Yo layout; default: the shared "
                        "Yo-Yo recordings when present)")
    r.add_argument("--no-real", action="store_true", help="train on simulation only")
    r.add_argument("--seed", type=seed_int, default=0)
    r.add_argument("--spike-rate-penalty", type=_penalty, default=None,
                   help=PENALTY_HELP + "; also used by the fine-tuning on real recordings")
    r.add_argument("--quick", action="store_true",
                   help=f"{QUICK_TESTS} simulated tests, {QUICK_TRAIN['epochs']} epochs")
    r.add_argument("--force", action="store_true")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser(
        "convert", help="COSMED K5 exports, the Yo-Yo layout or watch FIT files -> data dir",
        description="Write recordings as a canonical data directory (subject-info.csv, "
                    "test_measure.csv, SOURCE.json). --from fit: Garmin FIT activity files "
                    "of one person (one test per file, ID_test from the file name, ID from "
                    "--person); heart rate, speed (km/h) and breathing rate where the watch "
                    "has it; VO2, VCO2 and VE are left empty. Timer pauses are dropped and "
                    "left as gaps, GPS speed jumps and missing heart rate become empty "
                    "cells; files without heart rate or speed, or of another sport than "
                    "running/walking, are skipped and reported.")
    c.add_argument("--from", dest="source", choices=["k5", "yoyo", "fit"], required=True)
    c.add_argument("src", type=Path, nargs="+", metavar="SRC",
                   help="Yo-Yo root, or a K5 CSV file / folder of them (one SRC); for fit: "
                        "FIT files and/or folders of *.fit files")
    c.add_argument("--subjects", type=Path,
                   help="for k5: CSV with File,ID,Age,Weight,Height,Sex per export")
    c.add_argument("--person", help="for fit: the person's ID (default P1); one person per "
                                    "run")
    person = ("for fit: used where a file has no user_profile value; when given, it "
              "replaces the file's value in every file (SOURCE.json records both)")
    c.add_argument("--age", type=float, help=f"years; {person}")
    c.add_argument("--weight", type=float, help=f"kg; {person}")
    c.add_argument("--height", type=float, help=f"cm; {person}")
    c.add_argument("--sex", help=f"male/female (m/f, or 0 = male, 1 = female); {person}")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--force", action="store_true")
    c.set_defaults(func=cmd_convert)

    cv = sub.add_parser("crossval", help="leave-one-person-out on real recordings")
    cv.add_argument("--model", type=Path, required=True, help="simulation-trained run")
    cv.add_argument("--real", type=Path, required=True, help="canonical real data directory")
    cv.add_argument("--sim", type=Path, help="its simulated data (default: from config)")
    cv.add_argument("--out", type=Path, help="default: MODEL/real_cv")
    cv.add_argument("--force", action="store_true")
    cv.set_defaults(func=cmd_crossval)

    re_ = sub.add_parser("realism", help="compare the simulator with real Yo-Yo recordings "
                                         "and the real Malaga aggregates")
    re_.add_argument("--yoyo", type=Path, default=SHARED_YOYO)
    re_.add_argument("--malaga", type=Path, default=SHARED_MALAGA,
                     help="real Malaga aggregate curves (graded treadmill tests)")
    re_.add_argument("--demographics", type=Path,
                     help="subject-info.csv of the simulated ramp cohorts (default: the shared "
                          "Malaga one when present)")
    re_.add_argument("--n-sim", type=positive_int, default=60, help="simulated tests per protocol")
    re_.add_argument("--seed", type=seed_int, default=0)
    re_.add_argument("--out", type=Path, help="markdown file to write")
    re_.add_argument("--force", action="store_true")
    re_.set_defaults(func=cmd_realism)

    co = sub.add_parser("compress", help="prune, quantise to integer-only int8 and measure a "
                                         "trained run (float vs pruned vs int8 vs C)")
    co.add_argument("--model", type=Path, help="run directory (default: models/default)")
    co.add_argument("--data", type=Path,
                    help="the data it was trained on (default: the path in its config)")
    co.add_argument("--out", type=Path, required=True, help="compressed model folder")
    co.add_argument("--sparsity", type=_fraction, default=0.7,
                    help="fraction of Conv1d and Linear weights pruned (default 0.7)")
    co.add_argument("--finetune-epochs", type=_int_at_least(0), default=None,
                    help="most epochs of masked fine-tuning on simulated windows after the "
                         "last pruning step (default 8)")
    co.add_argument("--one-shot", action="store_true",
                    help="prune to the target at once instead of gradually (default: at 4/7 "
                         "and 6/7 of it first, e.g. 40%% and 60%% before 70%%, up to 3 epochs "
                         "of masked fine-tuning each)")
    co.add_argument("--sweep", type=_fractions,
                    help="also measure accuracy at these sparsities, e.g. 0.5,0.7,0.8,0.9,0.95")
    co.add_argument("--real", type=Path, help="real recordings the run was fine-tuned on "
                                              "(default: the path in its config)")
    co.add_argument("--no-c", action="store_true", help="do not build and run the C engine")
    co.add_argument("--force", action="store_true")
    co.set_defaults(func=cmd_compress)

    ec = sub.add_parser("export-c", help="write the compressed model as a C99 engine")
    ec.add_argument("--model", type=Path,
                    help="compressed model folder, or a run holding one in compressed/ "
                         "(default: models/default)")
    ec.add_argument("--out", type=Path, required=True, help="C folder to write")
    ec.add_argument("--twin", action="store_true", help="export the int8 ANN twin instead")
    ec.add_argument("--force", action="store_true")
    ec.set_defaults(func=cmd_export_c)

    eo = sub.add_parser("export-onnx", help="write the float model as ONNX (window graph and "
                                            "a one-step cell), checked with onnxruntime")
    eo.add_argument("--model", type=Path, help="run directory (default: models/default)")
    eo.add_argument("--out", type=Path, required=True)
    eo.add_argument("--data", type=Path, help="windows to check onnxruntime on (default: a "
                                              "small simulated cohort)")
    eo.add_argument("--twin", action="store_true", help="export the ANN twin instead")
    eo.add_argument("--force", action="store_true")
    eo.set_defaults(func=cmd_export_onnx)

    dm = sub.add_parser("demo", help="serve the interactive demo page (the whole pipeline, "
                                     "animated, driven by the model)")
    dm.add_argument("--port", type=_int_at_least(0, 65535), default=8000,
                    help="TCP port (default 8000; 0 picks a free one)")
    dm.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default 127.0.0.1: this machine only)")
    dm.add_argument("--model", type=Path, help="run directory (default: models/default)")
    dm.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code: 2 for bad input (data, arguments, model folder,
    output path), 1 for other failures, 130 when interrupted (Ctrl-C or ``kill``)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s",
                        stream=sys.stderr)
    # Installed already by ``vo2spike`` (vo2spike/__main__.py), before the heavy imports;
    # here for callers of main() itself.
    previous = None if interrupts.installed() else interrupts.install()
    fix_threads()  # the same numbers on any core count (vo2spike.threads)
    try:
        with interrupts.raising():
            return _dispatch(args)
    except KeyboardInterrupt:
        interrupts.cleanup()
        print(interrupts.MESSAGE, file=sys.stderr)
        return interrupts.EXIT_CODE
    finally:
        interrupts.restore(previous)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command; errors become a message and an exit code (a KeyboardInterrupt goes
    up to :func:`main`, even one that arrives while an error is reported)."""
    try:
        args.func(args)
    except (DataError, OutputExistsError, RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except (FetchError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
