"""The demo server (``vo2spike demo``): JSON API, numbers equal to the CLI's predictions,
path traversal, uploads and their errors, a missing model, stage 6's compression adapter."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import uuid
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from vo2spike.cli import build_parser
from vo2spike.config import (
    MODEL_FILE,
    TWIN_FILE,
    RunDirError,
    load_config,
    save_config,
    sha256_file,
)
from vo2spike.data.read import MEASURE_FILE, SUBJECT_FILE
from vo2spike.data.simulate import simulate_cohort, write_cohort
from vo2spike.data.windows import prepare_windows
from vo2spike.demo import compression
from vo2spike.demo.app import DemoApp
from vo2spike.demo.server import DemoServer, static_files
from vo2spike.demo.trace import trace_model
from vo2spike.demo.upload import MAX_UPLOAD_BYTES, predict_upload
from vo2spike.demo.workouts import SIMULATED, simulate_workout
from vo2spike.inference import load_model, predict_windows
from vo2spike.model.spike import LIF

from .conftest import SHARED, needs_shared
from .test_fit import PROFILE, graded_run, write_fit

YOYO = SHARED / "yoyo-k5"


def start(app: DemoApp) -> DemoServer:
    """A demo server on a free port of 127.0.0.1, serving in a thread."""
    server = DemoServer(("127.0.0.1", 0), app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def server(run_dir):
    s = start(DemoApp(run_dir, yoyo_root=YOYO if YOYO.is_dir() else None))
    yield s
    s.shutdown()
    s.server_close()
    s.app.close()


def request(server: DemoServer, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP request: the path is sent exactly as given (no normalisation)."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=120)
    conn.putrequest(method, path, skip_accept_encoding=True)
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    if body is not None and "Content-Length" not in (headers or {}):
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    if body is not None:
        conn.send(body)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def get_json(server: DemoServer, path: str, **params) -> tuple[int, dict]:
    status, _, body = request(server, "GET", f"{path}?{urlencode(params)}" if params else path)
    return status, json.loads(body)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type."""
    boundary = uuid.uuid4().hex
    out = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                   f"{value}\r\n".encode())
    for name, (filename, data) in files.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                   f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode() + data
                   + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def upload(server: DemoServer, fields: dict, files: dict) -> tuple[int, dict]:
    body, ctype = multipart(fields, files)
    status, _, data = request(server, "POST", "/api/upload", body, {"Content-Type": ctype})
    return status, json.loads(data)


# ---------------------------------------------------------------------------- the LIF trace
def test_lif_potential_trace_leaves_forward_unchanged():
    torch.manual_seed(0)
    lif = LIF(5, 7)
    x = torch.randn(3, 40, 5) * 2
    spikes, potential = lif.forward_with_potential(x)
    assert torch.equal(spikes, lif(x).detach())
    assert torch.equal(spikes, (potential > lif.threshold).float())
    # U[t] = beta * (U[t-1] - S[t-1] * threshold) + W x[t] + b
    current = lif.fc(x).detach()
    prev = potential[:, :-1] - spikes[:, :-1] * lif.threshold
    assert torch.allclose(potential[:, 1:], lif.beta * prev + current[:, 1:], atol=1e-5)


