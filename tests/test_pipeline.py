"""The whole pipeline on a small simulated cohort: train, resume, evaluate, predict, CLI."""

import json

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

from vo2spike import train as train_mod
from vo2spike.cli import main
from vo2spike.config import TrainConfig, load_config
from vo2spike.data.read import load_dataset
from vo2spike.data.windows import make_windows
from vo2spike.evaluate import evaluate_run
from vo2spike.inference import DEFAULT_MODEL, load_model
from vo2spike.predict import WINDOW_COLUMNS, predict_dir
from vo2spike.train import train_run


def test_run_directory_contents(run_dir):
    assert {p.name for p in run_dir.iterdir()} == {
        "model.safetensors", "twin.safetensors", "config.json", "metrics.json",
        ".vo2spike-output"}
    config = load_config(run_dir)
    assert config.data["kind"] == "simulated"
    assert config.channels == ["Speed", "HR", "RR", "VE", "Age", "Weight", "Height", "Sex",
                               "RR_present", "VE_present"]
    assert len(config.normalization.x_mean) == 10
    split = config.split
    assert not set(split["train"]) & set(split["test"])
    assert config.seed == 1
    assert set(config.weights) == {"model.safetensors", "twin.safetensors"}
    model, norm, _ = load_model(run_dir)
    assert model.config.spiking and not load_model(run_dir, twin=True)[0].config.spiking


def test_training_is_reproducible(sim_dir, run_dir, tmp_path):
    train_run(sim_dir, tmp_path / "again", TrainConfig(epochs=3), seed=1)
    a = load_file(str(run_dir / "model.safetensors"))
    b = load_file(str(tmp_path / "again" / "model.safetensors"))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_resume_after_interruption_matches_uninterrupted(sim_dir, run_dir, tmp_path,
                                                         monkeypatch):
    calls = {"n": 0}
    real_save = train_mod._save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:  # killed after the second epoch of the spiking model
            raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "_save_checkpoint", save_then_die)
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        train_run(sim_dir, out, TrainConfig(epochs=3), seed=1)
    assert not out.exists()  # kept, resumable, beside it
    assert (tmp_path / "interrupted.partial" / "checkpoint-spiking.safetensors").exists()
    assert not (tmp_path / "interrupted.partial" / "metrics.json").exists()
    monkeypatch.setattr(train_mod, "_save_checkpoint", real_save)
    with pytest.raises(train_mod.OutputExistsError, match="--resume"):
        train_run(sim_dir, out, TrainConfig(epochs=3), seed=1)
    # --resume restores the architecture, settings and seed from the run's config.
    train_run(sim_dir, out, TrainConfig(epochs=99), seed=7, resume=True)
    a = load_file(str(run_dir / "model.safetensors"))
    b = load_file(str(out / "model.safetensors"))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert not list(out.glob("checkpoint-*"))
    assert not (tmp_path / "interrupted.partial").exists()


def test_evaluate_reports_all_models(run_dir, sim_dir, tmp_path):
    r = evaluate_run(run_dir, sim_dir, out=tmp_path / "eval")
    assert set(r["models"]) == {"spiking", "twin", "ridge"}
    m = r["models"]["spiking"]
    for key in ("vo2_ml_min", "vo2max_ml_min", "vo2max_ml_kg_min"):
        assert set(m[key]) == {"r2", "rmse", "mae", "mape"}
        assert np.isfinite(m[key]["rmse"]) and m[key]["rmse"] > 0
    assert 0 < r["spike_rates"]["lif1"] < 1 and 0 <= r["spike_rates"]["lif2"] < 1
    assert r["parameters"]["spiking"] > 1000
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "simulated" in report and "VO2max MAPE" in report
    assert "| spiking TCN+LIF | " in report and "| ANN twin (same TCN, no spikes) | " in report
    assert (tmp_path / "eval" / "pred_vs_measured.png").stat().st_size > 1000
    assert (tmp_path / "eval" / "bland_altman.png").stat().st_size > 1000
    # The test split is the model's own: people never seen in training.
    test_people = set(json.loads((run_dir / "config.json").read_text())["split"]["test"])
    assert m["n_tests"] == sum(
        1 for p in pd.read_csv(sim_dir / "subject-info.csv")["ID"].astype(str) if p in test_people)


