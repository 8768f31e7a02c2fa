"""The main job (``vo2spike run``): data (real, or a simulated cohort said loudly), training,
leave-one-person-out on real recordings, fine-tuning on them, evaluation.

It composes the stages; ``cli.py`` only parses arguments and prints what this returns, and
``bench/`` calls the same functions.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vo2spike.compress.workflow import CompressOptions, compress_run
from vo2spike.config import (
    COMPRESSED_DIR,
    FineTuneConfig,
    TrainConfig,
    load_config,
    save_config,
)
from vo2spike.crossval import crossval_run, leave_one_person_out
from vo2spike.data.k5 import convert_yoyo
from vo2spike.data.read import MEASURE_FILE, SUBJECT_FILE, Dataset
from vo2spike.data.simulate import write_cohort
from vo2spike.data.windows import prepare_windows
from vo2spike.evaluate import REAL_CV_DIR, evaluate_run
from vo2spike.outputs import atomic_dir, check_writable
from vo2spike.timing import StageClock
from vo2spike.train import fine_tune_run, train_run
from vo2spike.vo2max import vo2max_record

log = logging.getLogger("vo2spike")

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_DEMOGRAPHICS = SHARED_DATA / "physionet-treadmill-1.0.1" / SUBJECT_FILE
SHARED_YOYO = SHARED_DATA / "yoyo-k5"
SHARED_MALAGA = SHARED_DATA / "malaga-aggregates"
#: The pipeline's scratch space: simulated cohorts and converted recordings, rebuilt per run.
SCRATCH = REPO / "data"
#: ``--quick``: a smoke test of the whole pipeline.
QUICK_TRAIN = {"epochs": 3, "patience": 3}
QUICK_FINE_TUNE = {"epochs": 2}
QUICK_COMPRESS = {"finetune_epochs": 1}
QUICK_TESTS = 120


@dataclass
class RunOptions:
    """What ``vo2spike run`` was asked to do."""

    out: Path | None = None  # run directory; default runs/run-<time> (and runs/latest)
    data: Path | None = None  # real data directory (PhysioNet format); default $VO2SPIKE_DATA
    demographics: Path | None = None  # subject-info.csv of the simulated cohort
    protocol: str = "mixed"  # protocol of the simulated cohort
    real: Path | None = None  # real recordings; default the shared Yo-Yo recordings
    use_real: bool = True  # False: simulation only
    seed: int = 0
    quick: bool = False
    force: bool = False
    spike_rate_penalty: float | None = None  # None: TrainConfig's and FineTuneConfig's default


@dataclass
class RunResult:
    """What a finished run reports."""

    out: Path
    evaluation: dict  # evaluate_run's metrics (simulated or real test split)
    lopo: dict | None  # leave-one-person-out on real recordings, if any
    compression: dict  # compress_run's report (the compressed model in OUT/compressed)
    seconds: float
    stages: StageClock  # seconds per stage


def _scratch(name: str) -> Path:
    path = SCRATCH / name
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def resolve_training_data(opts: RunOptions, say: Callable[[str], None]) -> Path:
    """The real data if given and present, otherwise a simulated cohort (said loudly)."""
    data = opts.data or os.environ.get("VO2SPIKE_DATA")
    if data and (Path(data) / MEASURE_FILE).is_file():
        return Path(data)
    demographics = opts.demographics
    if data and not demographics and (Path(data) / SUBJECT_FILE).is_file():
        demographics = Path(data) / SUBJECT_FILE
    if not demographics and SHARED_DEMOGRAPHICS.is_file():
        demographics = SHARED_DEMOGRAPHICS
    n_tests = QUICK_TESTS if opts.quick else None
    name = f"simulated-{'real-demographics' if demographics else 'synthetic'}-" \
           f"{opts.protocol}-{n_tests or 'all'}-seed{opts.seed}"
    banner = "=" * 78
    why = f"{data} has no {MEASURE_FILE}" if data else "no --data / VO2SPIKE_DATA given"
    who = f"real demographics from {demographics}" if demographics else "synthetic demographics"
    say(f"{banner}\nNO REAL MEASUREMENTS: {why}.\nTraining and evaluating on a SIMULATED "
        f"cohort ({who}).\nEvery figure below comes from SYNTHETIC data, not from real "
        f"people.\n{banner}")
    # data/ is this command's scratch space: the cohort is rebuilt every run (15 s) so that
    # a cohort from an older simulator is never reused by mistake.
    return write_cohort(_scratch(name), n_tests=n_tests, demographics_csv=demographics,
                        seed=opts.seed, protocol=opts.protocol, force=True)


def resolve_real(opts: RunOptions, say: Callable[[str], None]) -> Path | None:
    """A canonical directory of real recordings: ``real`` (canonical, or the Yo-Yo layout,
    converted into data/ at every run), else the shared Yo-Yo recordings when present."""
    if not opts.use_real:
        return None
    src = Path(opts.real) if opts.real else (SHARED_YOYO if SHARED_YOYO.is_dir() else None)
    if src is None:
        say("no real recordings found: the model is trained on simulation only")
        return None
    if (src / MEASURE_FILE).is_file():
        return src
    return _converted(src)


def _converted(yoyo_root: Path) -> Path:
    """The Yo-Yo recordings converted into the scratch space (rebuilt at every call)."""
    dest = _scratch(f"{yoyo_root.name}-canonical")
    convert_yoyo(yoyo_root, dest, force=True)
    return dest


def recorded_inputs(run_dir: Path, data: Path | None, real: Path | None,
                    say: Callable[[str], None]) -> tuple[Path, Path | None]:
    """The training data and real recordings a run was made from, for ``vo2spike compress``:
    those given, else the paths in its config.json. When those were this pipeline's scratch
    copies and are gone (a fresh clone), they are rebuilt: the simulated cohort from its
    recorded settings, the real recordings from the shared Yo-Yo data. The caller checks the
    SHA256 recorded in config.json, so a rebuild that differs is refused, not used."""
    config = load_config(run_dir)
    if data is None:
        data = Path(config.data["path"])
        sim = config.data.get("simulation")
        if not (data / MEASURE_FILE).is_file() and config.data.get("kind") == "simulated" \
                and isinstance(sim, dict):
            recorded = sim.get("demographics")
            demo = Path(recorded) if recorded and recorded != "synthetic" else None
            if demo is not None and not demo.is_file() and SHARED_DEMOGRAPHICS.is_file():
                demo = SHARED_DEMOGRAPHICS  # the same file, seen from another clone
            dest = _scratch(data.name)
            say(f"{data} is missing: simulating the run's SIMULATED cohort again into {dest} "
                f"(protocol {sim['protocol']}, calibration {sim['calibration']}, "
                f"seed {sim['seed']})")
            data = write_cohort(dest, n_tests=sim.get("n_tests"),
                                demographics_csv=demo, seed=sim["seed"],
                                protocol=sim["protocol"], calibration=sim["calibration"],
                                force=True)
    if real is None and config.fine_tune is not None:
        real = Path(config.fine_tune.data["path"])
        if not (real / MEASURE_FILE).is_file() and SHARED_YOYO.is_dir() \
                and real.name == f"{SHARED_YOYO.name}-canonical":
            say(f"{real} is missing: converting {SHARED_YOYO} again")
            real = _converted(SHARED_YOYO)
    return data, real


def cleaning_summary(dataset: Dataset) -> dict:
    """Breath rows and what each cleaning rule removed, for reports."""
    return {"rows": int(len(dataset.measures)), "counts": dict(dataset.report.counts)}


def record_vo2max(run_dir: Path, input_sets: dict, calibration: str) -> None:
    """Write the VO2max combination and interval per input set into the run's config."""
    config = load_config(run_dir)
    config.vo2max = vo2max_record(input_sets, calibration)
    save_config(run_dir, config)


