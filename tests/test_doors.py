"""Bad input and faults at the command line: clear errors, exit codes, and nothing lost.

Each case runs the CLI's entry point (or, where the point is "no traceback", the installed
command in a subprocess) and checks the exit code, the message, and that every file the
user owned before is still there, byte for byte.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vo2spike.cli import main
from vo2spike.config import CONFIG_FILE, TrainConfig, load_config
from vo2spike.outputs import MARKER


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (or ``root`` itself) with its bytes."""
    root = Path(root)
    if root.is_file():
        return {root.name: root.read_bytes()}
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.fixture
def data_copy(sim_dir, tmp_path) -> Path:
    d = tmp_path / "mydata"
    shutil.copytree(sim_dir, d)
    return d


@pytest.fixture
def model_copy(run_dir, tmp_path) -> Path:
    m = tmp_path / "mymodel"
    shutil.copytree(run_dir, m)
    return m


# --- --force never deletes what the command did not create ------------------------------


def test_force_never_deletes_the_input_data(data_copy, model_copy, capsys):
    before = snapshot(data_copy)
    code, err = run_cli(["predict", "--model", model_copy, "--data", data_copy,
                         "--out", data_copy, "--force"], capsys)
    assert code == 2 and "is the input" in err
    assert snapshot(data_copy) == before


def test_force_never_empties_the_working_folder(data_copy, model_copy, tmp_path, capsys,
                                                monkeypatch):
    work = tmp_path / "work" / "inner"
    work.mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    (work.parent / "thesis.tex").write_text("also mine")
    monkeypatch.chdir(work)
    for out in (".", ".."):
        code, err = run_cli(["predict", "--model", model_copy, "--data", data_copy,
                             "--out", out, "--force"], capsys)
        assert code == 2 and "working folder" in err
    assert (work / "notes.txt").read_text() == "mine"
    assert (work.parent / "thesis.tex").read_text() == "also mine"


def test_convert_force_never_deletes_the_raw_exports(tmp_path, capsys):
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "a.csv").write_text("t,Rf,VE,VO2,VCO2,HR\ns,1/min,L/min,ml/min,ml/min,bpm\n")
    (exports / "subjects.csv").write_text("File,ID,Age,Weight,Height,Sex\na.csv,P1,30,70,175,M\n")
    before = snapshot(exports)
    code, err = run_cli(["convert", "--from", "k5", exports, "--subjects",
                         exports / "subjects.csv", "--out", exports, "--force"], capsys)
    assert code == 2 and "is the input" in err
    assert snapshot(exports) == before


def test_force_refuses_a_folder_vo2spike_did_not_write(data_copy, model_copy, tmp_path, capsys):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "windows.csv").write_text("my own analysis")
    (mine / "paper.docx").write_bytes(b"\x00\x01")
    before = snapshot(mine)
    code, err = run_cli(["predict", "--model", model_copy, "--data", data_copy,
                         "--out", mine, "--force"], capsys)
    assert code == 2 and "was not written by vo2spike" in err
    assert snapshot(mine) == before


def test_force_refuses_an_output_of_another_kind(data_copy, model_copy, capsys):
    before = snapshot(model_copy)
    code, err = run_cli(["predict", "--model", model_copy, "--data", data_copy,
                         "--out", model_copy, "--force"], capsys)
    assert code == 2
    assert snapshot(model_copy) == before


def test_force_replaces_its_own_output_and_keeps_it_on_failure(data_copy, model_copy,
                                                               tmp_path, capsys, monkeypatch):
    out = tmp_path / "pred"
    assert run_cli(["predict", "--model", model_copy, "--data", data_copy, "--out", out],
                   capsys)[0] == 0
    assert json.loads((out / MARKER).read_text())["kind"] == "predictions"
    before = snapshot(out)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(out) + ".partial")

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    code, err = run_cli(["predict", "--model", model_copy, "--data", data_copy, "--out", out,
                         "--force"], capsys)
    assert code == 1 and "No space left on device" in err
    assert snapshot(out) == before  # the old output is intact
    assert not (tmp_path / "pred.partial").exists()  # and nothing half-written is left
    monkeypatch.undo()
    assert run_cli(["predict", "--model", model_copy, "--data", data_copy, "--out", out,
                    "--force"], capsys)[0] == 0