# ---------------------------------------------------------------------------- numbers
def test_trace_equals_predict_windows(run_dir):
    model, norm, _ = load_model(run_dir)
    w = simulate_workout(SIMULATED[0], SIMULATED[0].person).windows
    t = trace_model(model, norm, w.x)
    p = predict_windows(model, norm, w.x)
    np.testing.assert_allclose(t.vo2, p.vo2, rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(t.vo2max, p.vo2max, rtol=1e-5, atol=1e-2)
    assert t.spikes1.mean() == pytest.approx(p.spike_rates["lif1"], abs=1e-6)
    assert t.spikes2.mean() == pytest.approx(p.spike_rates["lif2"], abs=1e-6)
    assert set(np.unique(t.spikes2)) <= {0.0, 1.0}


@pytest.mark.parametrize("workout", ["incremental", "steady", "intervals"])
def test_api_trace_numbers_equal_the_cli_path(server, run_dir, workout, tmp_path):
    """The page's numbers equal predict_windows on the same workout read back through the
    CLI's own reader (prepare_windows on the written data directory)."""
    status, data = get_json(server, "/api/trace", workout=workout)
    assert status == 200, data
    spec = next(s for s in SIMULATED if s.id == workout)
    # Rebuild the same data directory and read it like `vo2spike predict` does.
    demo = pd.DataFrame([{"Age": spec.person.age, "Weight": spec.person.weight,
                          "Height": spec.person.height, "Humidity": 50.0,
                          "Temperature": 21.0, "Sex": spec.person.sex, "ID": "demo",
                          "ID_test": "demo_1"}])
    subjects, measures, _ = simulate_cohort(demo, protocol=spec.protocol, seed=spec.seed)
    subjects.to_csv(tmp_path / SUBJECT_FILE, index=False)
    measures.to_csv(tmp_path / MEASURE_FILE, index=False)
    _, cli_w = prepare_windows(tmp_path)
    model, norm, _ = load_model(run_dir)
    pred = predict_windows(model, norm, cli_w.x)
    windows = data["windows"]
    assert len(windows["vo2_pred"]) == len(cli_w) == data["summary"]["n_windows"]
    np.testing.assert_allclose(windows["vo2_pred"], pred.vo2, atol=0.051)
    np.testing.assert_allclose(windows["vo2max_pred"], pred.vo2max, atol=0.051)
    np.testing.assert_allclose(windows["vo2_measured"], cli_w.vo2, atol=0.051)
    assert data["summary"]["vo2max_pred_ml_min"] == pytest.approx(pred.vo2max.mean(), abs=0.051)
    assert data["summary"]["spike_rates"]["lif1"] == pytest.approx(pred.spike_rates["lif1"],
                                                                   abs=1e-4)
    assert data["workout"]["kind"] == "simulated"
    # One window's internals: shapes, and its head output equal to the window's prediction.
    status, d = get_json(server, "/api/window", workout=workout, index=1)
    assert status == 200, d
    assert len(d["tcn"]) == 32 and len(d["tcn"][0]) == 60
    assert len(d["spikes"]["lif1"]) == 64 and len(d["rates_lif2"]) == 64
    assert len(d["membrane"]["lif1"]["potential"][0]) == 60
    assert d["head"]["vo2_ml_min"] == pytest.approx(pred.vo2[1], abs=0.051)
    spikes = {t for n in d["spikes"]["lif2"] for t in n}
    assert spikes <= set(range(60))


def test_person_controls_rerun_the_model(server):
    _, base = get_json(server, "/api/trace", workout="steady")
    status, other = get_json(server, "/api/trace", workout="steady", age=62, weight=95,
                             height=170, sex=0)
    assert status == 200, other
    assert other["person"] == {"age": 62.0, "weight": 95.0, "height": 170.0, "sex": 0}
    assert other["windows"]["vo2_pred"] != base["windows"]["vo2_pred"]
    assert "simulated again" in other["workout"]["person_note"]


@needs_shared
def test_real_workout_is_labelled_and_keeps_its_signals(server):
    _, ws = get_json(server, "/api/workouts")
    real = [w for w in ws["workouts"] if w["kind"] == "real"]
    assert len(real) == 1 and real[0]["id"] == "real-yoyo"
    status, a = get_json(server, "/api/trace", workout="real-yoyo")
    assert status == 200, a
    assert a["workout"]["source"].startswith("REAL")
    _, b = get_json(server, "/api/trace", workout="real-yoyo", age=50)
    assert b["signals"]["hr"] == a["signals"]["hr"]  # the recording stays as recorded
    assert b["windows"]["vo2_measured"] == a["windows"]["vo2_measured"]
    assert b["windows"]["vo2_pred"] != a["windows"]["vo2_pred"]


@pytest.mark.parametrize("params, field", [
    ({"workout": "steady", "age": "abc"}, "age"),
    ({"workout": "steady", "age": "300"}, "age"),
    ({"workout": "steady", "weight": "5"}, "weight"),
    ({"workout": "steady", "height": "nan"}, "height"),
    ({"workout": "steady", "sex": "2"}, "sex"),
    ({"workout": "nope"}, "workout"),
    ({}, "workout"),
])
def test_bad_parameters_give_clear_json_errors(server, params, field):
    status, data = get_json(server, "/api/trace", **params)
    assert status == 400
    assert data["error"].startswith(f"{field}:")


def test_window_index_is_checked(server):
    for index in ["x", "-1", "9999"]:
        status, data = get_json(server, "/api/window", workout="steady", index=index)
        assert status == 400 and data["error"].startswith("index:")


# ---------------------------------------------------------------------------- serving
def test_static_pages_and_headers(server):
    for path in ["/", "/how.html", "/data.html", "/static/demo.js", "/static/demo.css"]:
        status, headers, body = request(server, "GET", path)
        assert status == 200, path
        assert "default-src 'self'" in headers["content-security-policy"]
        assert body
    status, headers, _ = request(server, "GET", "/static/demo.js")
    assert headers["content-type"].startswith("text/javascript")
    status, _, body = request(server, "GET", "/api/nothing")
    assert status == 404 and "error" in json.loads(body)
    assert request(server, "GET", "/static/nothing.js")[0] == 404


@pytest.mark.parametrize("path", [
    "/static/../../etc/passwd",
    "/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2f..%2fetc%2fpasswd",
    "/static/%252e%252e/%252e%252e/etc/passwd",
    "/static/..\\..\\etc\\passwd",
    "/static/./demo.js",
    "/%2e%2e/src/vo2spike/demo/server.py",
])
def test_path_traversal_is_refused(server, path):
    status, _, body = request(server, "GET", path)
    assert status in (400, 404)
    assert b"root:" not in body and b"import" not in body


def test_every_static_file_is_package_data_and_local():
    files = static_files()
    for name in ["index.html", "how.html", "data.html", "demo.js", "common.js", "pages.js",
                 "upload.js", "demo.css", "favicon.svg"]:
        assert f"/static/{name}" in files
    for path in set(files.values()):
        text = path.read_text(encoding="utf-8")
        # Scripts, styles and images only from this server (links to read elsewhere are ok).
        for marker in ["src=\"http", "src='http", "@import", "url(http", "fonts.googleapis",
                       "<link rel=\"stylesheet\" href=\"http"]:
            assert marker not in text, (path.name, marker)
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"vo2spike.demo" = ["static/*"]' in pyproject


def test_missing_model_gives_a_clear_message(tmp_path):
    s = start(DemoApp(tmp_path / "no-such-model"))
    try:
        status, data = get_json(s, "/api/workouts")
        assert status == 200 and "no-such-model" in data["model_error"]
        status, data = get_json(s, "/api/trace", workout="steady")
        assert status == 503 and "model folder not found" in data["error"]
        status, _, body = request(s, "GET", "/")
        assert status == 200 and b"model-error" in body
        status, data = get_json(s, "/api/model")
        assert status == 200 and data["model_error"]
    finally:
        s.shutdown()
        s.server_close()


def test_broken_model_gives_a_clear_message(run_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / MODEL_FILE).write_bytes(b"not weights")
    app = DemoApp(broken)
    assert "damaged" in app.model_error and str(broken) in app.model_error


def test_demo_command_arguments():
    args = build_parser().parse_args(["demo", "--port", "0", "--model", "x"])
    assert args.port == 0 and args.host == "127.0.0.1" and args.model == Path("x")
    assert build_parser().parse_args(["demo"]).port == 8000
    for bad in ["70000", "-1", "http"]:
        with pytest.raises(SystemExit):
            build_parser().parse_args(["demo", "--port", bad])


# ---------------------------------------------------------------------------- uploads
@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("up") / "cohort", n_tests=2, seed=11)