def run_pipeline(opts: RunOptions, say: Callable[[str], None] = print) -> RunResult:
    """Run the whole job into ``opts.out``; an existing run is replaced (``force``) only by a
    finished one. ``say`` receives the lines a user must see (data provenance, progress)."""
    t0 = time.time()
    clock = StageClock()
    stage = clock.stage
    out = Path(opts.out) if opts.out else REPO / "runs" / time.strftime("run-%Y%m%d-%H%M%S")
    inputs = [p for p in (opts.data, opts.demographics, opts.real) if p is not None]
    check_writable(out, opts.force, kind="run", inputs=inputs)
    with stage("training data (simulate or read)"):
        data = resolve_training_data(opts, say)
    with stage("real recordings (convert)"):
        real_dir = resolve_real(opts, say)
    with stage("windows (validate, clean, resample)"):
        prepared = prepare_windows(data)
    penalty = {} if opts.spike_rate_penalty is None else \
        {"spike_rate_penalty": opts.spike_rate_penalty}
    train_cfg = TrainConfig(**(QUICK_TRAIN if opts.quick else {}), **penalty)
    # Built in OUT.partial and moved into place at the end: an existing run is replaced
    # (force) only by a finished one, and a failed run leaves nothing behind.
    with atomic_dir(out, force=opts.force, kind="run", inputs=inputs) as work:
        with stage("train spiking model + ANN twin (sim)"):
            train_run(data, work, train_cfg, seed=opts.seed, prepared=prepared, in_place=True)
        lopo, real_prepared, lopo_pred = None, None, None
        if real_dir is not None:
            with stage("windows (validate, clean, resample)"):
                real_prepared = real_ds, real_w = prepare_windows(real_dir)
            ft = FineTuneConfig(**(QUICK_FINE_TUNE if opts.quick else {}), **penalty)
            say(f"real recordings: {real_dir} ({real_ds.source['kind']}); "
                "leave-one-person-out, then fine-tuning on all of them")
            with stage("leave-one-person-out, float (real)"):
                lopo_pred = leave_one_person_out(work, real_w, prepared[1], ft)
                lopo = crossval_run(work, real_w, real_ds.source["kind"], prepared[1],
                                    work / REAL_CV_DIR, cfg=ft,
                                    cleaning=cleaning_summary(real_ds), pred=lopo_pred)
            with stage("fine-tune on all real recordings"):
                fine_tune_run(work, real_w, real_ds.source, prepared[1], ft)
            record_vo2max(work, lopo["input_sets"],
                          f"leave-one-person-out residuals on REAL recordings "
                          f"({real_ds.source['kind']}; {lopo['n_sessions']} sessions of "
                          f"{lopo['n_people']} people; each held-out person's model "
                          "fine-tuned on the others)")
        with stage("evaluate (sim test split)"):
            evaluation = evaluate_run(work, data, force=True, prepared=prepared,
                                      model_label=str(out))
        if lopo is None:
            record_vo2max(work, evaluation["input_sets"],
                          "residuals on the SIMULATED test split (no real recordings)")
        compression = compress_run(work, data, work / COMPRESSED_DIR,
                                   CompressOptions(**(QUICK_COMPRESS if opts.quick else {})),
                                   prepared=prepared, real_prepared=real_prepared,
                                   float_lopo=lopo_pred, source=str(out), say=say,
                                   stage=stage)
    if not opts.out:
        latest = out.parent / "latest"
        if latest.is_symlink() or not latest.exists():
            latest.unlink(missing_ok=True)
            latest.symlink_to(out.name)
    return RunResult(out, evaluation, lopo, compression, time.time() - t0, clock)
