"""What a watch records: input sets (speed,hr / speed,hr,rr / every signal), channel
dropout, predict on files without RR or VE, and VO2max with its interval."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from vo2spike.cli import main
from vo2spike.compress.int_engine import Int8Engine
from vo2spike.config import Normalizer, load_config
from vo2spike.data.read import MEASURE_FILE
from vo2spike.data.windows import (
    ABSENT_FILL,
    CHANNELS,
    INPUT_SETS,
    check_input_set,
    input_sets_of,
    mixed_input_sets,
    prepare_windows,
    with_input_set,
)
from vo2spike.inference import load_model, predict_windows
from vo2spike.predict import predict_dir
from vo2spike.train import InputDropout
from vo2spike.vo2max import (
    conformal_half_width,
    extrapolate_vo2max,
    heart_rates,
    interval,
    nested_coverage,
    tanaka_hrmax,
    vo2max_per_test,
)

RR, VE = CHANNELS.index("RR"), CHANNELS.index("VE")
RR_P, VE_P = CHANNELS.index("RR_present"), CHANNELS.index("VE_present")


def _without(sim_dir, tmp_path, columns: list[str], *, empty: bool = False):
    """A copy of ``sim_dir`` whose measurements lack ``columns`` (dropped, or ``empty``)."""
    out = tmp_path / "watch"
    shutil.copytree(sim_dir, out)
    m = pd.read_csv(out / MEASURE_FILE)
    if empty:
        m[columns] = np.nan
    else:
        m = m.drop(columns=columns + ["VO2", "VCO2"])
    m.to_csv(out / MEASURE_FILE, index=False)
    return out


def test_input_set_names_are_checked():
    assert check_input_set("HR,speed") == "speed,hr"
    assert check_input_set(" speed, hr, rr ,ve") == "speed,hr,rr,ve"
    with pytest.raises(ValueError, match="unknown input set 'speed,ve'"):
        check_input_set("speed,ve")


def test_with_input_set_fills_absent_signals_and_flags(sim_windows):
    x = sim_windows.x[:10]
    assert (x[:, RR_P] == 1).all() and (x[:, VE_P] == 1).all()
    watch = with_input_set(x, "speed,hr")
    assert (watch[:, RR] == ABSENT_FILL["RR"]).all() and (watch[:, VE] == ABSENT_FILL["VE"]).all()
    assert (watch[:, [RR_P, VE_P]] == 0).all()
    keep = [CHANNELS.index(c) for c in ("Speed", "HR", "Age", "Weight", "Height", "Sex")]
    np.testing.assert_array_equal(watch[:, keep], x[:, keep])
    assert list(input_sets_of(watch)) == ["speed,hr"] * 10
    rr_only = with_input_set(x, "speed,hr,rr")
    np.testing.assert_array_equal(rr_only[:, RR], x[:, RR])
    assert list(input_sets_of(rr_only)) == ["speed,hr,rr"] * 10
    assert (x[:, VE] != ABSENT_FILL["VE"]).any()  # the input was not changed in place
    with pytest.raises(ValueError, match="10 window[(]s[)] have no RR"):
        with_input_set(watch, "speed,hr,rr,ve")
    with pytest.raises(ValueError, match="10 window[(]s[)] have no VE"):
        with_input_set(rr_only, "speed,hr,rr,ve")


def test_mixed_input_sets_cover_every_set_and_are_seeded(sim_windows):
    mixed = mixed_input_sets(sim_windows.x[:300])
    counts = pd.Series(input_sets_of(mixed)).value_counts()
    assert set(counts.index) == set(INPUT_SETS) and counts.min() > 60
    np.testing.assert_array_equal(mixed, mixed_input_sets(sim_windows.x[:300]))


def test_dropout_matches_the_raw_input_sets(sim_windows):
    """Channel dropout in standardised units is exactly with_input_set in raw units."""
    norm = Normalizer.fit(sim_windows)
    x = sim_windows.x[:64]
    z = torch.from_numpy(norm.inputs(x))
    for name in INPUT_SETS:
        drop = InputDropout(norm, {n: float(n == name) for n in INPUT_SETS})
        got = drop(z, torch.Generator().manual_seed(0)).numpy()
        np.testing.assert_allclose(got, norm.inputs(with_input_set(x, name)), atol=1e-5)
    both = InputDropout(norm, {"speed,hr": 1, "speed,hr,rr": 0, "speed,hr,rr,ve": 1})
    got = both(z, torch.Generator().manual_seed(1)).numpy()
    absent = np.isclose(got[:, VE_P, 0], (0 - norm.x_mean[VE_P]) / norm.x_std[VE_P])
    assert 10 < absent.sum() < 54  # about half the windows, drawn per window
    with pytest.raises(ValueError, match="input_set_weights"):
        InputDropout(norm, {"speed,hr": 0.0})


def test_windows_of_a_watch_file_have_the_signals_absent(sim_dir, tmp_path):
    dropped = _without(sim_dir, tmp_path, ["RR", "VE"])
    _, w = prepare_windows(dropped, with_labels=False)
    assert set(input_sets_of(w.x)) == {"speed,hr"}
    assert (w.x[:, RR] == ABSENT_FILL["RR"]).all()
    _, full = prepare_windows(sim_dir, with_labels=False)
    # rows are no longer dropped for a missing RR or VE: at least as many windows
    assert len(w) >= len(full) and set(input_sets_of(full.x)) == {"speed,hr,rr,ve"}


def test_predict_picks_the_input_set_from_the_file_and_says_so(run_dir, sim_dir, tmp_path,
                                                              capsys):
    watch = _without(sim_dir, tmp_path, ["VE"], empty=True)
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(run_dir), "--data", str(watch),
                 "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "input set used (the signals each test has): speed,hr,rr for 40 test(s)" in said
    tests = pd.read_csv(out / "tests.csv")
    assert list(tests.columns) == ["ID_test", "input_set", "vo2max_pred", "vo2max_low",
                                   "vo2max_high"]
    assert (tests["input_set"] == "speed,hr,rr").all()
    # the same as the full data given as speed,hr,rr by --inputs
    forced = tmp_path / "forced"
    assert main(["predict", "--model", str(run_dir), "--data", str(sim_dir), "--out",
                 str(forced), "--inputs", "speed,hr,rr"]) == 0
    assert "forced by --inputs" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(forced / "windows.csv"),
                                  pd.read_csv(out / "windows.csv"))
    full = tmp_path / "full"
    assert main(["predict", "--model", str(run_dir), "--data", str(sim_dir), "--out",
                 str(full)]) == 0
    assert not pd.read_csv(full / "windows.csv")["vo2_pred"].equals(
        pd.read_csv(out / "windows.csv")["vo2_pred"])


def test_predict_refuses_an_input_set_the_file_lacks(run_dir, sim_dir, tmp_path, capsys):
    watch = _without(sim_dir, tmp_path, ["RR", "VE"])
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(run_dir), "--data", str(watch), "--out", str(out),
                 "--inputs", "speed,hr,rr"]) == 2
    err = capsys.readouterr().err
    assert "--inputs speed,hr,rr needs RR, which 40 test(s) do not have" in err
    assert "Traceback" not in err and not out.exists()
    assert main(["predict", "--model", str(run_dir), "--data", str(watch), "--out", str(out),
                 "--inputs", "speed,gps"]) == 2
    assert "unknown input set 'speed,gps'" in capsys.readouterr().err


def test_the_int8_engine_serves_every_input_set(int8_dir, sim_windows):
    """int8 close to float for each input set (the calibration covers every set)."""
    model, norm, _ = load_model(int8_dir)
    engine = Int8Engine(int8_dir)
    for name in INPUT_SETS:
        x = with_input_set(sim_windows.x[:200], name)
        f, q = predict_windows(model, norm, x), engine.predict(x)
        assert np.corrcoef(f.vo2, q.vo2)[0, 1] > 0.95, name


def test_hrmax_is_measured_when_reached_else_age_predicted(sim_windows):
    rates = heart_rates(sim_windows)
    age = rates["hr_age"]
    reached = rates["hr_peak"] >= 0.95 * age
    assert reached.any()
    np.testing.assert_allclose(rates.loc[reached, "hrmax"], rates.loc[reached, "hr_peak"])
    np.testing.assert_allclose(rates.loc[~reached, "hrmax"], age[~reached])
    assert tanaka_hrmax(40) == pytest.approx(180.0)
    assert (rates["hr_rest"] < rates["hr_peak"]).all()


def test_extrapolation_recovers_a_linear_vo2_hr_relation(sim_windows):
    """Window VO2 exactly linear in window HR: the extrapolation gives the line at HRmax."""
    hr = sim_windows.x[:, CHANNELS.index("HR"), :].mean(axis=1)
    vo2 = 20.0 * hr - 500.0
    got = extrapolate_vo2max(sim_windows, vo2)
    rates = heart_rates(sim_windows)
    np.testing.assert_allclose(got, 20.0 * rates.loc[got.index, "hrmax"] - 500.0, rtol=1e-6)


def test_conformal_half_width_and_coverage():
    rng = np.random.default_rng(0)
    est = rng.uniform(2000, 4000, 400)
    true = est * (1 + rng.normal(0, 0.1, 400))
    q = conformal_half_width(true, est, 0.9)
    assert 0.14 < q < 0.19  # |N(0, 0.1)| has its 90% quantile at 0.164
    assert conformal_half_width(true[:5], est[:5], 0.9) == float("inf")  # too few tests
    lo, hi = interval(est, q)
    assert ((true >= lo) & (true <= hi)).mean() >= 0.9
    idx = pd.Index([f"t{i}" for i in range(400)])
    people = pd.Series([f"p{i // 4}" for i in range(400)], index=idx)
    cov = nested_coverage(pd.Series(true, index=idx), pd.Series(est, index=idx), people, 0.9)
    assert 0.85 < cov["coverage"] < 0.95 and cov["tests"] == 400


def test_vo2max_per_test_uses_the_record(sim_windows):
    sets = pd.Series("speed,hr", index=sorted(set(sim_windows.id_test)))
    vo2 = np.full(len(sim_windows), 3000.0)
    head = np.full(len(sim_windows), 3500.0)
    record = {"input_sets": {"speed,hr": {"combination": "head", "half_width": 0.1}}}
    t = vo2max_per_test(sim_windows, vo2, head, sets, record)
    np.testing.assert_allclose(t["vo2max_pred"], 3500.0)
    np.testing.assert_allclose(t["vo2max_low"], 3150.0)
    np.testing.assert_allclose(t["vo2max_high"], 3850.0)
    record["input_sets"]["speed,hr"]["combination"] = "mean"
    t = vo2max_per_test(sim_windows, vo2, head, sets, record)
    np.testing.assert_allclose(t["vo2max_pred"], 3250.0)  # constant VO2: max of 3000
    none = vo2max_per_test(sim_windows, vo2, head, sets, None)
    assert none["vo2max_low"].isna().all() and (none["vo2max_pred"] == 3500.0).all()


def test_evaluation_reports_every_input_set(run_dir, sim_dir, tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(run_dir), "--data", str(sim_dir),
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["input_sets"]) == set(INPUT_SETS)
    watch = metrics["input_sets"]["speed,hr"]["models"]
    assert {"spiking", "ridge", "spiking_extrapolated", "acsm", "uth_sorensen"} <= set(watch)
    full = metrics["input_sets"]["speed,hr,rr,ve"]["models"]["spiking"]
    assert full["vo2_ml_min"]["r2"] == pytest.approx(metrics["models"]["spiking"]
                                                     ["vo2_ml_min"]["r2"])
    report = (out / "report.md").read_text()
    assert "| speed,hr | Uth-Sorensen" in report and "coverage" in report


def test_config_records_the_input_sets(run_dir):
    cfg = load_config(run_dir)
    assert cfg.input_sets == list(INPUT_SETS) and cfg.channels == CHANNELS
    assert cfg.model.n_inputs == len(CHANNELS)
    assert set(cfg.train.input_set_weights) == set(INPUT_SETS)


def test_predict_dir_on_the_shipped_layout_without_vo2(run_dir, sim_dir, tmp_path):
    watch = _without(sim_dir, tmp_path, ["RR", "VE"])
    windows, tests = predict_dir(watch, tmp_path / "p", model_dir=run_dir)
    assert (tests["input_set"] == "speed,hr").all() and len(windows) > 0