def test_upload_physionet_pair(server, run_dir, small_cohort):
    status, data = upload(server, {"kind": "physionet"}, {
        "subject_info": ("subject-info.csv", (small_cohort / SUBJECT_FILE).read_bytes()),
        "test_measure": ("test_measure.csv", (small_cohort / MEASURE_FILE).read_bytes())})
    assert status == 200, data
    _, w = prepare_windows(small_cohort)
    model, norm, _ = load_model(run_dir)
    pred = predict_windows(model, norm, w.x)
    assert data["labels"] and data["n_windows"] == len(w)
    got = np.concatenate([t["vo2_pred"] for t in data["tests"]])
    np.testing.assert_allclose(got, pred.vo2, atol=0.051)
    assert all(t["metrics"]["rmse"] > 0 for t in data["tests"])
    assert data["overall"]["n_windows"] == len(w)


def test_upload_malformed_file_shows_the_cli_message(server, small_cohort):
    lines = (small_cohort / MEASURE_FILE).read_text().splitlines()
    header = lines[0].split(",")
    row = lines[5].split(",")
    row[header.index("HR")] = "fast"
    lines[5] = ",".join(row)
    status, data = upload(server, {"kind": "physionet"}, {
        "subject_info": ("subject-info.csv", (small_cohort / SUBJECT_FILE).read_bytes()),
        "test_measure": ("my run.csv", "\n".join(lines).encode())})
    assert status == 400
    assert data["error"].startswith("my run.csv: line 6, column 'HR': 'fast' is not a number")
    assert "Traceback" not in data["error"] and "/tmp" not in data["error"]