def test_predict_writes_one_row_per_window(run_dir, sim_dir, tmp_path):
    windows, tests = predict_dir(sim_dir, tmp_path / "pred", model_dir=run_dir)
    got = pd.read_csv(tmp_path / "pred" / "windows.csv")
    assert list(got.columns) == WINDOW_COLUMNS
    assert list(pd.read_csv(tmp_path / "pred" / "tests.csv").columns) == [
        "ID_test", "input_set", "vo2max_pred", "vo2max_low", "vo2max_high"]
    w = make_windows(load_dataset(sim_dir), with_labels=False)
    assert len(got) == len(w)
    assert (got["t_end"] - got["t_start"] == 60).all()
    assert set(tests["ID_test"]) == set(got["ID_test"])
    assert got["vo2_pred"].between(0, 10_000).all()


def test_predict_needs_no_vo2_columns(run_dir, sim_dir, tmp_path):
    d = tmp_path / "watch"
    d.mkdir()
    (d / "subject-info.csv").write_bytes((sim_dir / "subject-info.csv").read_bytes())
    m = pd.read_csv(sim_dir / "test_measure.csv").drop(columns=["VO2", "VCO2"])
    m.to_csv(d / "test_measure.csv", index=False)
    windows, _ = predict_dir(d, tmp_path / "pred", model_dir=run_dir)
    assert len(windows) > 0


def test_shipped_model_predicts_any_directory(sim_dir, tmp_path):
    assert (DEFAULT_MODEL / "model.safetensors").exists()
    assert main(["predict", "--data", str(sim_dir), "--out", str(tmp_path / "p")]) == 0
    assert len(pd.read_csv(tmp_path / "p" / "windows.csv")) > 0


def test_cli_end_to_end_and_output_safety(tmp_path, capsys):
    data, run, pred = tmp_path / "d", tmp_path / "r", tmp_path / "p"
    assert main(["simulate", "--out", str(data), "--n-tests", "16", "--protocol", "mixed",
                 "--seed", "2"]) == 0
    assert "SIMULATED" in capsys.readouterr().out
    assert main(["train", "--data", str(data), "--out", str(run), "--quick", "--epochs", "2"]) == 0
    assert main(["evaluate", "--model", str(run), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "simulated" in out and "| spiking TCN+LIF |" in out
    assert main(["predict", "--model", str(run), "--data", str(data), "--out", str(pred)]) == 0
    before = (pred / "windows.csv").read_bytes()
    # Nothing is overwritten without --force.
    assert main(["predict", "--model", str(run), "--data", str(data), "--out", str(pred)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (pred / "windows.csv").read_bytes() == before
    assert main(["train", "--data", str(data), "--out", str(run)]) == 2
    assert main(["simulate", "--out", str(data)]) == 2


def test_cli_bad_input_names_file_line_column(tmp_path, sim_dir, capsys):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "subject-info.csv").write_bytes((sim_dir / "subject-info.csv").read_bytes())
    lines = (sim_dir / "test_measure.csv").read_text().splitlines()
    cells = lines[41].split(",")
    cells[2] = "n/a bpm"
    lines[41] = ",".join(cells)
    (d / "test_measure.csv").write_text("\n".join(lines) + "\n")
    assert main(["predict", "--data", str(d), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "test_measure.csv: line 42, column 'HR'" in err
    assert not (tmp_path / "o").exists()


def test_run_force_keeps_the_old_run_until_the_new_one_finishes(sim_dir, tmp_path, monkeypatch):
    import vo2spike.pipeline as pipeline_mod

    out = tmp_path / "run"
    args = ["run", "--data", str(sim_dir), "--no-real", "--quick", "--out", str(out)]
    assert main(args) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    old_model = (out / "model.safetensors").read_bytes()
    assert "- model: `" + str(out) + "`" in (out / "evaluation" / "report.md").read_text()
    assert main(args) == 2  # exists, no --force

    def broken(*a, **k):
        raise RuntimeError("evaluation failed")

    monkeypatch.setattr(pipeline_mod, "evaluate_run", broken)
    with pytest.raises(RuntimeError):
        main(args + ["--force", "--seed", "5"])
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # the failed --force run lost nothing
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # and left no partial output
    monkeypatch.undo()
    assert main(args + ["--force", "--seed", "5"]) == 0
    assert (out / "model.safetensors").read_bytes() != old_model
