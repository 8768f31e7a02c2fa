"""`vo2spike compress`: the compressed folder, its engines, its report, and its doors."""

import json
import shutil

import numpy as np
import pytest

from vo2spike.cli import main
from vo2spike.compress.int_engine import Int8Engine
from vo2spike.compress.prune import sparsity
from vo2spike.compress.workflow import CompressOptions, compress_run
from vo2spike.config import load_config
from vo2spike.data.windows import prepare_windows
from vo2spike.engines import load_engine
from vo2spike.inference import load_model


@pytest.fixture(scope="module")
def compressed(run_dir, sim_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("compressed") / "c"
    report = compress_run(run_dir, sim_dir, out, CompressOptions(finetune_epochs=1),
                          say=lambda _: None)
    return out, report


def test_compressed_folder_is_a_checked_run_directory(compressed, run_dir):
    out, report = compressed
    cfg = load_config(out)
    assert cfg.compression.sparsity == 0.7 and cfg.compression.source == str(run_dir)
    assert cfg.compression.source_weights == load_config(run_dir).weights
    assert set(cfg.weights) == {"model.safetensors", "twin.safetensors", "int8.safetensors",
                                "int8.json", "int8_twin.safetensors", "int8_twin.json"}
    for twin in (False, True):
        model = load_model(out, twin=twin)[0]
        assert abs(sparsity(model) - 0.7) < 1e-3  # the masks were made permanent
    # Pruned gradually from the run's simulation-only weights: the 40% smallest of those
    # went first and stayed zero.
    assert cfg.compression.gradual_steps == [0.4, 0.6] and report["schedule"] == [0.4, 0.6, 0.7]
    from vo2spike.compress.prune import make_permanent, prune_global, with_shift_leak
    from vo2spike.demo.compression import prunable_weights

    sim_only = with_shift_leak(load_model(run_dir, sim_only=True)[0])
    first = prunable_weights(make_permanent(prune_global(sim_only, 0.4)))
    pruned = prunable_weights(load_model(out)[0])
    assert all((pruned[k][first[k] == 0] == 0).all() for k in first)
    assert load_model(out)[0].config.beta == 0.90625  # fine-tuned with the shift leak
    heads = load_model(out)[0].head_vo2.weight, load_model(out)[0].head_vo2max.weight
    assert all((h != 0).all() for h in heads)  # the default recipe never prunes the heads
    md = (out / "compression.md").read_text()
    assert md.startswith("# Compression")
    assert "ranked by 0.5 x their mean |w| (a TCN convolution's with its BatchNorm gain folded " \
        "in, as int8 computes with it); LIF2 by |w|, the VO2 and VO2max heads never pruned" \
        in " ".join(md.split())
    assert "schedule: 40% → 60% → 70%, masked fine-tuning after each step (up to 1, 1, 1 " \
        "epochs)" in md
    saved = json.loads((out / "compression.json").read_text())
    assert saved["prune_recipe"] == {"mac_score_scale": 0.5, "keep_heads": True,
                                     "bn_folded": True}
    assert set(saved["models"]) == {"spiking", "pruned", "pruned_int8", "pruned_c", "twin",
                                    "twin_pruned_int8"}
    assert "real" not in report  # the fixture run was not fine-tuned on real recordings


def test_report_rows_are_measured(compressed):
    _, report = compressed
    rows = report["models"]
    for mid, row in rows.items():
        m = row["sim"]["vo2_ml_min"]
        assert np.isfinite(m["r2"]) and m["rmse"] > 0, mid
    # the int8 model and the compiled C engine give the same outputs on every test window
    n_equal, n = report["c_engine"]["bit_exact_windows"]
    assert n_equal == n > 0
    assert rows["pruned_c"]["sim"] == rows["pruned_int8"]["sim"]
    c = report["c_engine"]
    if shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc"):
        q = c["qemu"]  # the same outputs on the emulated Cortex-M4
        assert q["bit_exact_windows"] == q["windows"] > 0 and q["stream_bit_exact"]
        assert q["instructions_per_window"] > 1e5
        assert c["sizes"]["flash_bytes"] <= 32 * 1024 and c["sizes"]["ram_bytes"] <= 8 * 1024
    else:
        assert "qemu" not in c
    assert rows["pruned_int8"]["model_bytes"] < rows["spiking"]["model_bytes"] / 4
    assert rows["pruned"]["nonzero_params"] < 0.4 * rows["spiking"]["nonzero_params"]
    assert 0 < rows["pruned_int8"]["energy_nj_per_window"] < rows["spiking"][
        "energy_nj_per_window"]


def test_predict_engines_on_the_compressed_model(compressed, sim_dir, tmp_path):
    out, _ = compressed
    _, w = prepare_windows(sim_dir, with_labels=False)
    int8 = Int8Engine(out).predict(w.x)
    assert np.array_equal(load_engine(out, "int8").predict(w.x).vo2, int8.vo2)
    for engine in ("float", "int8", "c"):
        assert main(["predict", "--model", str(out), "--data", str(sim_dir), "--out",
                     str(tmp_path / engine), "--engine", engine]) == 0
    a = np.loadtxt(tmp_path / "int8" / "windows.csv", delimiter=",", skiprows=1, usecols=3)
    c = np.loadtxt(tmp_path / "c" / "windows.csv", delimiter=",", skiprows=1, usecols=3)
    assert np.array_equal(a, c) and np.allclose(a, np.round(int8.vo2, 1))


def test_integer_engines_need_a_compressed_model(run_dir, sim_dir, tmp_path, capsys):
    code = main(["predict", "--model", str(run_dir), "--data", str(sim_dir), "--out",
                 str(tmp_path / "p"), "--engine", "int8"])
    assert code == 2
    assert "no compressed model" in capsys.readouterr().err


def test_a_damaged_int8_file_is_refused(compressed, sim_dir, tmp_path, capsys):
    out, _ = compressed
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    data = bytearray((copy / "int8.safetensors").read_bytes())
    data[-3] ^= 0x01
    (copy / "int8.safetensors").write_bytes(bytes(data))
    code = main(["predict", "--model", str(copy), "--data", str(sim_dir), "--out",
                 str(tmp_path / "p"), "--engine", "int8"])
    err = capsys.readouterr().err
    assert code == 2 and "int8.safetensors" in err and "Traceback" not in err


def test_compress_refuses_other_training_data(run_dir, tmp_path, capsys):
    from vo2spike.data.simulate import write_cohort

    other = write_cohort(tmp_path / "other", n_tests=10, seed=9)
    code = main(["compress", "--model", str(run_dir), "--data", str(other), "--out",
                 str(tmp_path / "c")])
    assert code == 2 and "not the training data" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_export_c_of_the_compressed_model(compressed, tmp_path, capsys):
    out, _ = compressed
    assert main(["export-c", "--model", str(out), "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "vo2spike_model.h").is_file()
    assert "make -C" in capsys.readouterr().out


def test_compress_rebuilds_the_missing_simulated_cohort_of_a_run(run_dir, tmp_path,
                                                                  monkeypatch):
    """A fresh clone has models/default but not its scratch cohort: it is simulated again
    from the settings recorded in config.json, and must be byte-identical to the original."""
    from vo2spike import pipeline
    from vo2spike.config import save_config, sha256_file

    monkeypatch.setattr(pipeline, "SCRATCH", tmp_path / "scratch")
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    cfg = load_config(run)
    cfg.data["path"] = str(tmp_path / "gone" / "cohort")
    save_config(run, cfg)
    said: list[str] = []
    data, real = pipeline.recorded_inputs(run, None, None, say=said.append)
    assert real is None and data.parent == tmp_path / "scratch"
    assert "SIMULATED cohort again" in said[0]
    for name, digest in cfg.data["sha256"].items():
        assert sha256_file(data / name) == digest


def test_real_table_states_the_bootstrap_interval_of_each_difference():
    from vo2spike.compress.workflow import REAL_ROWS, real_table

    def metrics(r2_vo2, r2_max):
        return {"vo2_ml_min": {"r2": r2_vo2, "rmse": 400.0},
                "vo2max_ml_min": {"r2": r2_max, "rmse": 550.0, "mape": 14.0}}

    real = {"models": {m: metrics(0.89, 0.60) for m in REAL_ROWS},
            "r2_difference_95": {"pruned_int8_real": {"vo2": [-0.012, 0.02],
                                                      "vo2max": [-0.081, 0.047]}}}
    real["models"]["pruned_int8_real"] = metrics(0.901, 0.58)
    text = real_table(real)
    assert "| +1.1 |" in text and "| -2.0 |" in text
    assert "VO2 [-1.2, +2.0] points, VO2max [-8.1, +4.7] points" in text
    del real["r2_difference_95"]
    assert "bootstrap" not in real_table(real)  # reports written before it still render


def test_one_shot_flag_reaches_the_compression(run_dir, tmp_path, monkeypatch):
    from vo2spike.compress import workflow

    seen: list[CompressOptions] = []

    def fake_compress(model, data, out, opts, **_):
        seen.append(opts)
        raise SystemExit(0)

    monkeypatch.setattr(workflow, "compress_run", fake_compress)
    for flags, gradual in (([], True), (["--one-shot"], False)):
        with pytest.raises(SystemExit):
            main(["compress", "--model", str(run_dir), "--out", str(tmp_path / "c"), *flags])
        assert seen.pop().gradual is gradual


def test_compression_records_written_before_gradual_pruning_load_as_one_shot(compressed):
    from vo2spike.config import RunDirError, config_from_dict, config_to_dict

    d = config_to_dict(load_config(compressed[0]))
    del d["compression"]["gradual_steps"]
    first = config_from_dict(d)
    assert first.compression.gradual_steps == []
    first.compression.gradual_steps.append(0.5)  # each load gets its own list
    assert config_from_dict(d).compression.gradual_steps == []
    d["compression"]["gradual_steps"] = ["0.4"]
    with pytest.raises(RunDirError, match=r"compression\.gradual_steps: expected a list of "
                                          r"float, found \['0\.4'\]"):
        config_from_dict(d)


def test_schedule_is_said_in_words():
    from vo2spike.compress.workflow import _schedule_text

    assert _schedule_text({"schedule": [0.7], "finetune_epochs": 8}) == \
        "one-shot, then masked fine-tuning (up to 8 epochs)"
    assert _schedule_text({"sparsity": 0.7, "finetune_epochs": 8}).startswith("one-shot")
    assert _schedule_text({"schedule": [0.45, 0.9], "finetune_epochs": 2}) == \
        "45% → 90%, masked fine-tuning after each step (up to 2, 2 epochs)"