@pytest.mark.parametrize("fields, files, expected", [
    ({"kind": "physionet"}, {"subject_info": ("s.csv", b"Age\n1\n")}, "no test_measure.csv"),
    ({"kind": "zip"}, {}, "kind:"),
    ({"kind": "k5"}, {"k5": ("k5.csv", b"t,Rf\ns,1/min\n1,2\n")}, "needs the person's"),
    ({"kind": "k5", "age": "30", "weight": "70", "height": "175", "sex": "0"},
     {"k5": ("k5.csv", b"t,Rf\ns,1/min\n1,2\n")}, "k5.csv: missing required column(s)"),
    ({"kind": "physionet"}, {"subject_info": ("s.csv", b""), "test_measure": ("m.csv", b"x\n")},
     "no subject-info.csv"),
])
def test_upload_errors(server, fields, files, expected):
    status, data = upload(server, fields, files)
    assert status == 400, data
    assert expected in data["error"]


def test_upload_size_limit_and_form(server):
    body = b"x" * (MAX_UPLOAD_BYTES + 1)
    status, _, data = request(server, "POST", "/api/upload", body,
                              {"Content-Type": "multipart/form-data; boundary=x"})
    assert status == 413 and "limit is 10 MB" in json.loads(data)["error"]
    status, _, data = request(server, "POST", "/api/upload", b"a=1",
                              {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and "multipart/form-data" in json.loads(data)["error"]


def k5_export(measures: pd.DataFrame) -> bytes:
    """A COSMED K5-style export (names line, units line) of one simulated test."""
    df = pd.DataFrame({"t": measures["time"], "Rf": measures["RR"], "VT": 1.0,
                       "VE": measures["VE"], "VO2": measures["VO2"], "VCO2": measures["VCO2"],
                       "HR": measures["HR"], "GPS Speed": measures["Speed"]})
    units = "s,1/min,L(btps),L/min,mL/min,mL/min,bpm,km/h\n"
    csv = df.to_csv(index=False)
    head, rest = csv.split("\n", 1)
    return (head + "\n" + units + rest).encode()


def test_upload_k5_export_with_typed_person(server, small_cohort):
    measures = pd.read_csv(small_cohort / MEASURE_FILE)
    first = measures[measures["ID_test"] == measures["ID_test"].iloc[0]]
    status, data = upload(server, {"kind": "k5", "age": "31", "weight": "68.5",
                                   "height": "172", "sex": "1"},
                          {"k5": ("session.csv", k5_export(first))})
    assert status == 200, data
    t = data["tests"][0]
    assert t["weight"] == 68.5 and t["metrics"] is not None and len(t["vo2_pred"]) > 3


@needs_shared
def test_upload_real_k5_export(server):
    path = YOYO / "FirstRound" / "D06" / "D06_COSMED_1.csv"
    status, data = upload(server, {"kind": "k5", "age": "18", "weight": "92", "height": "194",
                                   "sex": "0"}, {"k5": (path.name, path.read_bytes())})
    assert status == 200, data
    assert data["tests"][0]["metrics"]["r2"] is not None
    assert any("treated as missing" in w for w in data["warnings"])


# ---------------------------------------------------------------------------- compression
def test_compression_view_without_compressed_model(run_dir):
    model, _, _ = load_model(run_dir)
    v = compression.compression_view(run_dir, model)
    assert not v["compressed_model"] and "no compressed model exists yet" in v["source"]
    assert v["shape"] == [64, 64] and len(v["weights"]) == len(v["levels"]) == 4096
    assert v["removed_total"] == round(0.7 * v["weights_total"])
    assert v["prune_steps"] == [0.7]  # one-shot, computed here
    # The same mask as torch's global L1 pruning.
    masks = compression.global_magnitude_mask(compression.prunable_weights(model))
    assert v["pruned"] == "".join("0" if k else "1" for k in masks[compression.LAYER].reshape(-1))
    w = np.array(v["weights"]).reshape(64, 64)
    kept = np.where(np.array(list(v["pruned"])).reshape(64, 64) == "1", 0.0, w)
    s = np.abs(kept).max(axis=1) / 127
    q = np.array(v["levels"]).reshape(64, 64)
    assert np.abs(q).max() <= 127 and (q[kept == 0] == 0).all()
    assert (np.abs(q * s[:, None] - kept) <= s[:, None] / 2 + 1e-4).all()
    assert compression.compression_accuracy(run_dir) is None


def make_compressed(run_dir: Path, sim_dir: Path, out: Path) -> Path:
    """A copy of the run with a ``compressed/`` folder as ``vo2spike compress`` lays it out:
    pruned by torch's own global pruning, quantised to int8, with a compression.json."""
    from torch.nn.utils import prune

    from vo2spike.compress.quantize import quantize_folder

    shutil.copytree(run_dir, out)
    comp = out / compression.COMPRESSED_DIR
    comp.mkdir()
    cfg = load_config(out)
    cfg.weights = {}
    for twin, name in ((False, MODEL_FILE), (True, TWIN_FILE)):
        model, _, _ = load_model(out, twin=twin)
        params = [(m, "weight") for m in model.modules()
                  if isinstance(m, torch.nn.Conv1d | torch.nn.Linear)]
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.7)
        for m, p in params:
            prune.remove(m, p)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, comp / name)
        cfg.weights[name] = sha256_file(comp / name)
    save_config(comp, cfg)
    quantize_folder(comp, prepare_windows(sim_dir)[1].x[:200])

    def fig(r2: float) -> dict:
        return {"vo2_ml_min": {"r2": r2, "rmse": 250.0}, "vo2max_ml_min": {"r2": 0.5, "rmse": 400}}

    (comp / compression.ACCURACY_FILE).write_text(json.dumps(
        {"data": {"simulated": "simulated", "real": None}, "sparsity": 0.7,
         "models": {"spiking": {"sim": fig(0.9)}, "pruned_int8": {"sim": fig(0.88)}}}))
    return out