def test_force_never_replaces_a_folder_holding_an_input(data_copy, model_copy, tmp_path,
                                                        capsys):
    before = snapshot(tmp_path / "mydata")
    code, err = run_cli(["predict", "--model", model_copy, "--data", data_copy,
                         "--out", tmp_path, "--force"], capsys)
    assert code == 2 and "holds the input" in err
    assert snapshot(tmp_path / "mydata") == before


# --- outputs that cannot be written are found before the work ----------------------------


def test_output_under_a_regular_file_is_refused_before_any_work(data_copy, model_copy,
                                                                tmp_path, capsys, monkeypatch):
    import vo2spike.predict as predict_mod

    def no_work(*a, **k):
        raise AssertionError("the data was read before the output was checked")

    monkeypatch.setattr(predict_mod, "prepare_windows", no_work)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, err = run_cli(["predict", "--model", model_copy, "--data", data_copy,
                         "--out", blocker / "out"], capsys)
    assert code == 2 and "is not a folder" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_output_without_permission_is_refused(data_copy, model_copy, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, err = run_cli(["predict", "--model", model_copy, "--data", data_copy,
                             "--out", locked / "out"], capsys)
    finally:
        locked.chmod(0o700)
    assert code == 2 and "no permission" in err


# --- damaged model folders are named and refused ------------------------------------------


def _predict(model: Path, data: Path, out: Path, capsys) -> tuple[int, str]:
    return run_cli(["predict", "--model", model, "--data", data, "--out", out], capsys)


@pytest.mark.parametrize("damage, message", [
    ("truncate", "damaged"),
    ("flip_byte", "damaged"),
    ("random", "damaged"),
    ("delete_weights", "weight file missing"),
    ("invalid_json", "invalid JSON"),
    ("missing_key", "missing field(s) normalization"),
    ("unknown_key", "unknown field(s) colour"),
    ("old_format", "format_version"),
    ("wrong_shape", "do not fit the architecture"),
    ("not_a_safetensors_file", "not a readable safetensors file"),
    ("no_config", "not a trained run directory"),
])
def test_damaged_model_folder_is_named_and_refused(damage, message, model_copy, data_copy,
                                                   tmp_path, capsys):
    weights, cfg_path = model_copy / "model.safetensors", model_copy / CONFIG_FILE
    cfg = json.loads(cfg_path.read_text())
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "flip_byte":
        b = bytearray(weights.read_bytes())
        b[-100] ^= 0x01  # a weight's low bit: the file still loads, but differs
        weights.write_bytes(bytes(b))
    elif damage == "random":
        weights.write_bytes(os.urandom(weights.stat().st_size))
    elif damage == "delete_weights":
        weights.unlink()
    elif damage == "invalid_json":
        cfg_path.write_text(cfg_path.read_text()[:-20])
    elif damage in ("missing_key", "unknown_key", "old_format"):
        if damage == "missing_key":
            del cfg["normalization"]
        elif damage == "unknown_key":
            cfg["model"]["colour"] = "red"
        else:
            del cfg["format_version"]
        cfg_path.write_text(json.dumps(cfg))
    elif damage in ("wrong_shape", "not_a_safetensors_file"):
        import hashlib

        from safetensors.torch import save_file

        from vo2spike.model.net import ModelConfig, VO2Net
        if damage == "wrong_shape":
            save_file(VO2Net(ModelConfig(hidden=16)).state_dict(), str(weights))
        else:
            weights.write_bytes(b"not safetensors at all")
        cfg["weights"]["model.safetensors"] = hashlib.sha256(weights.read_bytes()).hexdigest()
        cfg_path.write_text(json.dumps(cfg))
    elif damage == "no_config":
        cfg_path.unlink()
    code, err = _predict(model_copy, data_copy, tmp_path / "out", capsys)
    assert code == 2, err
    assert message in err
    assert str(model_copy) in err  # the file (or folder) is named
    assert not (tmp_path / "out").exists()


def test_interrupted_training_is_not_used_as_a_model(sim_dir, data_copy, tmp_path, capsys,
                                                     monkeypatch):
    import vo2spike.train as train_mod

    real_fit, calls = train_mod.fit, {"n": 0}

    def die_in_the_twin(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the spiking model finished; killed while training the twin
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train_mod, "fit", die_in_the_twin)
    out = tmp_path / "run"
    code, err = run_cli(["train", "--data", sim_dir, "--out", out, "--epochs", "1"], capsys)
    assert code == 130 and "interrupted" in err and "--resume" in err
    assert not out.exists()  # the output path is never half a run
    partial = out.with_name("run.partial")
    assert (partial / "model.safetensors").exists()  # looks like a model, but is unfinished
    code, err = _predict(partial, data_copy, tmp_path / "pred", capsys)
    assert code == 2 and "not a finished weight file" in err and "--resume" in err
    monkeypatch.undo()
    assert run_cli(["train", "--data", sim_dir, "--out", out, "--resume"], capsys)[0] == 0
    assert set(load_config(out).weights) == {"model.safetensors", "twin.safetensors"}
    assert _predict(out, data_copy, tmp_path / "pred", capsys)[0] == 0


# --- numeric arguments are checked at the door ---------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "d", "--out", "o", "--epochs", "0"], "must be at least 1"),
    (["train", "--data", "d", "--out", "o", "--epochs", "-3"], "must be at least 1"),
    (["train", "--data", "d", "--out", "o", "--epochs", "many"], "not a whole number"),
    (["simulate", "--out", "o", "--n-tests", "0"], "must be at least 1"),
    (["simulate", "--out", "o", "--n-tests", "-5"], "must be at least 1"),
    (["simulate", "--out", "o", "--seed", "-1"], "must be between 0 and"),
    (["run", "--seed", "99999999999"], "must be between 0 and"),
    (["realism", "--n-sim", "0"], "must be at least 1"),
    (["run", "--spike-rate-penalty", "-1"], "must be a finite number >= 0"),
    (["train", "--data", "d", "--out", "o", "--spike-rate-penalty", "nan"], "finite number"),
    (["train", "--data", "d", "--out", "o", "--spike-rate-penalty", "lots"], "not a number"),
])
def test_numeric_arguments_are_validated(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written


# --- no traceback, ever, for a user's mistake -----------------------------------------------


def test_installed_command_gives_no_traceback(tmp_path):
    exe = Path(sys.executable).with_name("vo2spike")
    proc = subprocess.run([str(exe), "predict", "--model", str(tmp_path / "nope"), "--data",
                           str(tmp_path), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "nope" in proc.stderr


def test_ctrl_c_exits_130_without_traceback(monkeypatch, tmp_path, capsys):
    import vo2spike.cli as cli_mod

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_mod, "write_cohort", interrupted)
    code, err = run_cli(["simulate", "--out", tmp_path / "c"], capsys)
    assert code == 130 and "interrupted" in err


def test_kill_leaves_nothing_half_written(tmp_path):
    """SIGTERM (`kill`) in the middle of a command: exit 130, no traceback, no output and no
    OUT.partial left behind."""
    import signal
    import time

    exe = Path(sys.executable).with_name("vo2spike")
    out = tmp_path / "cohort"
    proc = subprocess.Popen([str(exe), "simulate", "--out", str(out)], stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)  # until it has started writing
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err
    assert list(tmp_path.iterdir()) == []


def test_spike_rate_penalty_flag_reaches_the_training_config():
    from vo2spike.cli import _train_config, build_parser

    args = build_parser().parse_args(["train", "--data", "d", "--out", "o",
                                      "--spike-rate-penalty", "2.5"])
    assert _train_config(args).spike_rate_penalty == 2.5
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o"])
    assert _train_config(args).spike_rate_penalty == TrainConfig().spike_rate_penalty
