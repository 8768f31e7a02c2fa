"""Integer-only int8 model: BatchNorm folding, quantisation, its files, the NumPy integer
engine (windows and streaming) against the float model."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file
from sklearn.metrics import r2_score

from vo2spike.compress.fixedpoint import quantize_multiplier, quantize_weights, rq
from vo2spike.compress.fold import fold_tcn, folded_tcn_forward
from vo2spike.compress.int_engine import (
    Int8Engine,
    IntStream,
    encode_inputs,
    predictions,
    run_windows,
)
from vo2spike.compress.intmodel import load_int_model, save_int_model, sha256_file
from vo2spike.compress.measure import zero_smallest
from vo2spike.compress.quantize import quantize_model
from vo2spike.config import RunDirError
from vo2spike.data.k5 import convert_yoyo
from vo2spike.data.windows import prepare_windows
from vo2spike.engines import load_engine
from vo2spike.inference import load_model, predict_windows

from .conftest import SHARED, needs_shared


def continuous_chunks(w, length: int = 240) -> np.ndarray:
    """Raw (B, C, length) stretches of consecutive 1 Hz samples, rebuilt from windows of the
    same test that follow each other with a 30 s stride."""
    chunks = []
    for tid in np.unique(w.id_test):
        idx = np.flatnonzero(w.id_test == tid)
        idx = idx[np.argsort(w.t_start[idx])]
        seq = [w.x[idx[0]]]
        for a, b in zip(idx[:-1], idx[1:], strict=True):
            if w.t_start[b] - w.t_start[a] != 30:
                break
            seq.append(w.x[b][:, 30:])
        seq = np.concatenate(seq, axis=1)
        chunks += [seq[:, s:s + length] for s in range(0, seq.shape[1] - length + 1, length)]
    return np.stack(chunks)


# ------------------------------------------------------------------------------ folding


def test_folded_tcn_equals_the_tcn_in_eval_mode(run_dir, sim_windows):
    model, norm, _ = load_model(run_dir)
    # A short test run may leave BatchNorm close to its initial statistics; give every
    # layer clearly non-trivial ones so that folding must do real work here.
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for b in model.tcn.blocks:
            n = b.bn.num_features
            b.bn.running_mean.copy_(torch.randn(n, generator=gen))
            b.bn.running_var.copy_(0.2 + 2 * torch.rand(n, generator=gen))
            b.bn.weight.mul_(1 + 0.5 * torch.randn(n, generator=gen))
            b.bn.bias.add_(0.3 * torch.randn(n, generator=gen))
    model.eval()
    z = norm.inputs(sim_windows.x[:64])
    with torch.no_grad():
        ref = model.tcn(torch.from_numpy(z)).numpy()
    folded = folded_tcn_forward(fold_tcn(model.tcn), z)[-1]
    np.testing.assert_allclose(folded, ref, rtol=1e-4, atol=1e-4)
    # The model itself is unchanged: its BatchNorm layers are still there.
    assert all(isinstance(b.bn, torch.nn.BatchNorm1d) for b in model.tcn.blocks)


# ------------------------------------------------------------------------------ arithmetic


def test_weight_quantisation_formula_and_zeros():
    w = np.array([[0.5, -0.25, 0.0, 0.1], [0.0, 0.0, 0.0, 0.0], [-2.0, 1.0, 0.0, 0.004]])
    q, s = quantize_weights(w)
    # an all-zero (pruned) channel takes the layer's largest scale
    np.testing.assert_allclose(s, [0.5 / 127, 2.0 / 127, 2.0 / 127])
    np.testing.assert_array_equal(q[0], [127, -64, 0, 25])  # round(0.1 / (0.5/127)) = 25
    np.testing.assert_array_equal(q[1], 0)
    np.testing.assert_array_equal(q[2], [-127, 64, 0, 0])
    assert q.dtype == np.int8 and ((q == 0) >= (w == 0)).all()


@pytest.mark.parametrize("m", [0.75, 0.01, 1.3, 3.1e-7, 0.5])
def test_requantisation_multiplier_and_rounding(m):
    mult, shift = quantize_multiplier(m)
    assert 1 << 30 <= mult < 1 << 31 and 1 <= shift <= 62
    assert abs(mult * 2.0**-shift - m) <= m * 2**-30
    x = np.arange(-5000, 5001, dtype=np.int64)
    got = rq(x, mult, shift)
    exact = x * mult / 2.0**shift
    np.testing.assert_array_equal(got, np.floor(exact + 0.5))  # ties round up


def test_requantisation_ties_round_up():
    # multiplier 0.5 exactly: M = 2**30, n = 31
    assert quantize_multiplier(0.5) == (1 << 30, 31)
    np.testing.assert_array_equal(rq(np.array([-3, -1, 1, 3]), 1 << 30, 31), [-1, 0, 1, 2])


def test_input_encoding():
    x = np.array([[12.34, -0.05, 0.05, 1e6, -1e6]])
    np.testing.assert_array_equal(encode_inputs(x), [[123, 0, 1, 32767, -32768]])
    with pytest.raises(ValueError, match="NaN"):
        encode_inputs(np.array([np.nan]))


# ------------------------------------------------------------------------------ accuracy


@pytest.mark.parametrize("twin", [False, True])
def test_int8_engine_is_close_to_the_float_model(int8_dir, sim_windows, twin):
    w = sim_windows.subset(np.arange(len(sim_windows)) % 2 == 0)
    model, norm, _ = load_model(int8_dir, twin=twin)
    f = predict_windows(model, norm, w.x)
    engine = Int8Engine(int8_dir, twin=twin)
    p = engine.predict(w.x)
    for y, a, b in ((w.vo2, f.vo2, p.vo2), (w.vo2max, f.vo2max, p.vo2max)):
        assert abs(r2_score(y, a) - r2_score(y, b)) < 0.01
        assert np.median(np.abs(a - b)) < 25  # mL/min
    if twin:
        assert p.spike_rates == {}
    else:
        assert set(p.spike_rates) == {"lif1", "lif2"}
        for k, r in f.spike_rates.items():
            assert abs(p.spike_rates[k] - r) < 0.01


def test_pruned_weights_stay_zero_and_accuracy_holds(run_dir, sim_windows):
    model, norm, _ = load_model(run_dir)
    zeros = zero_smallest(model, 0.7)
    m = quantize_model(model, norm, sim_windows.x[:400])
    pairs = [(m.t(f"block{b}.weight"), blk.conv.weight) for b, blk in
             enumerate(model.tcn.blocks)] + [(m.t("lif1.weight"), model.layer1.fc.weight),
                                             (m.t("lif2.weight"), model.layer2.fc.weight)]
    for q, w in pairs:  # every pruned (zero) float weight is a zero int8 weight
        assert (q[w.detach().numpy() == 0] == 0).all()
    int_zeros = sum(int((v == 0).sum()) for k, v in m.tensors.items() if k.endswith("weight"))
    assert int_zeros >= zeros >= 0.69 * 16_512
    x, y = sim_windows.x[::3], sim_windows.vo2[::3]
    f = predict_windows(model, norm, x)
    p = predictions(m, run_windows(m, encode_inputs(x)))
    assert abs(r2_score(y, f.vo2) - r2_score(y, p.vo2)) < 0.02


# ------------------------------------------------------------------------------ files


def test_round_trip_and_checksums(int8_dir, tmp_path):
    m = load_int_model(int8_dir, "int8")
    written = save_int_model(m, tmp_path, "copy")
    assert set(written) == {"copy.safetensors", "copy.json"}
    assert written["copy.safetensors"] == sha256_file(int8_dir / "int8.safetensors") == m.sha256
    m2 = load_int_model(tmp_path, "copy", expected=written)
    assert m2.meta["requant"] == m.meta["requant"] and m2.meta["lif"] == m.meta["lif"]
    for k, v in m.tensors.items():
        np.testing.assert_array_equal(m2.tensors[k], v)
        assert m2.tensors[k].dtype == v.dtype
    config = json.loads((int8_dir / "config.json").read_text())
    assert {"int8.safetensors", "int8.json", "int8_twin.safetensors", "int8_twin.json"} \
        <= set(config["weights"])
    meta = json.loads((int8_dir / "int8.json").read_text())
    assert meta["encoding"]["dtype"] == "int16" and meta["output"]["units"] == "mL/min"
    assert meta["calibration"]["rule"].startswith("percentile")


def _damage(folder, how):
    js, st = folder / "int8.json", folder / "int8.safetensors"
    meta = json.loads(js.read_text())

    def rewrite(tensors):
        save_file(tensors, str(st))
        meta["sha256"] = sha256_file(st)
        js.write_text(json.dumps(meta))

    if how == "missing":
        st.unlink()
    elif how == "checksum":
        data = bytearray(st.read_bytes())
        data[-1] ^= 1
        st.write_bytes(bytes(data))
    elif how == "json":
        js.write_text("{not json")
    elif how == "key":
        del meta["requant"]
        js.write_text(json.dumps(meta))
    elif how == "requant":
        meta["requant"]["block1"]["shift"] = meta["requant"]["block1"]["shift"][:-1]
        js.write_text(json.dumps(meta))
    elif how == "shape":
        t = load_file(str(st))
        t["lif1.weight"] = t["lif1.weight"][:, :-1].copy()
        rewrite(t)
    elif how == "dtype":
        t = load_file(str(st))
        t["block0.bias"] = t["block0.bias"].astype(np.int64)
        rewrite(t)
    elif how == "tensor":
        t = load_file(str(st))
        del t["head.bias"]
        rewrite(t)


@pytest.mark.parametrize("how, message", [
    ("missing", r"int8\.safetensors: missing"),
    ("checksum", r"int8\.safetensors: damaged"),
    ("json", r"int8\.json: line 1, column 2: invalid JSON"),
    ("key", r"int8\.json: missing key\(s\) requant"),
    ("requant", r"int8\.json: requant\.block1\.shift must be a list of 32"),
    ("shape", r"int8\.safetensors: tensor lif1\.weight has shape \(64, 31\), expected \(64, 32\)"),
    ("dtype", r"int8\.safetensors: tensor block0\.bias has dtype int64, expected int32"),
    ("tensor", r"int8\.safetensors: missing tensor\(s\) head\.bias"),
])
def test_damaged_model_files_are_refused_by_name(int8_dir, tmp_path, how, message):
    folder = tmp_path / "m"
    shutil.copytree(int8_dir, folder)
    _damage(folder, how)
    with pytest.raises(RunDirError, match=message):
        load_int_model(folder, "int8")


def test_config_checksums_are_enforced(int8_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(int8_dir, folder)
    meta = json.loads((folder / "int8.json").read_text())
    meta["scales"]["input"] = 1.0  # a valid file, but not the one config.json lists
    (folder / "int8.json").write_text(json.dumps(meta))
    with pytest.raises(RunDirError, match=r"int8\.json: damaged.*config\.json"):
        Int8Engine(folder)
    with pytest.raises(RunDirError, match="model folder not found"):
        Int8Engine(tmp_path / "nowhere")


def test_run_directory_without_int8_files_is_refused(run_dir):
    with pytest.raises(RunDirError, match=r"int8\.safetensors: not listed in config\.json"):
        Int8Engine(run_dir)


def test_integer_engine_imports_no_torch(int8_dir, sim_windows, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, sim_windows.x[:8])
    code = ("import sys, numpy as np\n"
            "from vo2spike.compress.int_engine import Int8Engine\n"
            f"p = Int8Engine({str(int8_dir)!r}).predict(np.load({str(x)!r}))\n"
            "assert len(p.vo2) == 8 and 'torch' not in sys.modules, sorted(sys.modules)\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_engines_by_name(int8_dir):
    assert isinstance(load_engine(int8_dir, "int8"), Int8Engine)
    assert type(load_engine(int8_dir, "c")).__name__ == "CEngine"
    assert type(load_engine(int8_dir, "float")).__name__ == "FloatEngine"
    with pytest.raises(ValueError, match="unknown engine 'gpu'; choose from float, int8, c"):
        load_engine(int8_dir, "gpu")


# ------------------------------------------------------------------------------ streaming


def _check_stream(m, chunks) -> int:
    """Push int16 chunks (B, C, L) through B lockstep streams; every estimate must equal the
    windowed engine on the same 60 samples. Returns the number of windows compared."""
    q = encode_inputs(chunks)
    stream = IntStream(m, streams=len(q))
    compared = 0
    for t in range(q.shape[2]):
        r = stream.push(np.ascontiguousarray(q[:, :, t]))
        if (t + 1) < 60 or (t + 1 - 60) % 30:
            assert r is None
            continue
        assert r is not None and r.end == t
        o = run_windows(m, np.ascontiguousarray(q[:, :, t - 59:t + 1]))
        np.testing.assert_array_equal(np.stack([r.vo2, r.vo2max], axis=1), o.out)
        np.testing.assert_array_equal(np.stack([r.spikes1, r.spikes2], axis=1), o.spikes)
        compared += len(q)
    return compared


@pytest.mark.parametrize("name", ["int8", "int8_twin"])
def test_streaming_equals_windowed_simulated(int8_dir, sim_windows, name):
    m = load_int_model(int8_dir, name)
    assert _check_stream(m, continuous_chunks(sim_windows)) >= 300


def test_single_stream_matches_and_validates(int8_dir, sim_windows):
    m = load_int_model(int8_dir, "int8")
    seq = encode_inputs(continuous_chunks(sim_windows, 150)[0])  # (C, 150): 4 windows
    stream = IntStream(m)
    results = [r for t in range(seq.shape[1]) if (r := stream.push(seq[:, t])) is not None]
    assert [r.end for r in results] == [59, 89, 119, 149]
    o = run_windows(m, np.stack([seq[:, r.end - 59:r.end + 1] for r in results]))
    assert [[r.vo2, r.vo2max, r.spikes1, r.spikes2] for r in results] == \
        np.concatenate([o.out, o.spikes], axis=1).tolist()
    with pytest.raises(ValueError, match="int16"):
        stream.push(seq[:, 0].astype(np.float32))


@pytest.fixture(scope="module")
def real_windows(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "yoyo"
    convert_yoyo(SHARED / "yoyo-k5", out)
    return prepare_windows(out)[1]


@needs_shared
def test_streaming_equals_windowed_real(int8_dir, real_windows):
    m = load_int_model(int8_dir, "int8")
    assert _check_stream(m, continuous_chunks(real_windows, 150)) >= 200


def test_32_bit_requantisation_is_exact_within_its_bounds():
    from vo2spike.compress.fixedpoint import INT32_MAX, MULT16_MAX, multipliers32

    reals = [np.array([3e-3, 7e-4]), np.array([0.9, 0.5])]
    bounds = [np.array([400_000, 900_000]), np.array([128, 128])]
    (m, mr), n = multipliers32(reals, bounds)
    assert 1 <= n <= 31 and m.max() <= MULT16_MAX
    assert (bounds[0] * m + bounds[1] * mr + 2 ** (n - 1) <= INT32_MAX).all()
    assert np.allclose(m / 2.0**n, reals[0], rtol=2e-3)  # still about 10 bits
    with pytest.raises(ValueError, match="no 32-bit requantisation"):
        multipliers32([np.array([1e6])], [np.array([1 << 30])])


def test_shift_leak_and_int8_range():
    from vo2spike.compress.fixedpoint import decay, leak_shifts, sat8, shift_beta

    assert leak_shifts(0.9) == (4, 5) and shift_beta((4, 5)) == 0.90625
    assert leak_shifts(0.875) == (3, 0) and leak_shifts(0.75) == (2, 0)
    u = np.array([-17, -1, 0, 1, 17, 1 << 29])
    floor = np.floor(u / 16).astype(np.int64) + np.floor(u / 32).astype(np.int64)
    np.testing.assert_array_equal(decay(u, (4, 5)), u - floor)
    np.testing.assert_array_equal(decay(u, (3, 0)), u - np.floor(u / 8).astype(np.int64))
    np.testing.assert_array_equal(sat8(np.array([-300, -128, 127, 300])), [-128, -128, 127, 127])


def test_quantised_stages_fit_32_bits(int8_dir):
    """Every 32-bit requantisation of a quantised model is exact in int32 for any int8
    input: the C engine computes it with one 32-bit multiply-accumulate."""
    m = load_int_model(int8_dir, "int8")
    for b in range(len(m.arch["dilations"])):
        w = np.abs(m.t(f"block{b}.weight").astype(np.int64)).reshape(m.arch["channels"], -1)
        y = w.sum(axis=1) * 128 + np.maximum(m.t(f"block{b}.bias"), 0)
        mult, shift = m.mult_shift(f"block{b}")
        rmult, rshift = m.mult_shift(f"block{b}.res")
        assert (shift == shift[0]).all() and (rshift == shift).all()
        if b == 0:
            wr = np.abs(m.t("block0.res_weight").astype(np.int64))
            r = wr.sum(axis=1) * 128 + np.abs(m.t("block0.res_bias"))
        else:
            r = np.full(len(y), 128)
        assert (y * mult + r * rmult + 2 ** (shift - 1) < 2**31).all()
    assert m.leak_shifts(1) == m.leak_shifts(2) == (4, 5)


def test_block_layout_round_trip():
    from vo2spike.compress.blocks import flat_columns, sparse_blocks, unflatten

    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (32, 10, 3)).astype(np.int8)
    w[:, :, 1] = 0
    flat = flat_columns(w)
    assert flat.shape == (32, 36) and (flat[:, 10:12] == 0).all()
    np.testing.assert_array_equal(unflatten(flat, w.shape), w)
    count, col, blocks = sparse_blocks(w)
    assert count.tolist() == [6] * 16  # the middle tap's 3 blocks are all zero
    assert col[:6].tolist() == [0, 1, 2, 6, 7, 8]
    np.testing.assert_array_equal(blocks[1], flat[0:2, 4:8])