def test_compression_with_a_compressed_model(run_dir, sim_dir, tmp_path):
    run = make_compressed(run_dir, sim_dir, tmp_path / "run")
    model, _, _ = load_model(run)
    v = compression.compression_view(run, model)
    assert v["compressed_model"] and v["prune_amount"] == 0.7 and v["prune_steps"] == [0.7]
    kept_w = np.array(v["pruned_weights"])
    assert (kept_w[np.array(list(v["pruned"])) == "1"] == 0).all()
    # torch's pruning removed exactly the weights the demo computes without it.
    masks = compression.global_magnitude_mask(compression.prunable_weights(model))
    assert v["pruned"] == "".join("0" if k else "1" for k in masks[compression.LAYER].reshape(-1))
    # The levels drawn are the int8 engine's own, and follow the formula shown on the page.
    from vo2spike.compress.intmodel import load_int_model

    engine_levels = load_int_model(run / compression.COMPRESSED_DIR).t(compression.INT8_LAYER)
    assert v["levels"] == engine_levels.reshape(-1).tolist()
    q, _ = compression.int8_levels(kept_w.reshape(64, 64))
    assert np.abs(q - engine_levels).max() <= 1  # the page's formula (weights rounded to 5 dp)
    acc = compression.compression_accuracy(run)
    assert acc["before"] == {"vo2_r2": 0.9, "vo2_rmse": 250.0, "vo2max_r2": 0.5,
                             "vo2max_rmse": 400.0}
    assert acc["after"]["vo2_r2"] == 0.88 and acc["real_before"] is None
    assert acc["energy"] is None  # not recorded in this compression.json
    app = DemoApp(run)
    t = app.trace_json("steady", {})
    c = t["compression"]
    assert c["compressed_model"] and c["after"]["rmse"] > 0 and c["after"] != c["before"]
    assert app.model_json()["compression"]["after"]["vo2_r2"] == 0.88
    # A damaged compression.json is named, not half-used.
    (run / compression.COMPRESSED_DIR / compression.ACCURACY_FILE).write_text('{"models": {}}')
    with pytest.raises(RunDirError, match="compression.json: no spiking figures"):
        compression.compression_accuracy(run)


