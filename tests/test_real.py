"""Real recordings: conversion, cleaning on real files, and leave-one-person-out."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from vo2spike import crossval as cv
from vo2spike.cli import main
from vo2spike.config import FineTuneConfig, load_config
from vo2spike.data.clean import clean_measures
from vo2spike.data.k5 import convert_yoyo, read_k5_csv, read_yoyo, session_start
from vo2spike.data.read import DataReport, load_dataset
from vo2spike.data.windows import make_windows, prepare_windows, smooth_speed
from vo2spike.inference import load_model
from vo2spike.train import fine_tune, fine_tune_run, sim_train_windows

from .conftest import SHARED, needs_shared

pytestmark = needs_shared

YOYO = SHARED / "yoyo-k5"


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "yoyo"
    convert_yoyo(YOYO, out)
    return out


def test_convert_yoyo_skips_sessions_without_hr(real_dir):
    source = json.loads((real_dir / "SOURCE.json").read_text())
    assert set(source["skipped"]) == {"D05_1", "D09_1", "D09_2"}
    assert len(source["written"]) == 19
    ds = load_dataset(real_dir)
    assert ds.source["kind"].startswith("real")
    assert set(ds.subjects["ID_test"]) == set(source["written"])
    # Each session keeps the test period with 60 s before and 120 s after.
    d06 = ds.measures[ds.measures.ID_test == "D06_1"]["time"]
    assert d06.min() >= 853 - 60 and d06.max() <= 1708 + 120


def test_convert_cli_reports_skipped_sessions(tmp_path, capsys):
    assert main(["convert", "--from", "yoyo", str(YOYO), "--out", str(tmp_path / "y")]) == 0
    out = capsys.readouterr().out
    assert "wrote 19 session(s)" in out and "skipped D09_2: no heart rate" in out


def test_convert_k5_exports_with_subject_table(tmp_path):
    src = tmp_path / "exports"
    src.mkdir()
    for name in ["D06_COSMED_1.csv", "D05_COSMED_1.csv"]:
        rnd = "FirstRound"
        (src / name).write_bytes((YOYO / rnd / name[:3] / name).read_bytes())
    subjects = tmp_path / "subjects.csv"
    subjects.write_text("File,ID,Age,Weight,Height,Sex\nD06_COSMED_1.csv,D06,18,92,194,M\n"
                        "D05_COSMED_1.csv,D05,20,76,182,M\n")
    assert main(["convert", "--from", "k5", str(src), "--subjects", str(subjects),
                 "--out", str(tmp_path / "o")]) == 0
    ds = load_dataset(tmp_path / "o")
    assert ds.subjects["ID_test"].tolist() == ["D06_1"]  # D05_1 has no heart rate
    assert len(ds.measures) > 800


def test_corrected_start_from_metadata_note():
    d17 = next(s for s in read_yoyo(YOYO) if s.id_test == "D17_2")
    assert d17.start_s == 766 and session_start(d17) == 776


def test_cleaning_real_files_removes_artefacts():
    raw = pd.concat([read_k5_csv(YOYO / "FirstRound" / p / f"{p}_COSMED_1.csv").assign(ID_test=p)
                     for p in ["D05", "D06", "D10"]])
    report = DataReport()
    clean = clean_measures(raw, report, ("VO2", "VCO2", "VE", "HR"))
    # D05_1 has no strap: HR is 0 throughout and every row goes.
    assert report.counts["implausible_HR"] >= (raw[raw.ID_test == "D05"]["HR"] == 0).sum()
    assert "D05" not in set(clean["ID_test"])
    assert report.counts.get("implausible_VO2", 0) + report.counts.get("outlier_VO2", 0) > 0
    assert clean["VO2"].between(50, 8000).all() and clean["HR"].between(30, 230).all()
    kept = len(clean[clean.ID_test == "D06"]) / (raw.ID_test == "D06").sum()
    assert kept > 0.8  # artefact rules remove artefacts, not the recording


def test_speed_smoothing_is_causal_and_reduces_gps_jitter(real_dir):
    x = np.array([0.0, 10.0, 0.0, 10.0, 0.0, 10.0, 0.0, 10.0])
    sm = smooth_speed(x, 2)
    assert sm[0] == 0.0 and np.allclose(sm[1:], 5.0)  # trailing mean, nothing from the future
    w = make_windows(load_dataset(real_dir))
    assert np.median(w.x[:, 0].std(axis=1)) < 4.0  # GPS shuttles jitter ~4.5 km/h unsmoothed


def test_lopo_holds_out_each_person(real_dir, run_dir, sim_dir, monkeypatch):
    seen = []
    real_fine_tune = cv.fine_tune

    def spy(model, real, sim, norm, cfg, seed):
        seen.append({str(p) for p in real.person})
        return real_fine_tune(model, real, sim, norm, cfg, seed)

    monkeypatch.setattr(cv, "fine_tune", spy)
    _, real = prepare_windows(real_dir)
    keep = np.isin(real.person.astype(str), ["D01", "D06", "D14"])
    real = real.subset(keep)
    _, sim = prepare_windows(sim_dir)
    pred = cv.leave_one_person_out(run_dir, real, sim, FineTuneConfig(epochs=1))
    assert len(seen) == 6  # spiking and twin, for each of 3 folds
    assert {frozenset(s) for s in seen} == {frozenset({"D06", "D14"}), frozenset({"D01", "D14"}),
                                           frozenset({"D01", "D06"})}
    assert not pred.filter(regex="_vo2(max)?$").isna().any().any()
    results = cv.score_lopo(pred, real.tests.set_index("ID_test")["Weight"])
    assert set(results) == set(cv.MODELS)
    for r in results.values():
        assert r["vo2_ml_min"]["rmse"] > 0 and r["vo2max_ml_min"]["mape"] > 0


def test_fine_tune_run_keeps_simulation_weights(real_dir, run_dir, sim_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    real_ds, real = prepare_windows(real_dir)
    _, sim = prepare_windows(sim_dir)
    fine_tune_run(run, real, real_ds.source, sim, FineTuneConfig(epochs=1))
    assert (run / "sim_only.safetensors").read_bytes() == \
        (run_dir / "model.safetensors").read_bytes()
    assert (run / "model.safetensors").read_bytes() != (run_dir / "model.safetensors").read_bytes()
    config = load_config(run)
    assert config.fine_tune.data["kind"].startswith("real")
    assert "D06" in config.fine_tune.people
    assert set(config.weights) == {"model.safetensors", "twin.safetensors",
                                   "sim_only.safetensors", "sim_only_twin.safetensors"}
    sim_only, _, _ = load_model(run, sim_only=True)
    tuned, _, _ = load_model(run)
    assert not all(np.array_equal(a.detach(), b.detach())
                   for a, b in zip(sim_only.parameters(), tuned.parameters(), strict=True))


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_fine_tune_vo2max_loss_weight_reaches_the_vo2max_head(real_dir, run_dir, sim_dir, weight):
    model, norm, config = load_model(run_dir)
    _, real = prepare_windows(real_dir)
    _, sim = prepare_windows(sim_dir)
    cfg = FineTuneConfig(epochs=1, vo2max_loss_weight=weight)
    tuned = fine_tune(model, real.subset(real.person.astype(str) == "D06"),
                      sim_train_windows(config, sim), norm, cfg, seed=0)
    head_moved = not torch.equal(tuned.head_vo2max.weight, model.head_vo2max.weight)
    assert head_moved == (weight > 0)  # with weight 0 no gradient reaches the VO2max head
    assert not torch.equal(tuned.head_vo2.weight, model.head_vo2.weight)


def test_cleaning_table_reports_each_rule():
    table = cv.cleaning_table({"implausible_HR": 5, "windows_dropped_gap": 2}, 1000)
    assert "| implausible HR | 5 | 0.50% |" in table
    assert "| windows dropped gap | 2 | – |" in table