def test_membrane_plots_pick_neurons_that_fire():
    from vo2spike.demo.trace import pick_neurons

    rates = np.zeros(64)
    rates[[3, 9, 20, 41]] = [0.02, 0.1, 0.3, 0.6]  # sparse: 60 of 64 neurons never fire
    chosen = pick_neurons(rates)
    assert len(set(chosen)) == 3 and all(rates[i] > 0 for i in chosen)
    assert pick_neurons(np.zeros(64)) == [0, 1, 2]  # no spikes at all: still three neurons


def test_the_shipped_model_carries_its_compression_figures():
    shipped = Path(__file__).resolve().parents[1] / "models" / "default"
    acc = compression.compression_accuracy(shipped)
    assert acc["data_kind"] == "simulated" and acc["real_data_kind"].startswith("real")
    for key in ("before", "after", "real_before", "real_after"):
        assert -1 < acc[key]["vo2_r2"] <= 1 and acc[key]["vo2_rmse"] > 0
    nj = acc["energy"]["nj"]
    assert 0 < nj["int8"]["snn"]["spiking_layers"] < nj["int8"]["snn"]["total"]
    assert 0 < acc["energy"]["spike_rates"]["mean"] < 1


def test_magnitude_histogram_draws_a_threshold_only_for_a_single_cut():
    mags = np.array([0.01, 0.02, 0.03, 0.04, 0.05])
    cut = compression.magnitude_histogram(mags, np.array([1, 1, 0, 0, 0], bool), bins=4)
    assert cut["threshold"] == 0.02 and sum(cut["removed"]) == 2 and sum(cut["kept"]) == 3
    # Gradual pruning: a removed weight larger than a kept one (it shrank while fine-tuned).
    steps = compression.magnitude_histogram(mags, np.array([1, 0, 1, 0, 0], bool), bins=4)
    assert steps["threshold"] is None and sum(steps["removed"]) == 2


# ---------------------------------------------------------------------------- FIT uploads
def fit_file(tmp_path: Path, *, rr: bool = True, profile: bool = True, n: int = 1200) -> bytes:
    """A FIT activity file of a graded run, written with Garmin's SDK Encoder."""
    records = graded_run(n)
    if not rr:
        for r in records:
            del r["enhanced_respiration_rate"]
    path = write_fit(tmp_path / f"run-{uuid.uuid4().hex}.fit", records,
                     profile=PROFILE if profile else None)
    return path.read_bytes()


@pytest.mark.parametrize("with_rr, input_set", [(True, "speed,hr,rr"), (False, "speed,hr")])
def test_upload_fit_file_is_predicted_from_the_watch_input_set(server, tmp_path, with_rr,
                                                               input_set):
    status, data = upload(server, {"kind": "fit"},
                          {"fit": ("Morning Run.fit", fit_file(tmp_path, rr=with_rr))})
    assert status == 200, data
    assert data["kind"] == "fit" and not data["labels"] and data["overall"] is None
    (t,) = data["tests"]
    assert t["input_set"] == input_set
    assert len(t["vo2_pred"]) == data["n_windows"] == (1200 - 60) // 30 + 1
    assert all(v is not None and np.isfinite(v) for v in t["vo2_pred"])
    assert all(v is None for v in t["vo2_measured"]) and t["metrics"] is None
    assert t["weight"] == 72.5  # the file's user_profile
    assert 500 < t["vo2max_pred"] < 8000


def test_upload_fit_typed_person_fills_and_replaces_the_profile(server, tmp_path):
    anon = fit_file(tmp_path, profile=False)
    status, data = upload(server, {"kind": "fit", "age": "41", "weight": "61", "height": "166",
                                   "sex": "1"}, {"fit": ("anon.fit", anon)})
    assert status == 200, data
    assert data["tests"][0]["weight"] == 61 and data["tests"][0]["input_set"] == "speed,hr,rr"
    status, data = upload(server, {"kind": "fit", "weight": "90"},
                          {"fit": ("run.fit", fit_file(tmp_path))})
    assert status == 200 and data["tests"][0]["weight"] == 90  # replaces the file's 72.5


@pytest.mark.parametrize("fields, expected", [
    ({}, "anon.fit: the watch file has no user profile (no user_profile message); type the "
         "person's age, weight, height and sex in the form"),
    ({"age": "40", "sex": "0"}, "type the person's weight and height in the form"),
])
def test_upload_fit_without_profile_or_person_names_what_is_missing(server, tmp_path, fields,
                                                                    expected):
    status, data = upload(server, {"kind": "fit", **fields},
                          {"fit": ("anon.fit", fit_file(tmp_path, profile=False, n=300))})
    assert status == 400 and data["kind"] == "parameter", data
    assert expected in data["error"]
    assert "--age" not in data["error"]  # the page's fields, not the CLI's options


def test_upload_truncated_or_unusable_fit_gives_a_clear_error(server, tmp_path):
    good = fit_file(tmp_path, n=600)
    status, data = upload(server, {"kind": "fit"}, {"fit": ("run.fit", good[:-700])})
    assert status == 400 and data["kind"] == "data", data
    assert data["error"].startswith("run.fit: corrupt FIT file: decoding failed at byte ")
    assert f"it has {len(good) - 700:,}" in data["error"] and "truncated" in data["error"]
    for leak in ("Traceback", "/tmp", "vo2spike-upload", "activity.fit"):
        assert leak not in data["error"], leak
    status, data = upload(server, {"kind": "fit"}, {"fit": ("notes.fit", b"time,HR\n0,120\n")})
    assert status == 400 and data["error"] == \
        "notes.fit: not a FIT file (no FIT file header with '.FIT' at its start)"
    ride = write_fit(tmp_path / "ride.fit", graded_run(300), sport="cycling").read_bytes()
    status, data = upload(server, {"kind": "fit"}, {"fit": ("ride.fit", ride)})
    assert status == 400 and data["error"].startswith(
        "ride.fit: this watch file cannot be used: sport cycling"), data
    no_hr = write_fit(tmp_path / "nohr.fit", [{**r, "heart_rate": None} for r in graded_run(300)])
    status, data = upload(server, {"kind": "fit"}, {"fit": ("nohr.fit", no_hr.read_bytes())})
    assert status == 400 and "nohr.fit: this watch file cannot be used: no heart rate in any " \
        "record" in data["error"] and "/tmp" not in data["error"], data


@pytest.mark.parametrize("fields, files, expected", [
    ({"kind": "fit"}, {}, "no FIT activity file was sent"),
    ({"kind": "fit", "age": "300"}, {"fit": ("run.fit", b"x")}, "age: 300 is outside"),
    ({"kind": "fit", "sex": "x"}, {"fit": ("run.fit", b"x")}, "sex: 'x' is not a sex"),
])
def test_upload_fit_parameter_errors(server, fields, files, expected):
    status, data = upload(server, fields, files)
    assert status == 400 and data["error"].startswith(expected), data


def test_upload_physionet_tests_carry_their_input_set(server, small_cohort):
    status, data = upload(server, {"kind": "physionet"}, {
        "subject_info": ("subject-info.csv", (small_cohort / SUBJECT_FILE).read_bytes()),
        "test_measure": ("test_measure.csv", (small_cohort / MEASURE_FILE).read_bytes())})
    assert status == 200, data
    assert {t["input_set"] for t in data["tests"]} == {"speed,hr,rr,ve"}  # the lab's mask


def test_upload_vo2max_and_interval_are_those_of_predict(sim_dir, tmp_path):
    """The demo reports a test's VO2max as `vo2spike predict` writes it (the shipped
    model's combination and conformal interval for the test's input set)."""
    from vo2spike.inference import DEFAULT_MODEL, load_model
    from vo2spike.predict import predict_dir

    model, norm, config = load_model(DEFAULT_MODEL)
    assert config.vo2max is not None
    # without VO2 both read the inputs alone (with it, the demo also drops unlabelled rows)
    watch = tmp_path / "watch"
    watch.mkdir()
    (watch / "subject-info.csv").write_bytes((sim_dir / "subject-info.csv").read_bytes())
    pd.read_csv(sim_dir / "test_measure.csv").drop(columns=["VO2", "VCO2", "VE"]).to_csv(
        watch / "test_measure.csv", index=False)
    body, ctype = multipart({"kind": "physionet"}, {
        "subject_info": ("s.csv", (watch / "subject-info.csv").read_bytes()),
        "test_measure": ("m.csv", (watch / "test_measure.csv").read_bytes())})
    got = predict_upload(ctype, body, model, norm, config.vo2max)
    _, tests = predict_dir(watch, tmp_path / "p", model_dir=DEFAULT_MODEL)
    assert set(tests["input_set"]) == {"speed,hr,rr"}  # whose record says: head + extrapolation
    want = tests.set_index("ID_test")
    for t in got["tests"]:
        row = want.loc[t["id_test"]]
        assert t["input_set"] == row["input_set"]
        for key in ("vo2max_pred", "vo2max_low", "vo2max_high"):
            assert t[key] == pytest.approx(row[key], abs=0.051)
        assert t["vo2max_low"] < t["vo2max_pred"] < t["vo2max_high"]
