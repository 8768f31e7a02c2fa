"""C export: warning-free C99 build, no floating point, bit-exact against the NumPy integer
engine on the host and on an emulated Cortex-M4 (QEMU), refusal of a foreign C folder."""

import re
import shutil
import subprocess

import numpy as np
import pytest

from vo2spike.compress import export_c as ec
from vo2spike.compress.int_engine import (
    Int8Engine,
    IntStream,
    encode_inputs,
    run_windows,
)
from vo2spike.compress.intmodel import IntModel, load_int_model
from vo2spike.compress.prune import make_permanent, prune_global, with_shift_leak
from vo2spike.compress.quantize import quantize_model
from vo2spike.config import RunDirError
from vo2spike.data.k5 import convert_yoyo
from vo2spike.data.windows import INPUT_SETS, mixed_input_sets, prepare_windows, with_input_set
from vo2spike.inference import load_model

from .conftest import SHARED, needs_shared

HAVE_ARM = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")
needs_arm = pytest.mark.skipif(
    not HAVE_ARM, reason="arm-none-eabi-gcc / qemu-system-arm not installed (Debian packages "
    "gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm)")
needs_valgrind = pytest.mark.skipif(not shutil.which("valgrind"),
                                    reason="valgrind not installed")
ARM_WINDOWS = 24


@pytest.fixture(scope="module")
def pruned(run_dir, sim_windows):
    """The spiking model pruned to 70% as ``vo2spike compress`` prunes it (2 x 4 blocks in
    the multiply-accumulate layers, the shift leak), quantised: the block-sparse storage."""
    model, norm, _ = load_model(run_dir)
    model = make_permanent(prune_global(with_shift_leak(model), 0.7))
    return quantize_model(model, norm, sim_windows.x[:400])


def with_sparse_lif2(m: IntModel, keep: float = 0.1) -> IntModel:
    """``m`` with 1 - ``keep`` of its LIF2 weights zeroed: sparse enough for the export to
    store LIF2 as a bitmap."""
    w = m.t("lif2.weight")
    kept = np.random.default_rng(0).random(w.shape) < keep
    return IntModel(meta=m.meta, tensors={**m.tensors, "lif2.weight": np.where(kept, w, 0)
                                          .astype(w.dtype)})


@pytest.fixture(scope="module")
def builds(int8_dir, pruned, sim_windows, tmp_path_factory):
    """Exported and host-built C folders: spiking, twin and the pruned spiking model (LIF2
    stored dense), and the pruned one with a sparse LIF2 (stored as a bitmap); the embedded
    test windows (run on the emulated M4) mix every input set."""
    root = tmp_path_factory.mktemp("c")
    q = encode_inputs(mixed_input_sets(sim_windows.x[:ARM_WINDOWS]))
    out = {}
    for key, model in (("spiking", load_int_model(int8_dir, "int8")),
                       ("twin", load_int_model(int8_dir, "int8_twin")), ("pruned", pruned),
                       ("bitmap", with_sparse_lif2(pruned))):
        report = ec.export_c(model, root / key, test_windows=q)
        ec.build_host(root / key)
        out[key] = (model, root / key, report)
    return out


def test_build_is_c99_and_warning_free(builds):
    _, c_dir, _ = builds["spiking"]
    assert "-std=c99 -O2 -Wall -Wextra -Werror" in (c_dir / "Makefile").read_text()
    (c_dir / ec.HARNESS).unlink()
    r = subprocess.run(["make", "-C", str(c_dir)], capture_output=True, text=True)
    assert r.returncode == 0 and "warning" not in (r.stdout + r.stderr).lower(), r.stderr
    assert (c_dir / ec.HARNESS).is_file()


def test_engine_sources_have_no_floating_point_or_malloc(builds):
    for key in ("spiking", "twin", "pruned"):
        _, c_dir, _ = builds[key]
        for name in ("vo2spike.c", "vo2spike.h", ec.CONFIG_H, ec.MODEL_H):
            text = re.sub(r"/\*.*?\*/", "", (c_dir / name).read_text(), flags=re.S)
            assert not re.search(r"\b(float|double|malloc|calloc|free)\b", text), name


def test_storage_skips_pruned_weights(builds):
    _, _, dense = builds["spiking"]
    _, c_dir, sparse = builds["pruned"]
    s = sparse["storage_bytes"]
    assert s["nonzero"] <= 0.31 * s["weights"]
    assert s["stored"] < 0.5 * s["dense"] and s["blocks"] < s["csr"]
    assert "B1_COL" in (c_dir / ec.MODEL_H).read_text()
    # unpruned, the blocks cost their indices: 1 byte per 8 weights
    d = dense["storage_bytes"]
    assert d["dense"] < d["stored"] <= 1.13 * d["dense"]
    assert "Static buffers (bytes)" in (c_dir / ec.MODEL_H).read_text()
    assert "window state" in ec.describe_export(sparse)


@pytest.mark.parametrize("key", ["spiking", "twin", "pruned", "bitmap"])
@pytest.mark.parametrize("input_set", list(INPUT_SETS))
def test_host_engine_is_bit_exact_on_simulated_windows(builds, sim_windows, key, input_set):
    m, c_dir, report = builds[key]
    assert ("#define VO2_LIF2_DENSE 0" in (c_dir / ec.MODEL_H).read_text()) == (key == "bitmap")
    q = encode_inputs(with_input_set(sim_windows.x[::2], input_set))
    assert len(q) >= 300
    o = ec.run_harness(c_dir, q, expect=report["fingerprint"])
    ref = run_windows(m, q)
    np.testing.assert_array_equal(o[:, :2], ref.out)
    np.testing.assert_array_equal(o[:, 2:], ref.spikes)
    assert ec.harness_sizes(c_dir) == {k: report["buffers_bytes"][k] for k in ("state", "stream")}


def test_host_streaming_is_bit_exact(builds, sim_windows):
    from .test_int8 import continuous_chunks

    m, c_dir, _ = builds["pruned"]
    seq = encode_inputs(continuous_chunks(sim_windows, 300)[0])  # (C, 300): 9 windows
    got = ec.run_harness(c_dir, seq, stream=True)
    stream = IntStream(m)
    ref = [(r.end, r.vo2, r.vo2max, r.spikes1, r.spikes2)
           for t in range(seq.shape[1]) if (r := stream.push(seq[:, t])) is not None]
    assert got.tolist() == [list(r) for r in ref] and len(ref) == 9


@needs_shared
def test_host_engine_is_bit_exact_on_real_recordings(builds, tmp_path):
    convert_yoyo(SHARED / "yoyo-k5", tmp_path / "yoyo")
    _, w = prepare_windows(tmp_path / "yoyo")
    q = encode_inputs(w.x)
    assert len(q) >= 250
    for key in ("spiking", "pruned"):
        m, c_dir, _ = builds[key]
        o = ec.run_harness(c_dir, q)
        ref = run_windows(m, q)
        np.testing.assert_array_equal(o, np.concatenate([ref.out, ref.spikes], axis=1))


def test_c_engine_equals_int8_engine(int8_dir, sim_windows, tmp_path):
    x = sim_windows.x[:200]
    for twin in (False, True):
        c = ec.CEngine(int8_dir, twin=twin, cache=tmp_path / "cache")
        a, b = c.predict(x), Int8Engine(int8_dir, twin=twin).predict(x)
        np.testing.assert_array_equal(a.vo2, b.vo2)
        np.testing.assert_array_equal(a.vo2max, b.vo2max)
        assert a.spike_rates == b.spike_rates
    assert not any(p.suffix in (".c", ".h") for p in int8_dir.iterdir())  # nothing written


def test_c_folder_of_another_model_is_refused(int8_dir, builds, tmp_path):
    _, twin_dir, twin_report = builds["twin"]
    with pytest.raises(RunDirError, match="generated from the int8 model with SHA256"):
        ec.CEngine(int8_dir, c_dir=twin_dir, cache=tmp_path / "cache")
    spiking = load_int_model(int8_dir, "int8")
    with pytest.raises(RunDirError, match=f"{twin_report['fingerprint']}, not {spiking.sha256}"):
        ec.run_harness(twin_dir, encode_inputs(np.zeros((1, 8, 60))), expect=spiking.sha256)
    # The matching C folder is accepted (built in the cache, not in the folder given).
    _, c_dir, _ = builds["spiking"]
    engine = ec.CEngine(int8_dir, c_dir=c_dir, cache=tmp_path / "cache")
    assert engine.c_dir != c_dir


def test_malformed_model_folder_gives_a_clear_error(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(RunDirError, match=r"int8\.json: missing"):
        ec.CEngine(tmp_path / "m")
    with pytest.raises(RunDirError, match="not a vo2spike C folder"):
        ec.c_folder_fingerprint(tmp_path / "m")


def test_export_refuses_to_overwrite_without_force(builds, tmp_path):
    from vo2spike.outputs import OutputExistsError

    m, _, _ = builds["spiking"]
    out = tmp_path / "c"
    ec.export_c(m, out)
    with pytest.raises(OutputExistsError):
        ec.export_c(m, out)
    ec.export_c(m, out, force=True)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not an export")
    with pytest.raises(OutputExistsError):
        ec.export_c(m, tmp_path / "mine", force=True)


@needs_arm
def test_cortex_m4_under_qemu_equals_the_host_engine(builds, sim_windows):
    q = encode_inputs(mixed_input_sets(sim_windows.x[:ARM_WINDOWS]))  # every input set
    for key in ("pruned", "twin", "bitmap"):
        m, c_dir, report = builds[key]
        run = ec.run_qemu(ec.build_arm(c_dir), timeout=120)
        assert run.fingerprint == report["fingerprint"]
        np.testing.assert_array_equal(run.windows, ec.run_harness(c_dir, q))
        np.testing.assert_array_equal(run.stream, ec.expected_stream(m, q))
        assert run.sizes == {k: report["buffers_bytes"][k] for k in ("state", "stream")}
        assert ec.float_symbols(c_dir) == []
        sizes = ec.size_report(c_dir)
        assert sizes["flash_bytes"] <= 32 * 1024 and sizes["ram_bytes"] <= 8 * 1024
        frames = {line.split("\t")[0].rsplit(":", 1)[-1]: int(line.split("\t")[1])
                  for line in (c_dir / "arm" / "vo2spike.su").read_text().splitlines()}
        stack = sizes["engine_stack_bytes"]  # a chain of frames, at most all of them
        assert frames["vo2spike_window"] + frames["step"] <= stack <= sum(frames.values())
        if key == "pruned":  # the aim: half the budget
            assert sizes["flash_bytes"] <= 16 * 1024 and sizes["ram_bytes"] <= 4 * 1024


@needs_valgrind
def test_callgrind_instruction_count_is_repeatable(builds, sim_windows):
    _, c_dir, _ = builds["pruned"]
    q = encode_inputs(sim_windows.x[:3])
    first = ec.callgrind_instructions(c_dir, q)
    assert first == ec.callgrind_instructions(c_dir, q) and 1e5 < first < 1e8
    e = ec.energy_estimate(first)
    assert e["ms"] > 0 and e["uJ"] > 0


def test_profile_stages_follow_blocks_and_callers():
    seq = (["input"] * 2 + (["taps", "+pack", "conv", "+mac", "requant"] * 1 + ["conv"]) * 2
           + ["lif1", "+mac", "lif1 neurons", "+mac", "lif2 neurons"])
    counts = ec.profile_stages(seq, n_blocks=2)
    assert counts["input"] == 2 and counts["pack (taps b0)"] == 1
    assert counts["mac (conv b1)"] == 1 and counts["conv b0"] == counts["conv b1"] == 2
    assert counts["mac (lif1)"] == 2 and sum(counts.values()) == len(seq)
    # packing the compiler scheduled before a block's other taps work is still the block's;
    # after the last block it is LIF1's input
    seq = ["input", "+pack", "taps", "conv", "+mac", "requant", "+pack", "taps", "conv",
           "+mac", "requant", "+pack", "lif1", "+mac"]
    counts = ec.profile_stages(seq, n_blocks=2)
    assert counts["pack (taps b0)"] == counts["pack (taps b1)"] == counts["pack (lif1)"] == 1
    assert counts["requant b1"] == 1 and counts["mac (lif1)"] == 1


def test_stack_bound_is_the_deepest_call_chain():
    graph = """graph: { title: "vo2spike.c"
node: { title: "vo2spike.c:leaf" label: "leaf\nvo2spike.c:1:1\n16 bytes (static)" }
node: { title: "vo2spike.c:mid" label: "mid\nvo2spike.c:2:1\n40 bytes (static)" }
node: { title: "memset" label: "__builtin_memset\n<built-in>" shape : ellipse }
node: { title: "vo2spike_window" label: "vo2spike_window\nvo2spike.c:3:1\n8 bytes (static)" }
edge: { sourcename: "vo2spike_window" targetname: "vo2spike.c:mid" }
edge: { sourcename: "vo2spike.c:mid" targetname: "vo2spike.c:leaf" }
edge: { sourcename: "vo2spike_window" targetname: "memset" }
}"""
    assert ec.deepest_stack(graph, lambda name: 12) == 8 + 40 + 16
    assert ec.deepest_stack(graph, lambda name: 100) == 8 + 100
    with pytest.raises(ec.CBuildError, match="no stack frame for memset"):
        ec.deepest_stack(graph)
    with pytest.raises(ec.CBuildError, match="recursion"):
        ec.deepest_stack(graph.replace('targetname: "memset"', 'targetname: "vo2spike_window"'),
                         len)
    with pytest.raises(ec.CBuildError, match="dynamic"):
        ec.deepest_stack(graph.replace("16 bytes (static)", "16 bytes (dynamic)"), len)
    dis = ("00000a34 <memset>:\n     a34:\tlsls\tr3, r0, #30\n     a36:\tpush\t{r4, r5, lr}\n"
           "     a38:\tsub\tsp, #8\t@ 0x8\n     a3a:\tbeq.n\taca <memset+0x96>\n"
           "     a3c:\tpush\t{r6}\n\n")
    assert ec._library_frame(dis, "memset") == 12 + 8


def test_lif2_is_stored_dense_unless_that_costs_much_more():
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (64, 64)).astype(np.int8)
    half = np.where(rng.random(w.shape) < 0.55, w, 0).astype(np.int8)
    tenth = np.where(rng.random(w.shape) < 0.1, w, 0).astype(np.int8)
    assert ec.is_dense(half) and ec.storage_bytes(half)["stored"] == 64 * 64
    assert not ec.is_dense(tenth)
    assert ec.storage_bytes(tenth)["stored"] == ec.storage_bytes(tenth)["bitmap"] < 64 * 64


@needs_arm
def test_qemu_profile_adds_up_to_the_instruction_count(builds, sim_windows):
    _, c_dir, _ = builds["pruned"]
    q = encode_inputs(sim_windows.x[:2])
    profile = ec.profile_qemu(c_dir, q)
    run = ec.run_qemu(ec.build_arm(c_dir, q), icount=True)
    total = run.ticks.mean() * ec.INSTRUCTIONS_PER_TICK
    assert abs(sum(profile.values()) - total) < 0.02 * total
    for stage in ("input", "mac (conv b0)", "mac (conv b3)", "mac (residual b0)", "requant b2",
                  "mac (lif1)", "lif1 neurons", "lif2 neurons", "readout"):
        assert profile.get(stage, 0) > 0, stage


@needs_valgrind
def test_callgrind_profile_adds_up_to_the_instruction_count(builds, sim_windows):
    _, c_dir, _ = builds["pruned"]
    q = encode_inputs(sim_windows.x[:2])
    profile = ec.profile_callgrind(c_dir, q)
    assert sum(profile.values()) == pytest.approx(ec.callgrind_instructions(c_dir, q))
    assert profile["mac"] > profile["readout"] > 0


@needs_arm
def test_dense_lif2_with_hidden_units_not_a_multiple_of_8_is_bit_exact(run_dir, sim_windows,
                                                                       tmp_path):
    """The M4's dense LIF2 kernel takes two words of weights (8) a loop when the hidden units
    are a multiple of 8; 12 take the one-word loop: host and emulated M4 must still equal the
    NumPy integer engine, spikes of LIF2 included."""
    import dataclasses

    import torch

    from vo2spike.model.net import VO2Net

    trained, norm, _ = load_model(run_dir)
    torch.manual_seed(3)
    model = VO2Net(dataclasses.replace(trained.config, hidden=12)).eval()
    m = quantize_model(with_shift_leak(model), norm, sim_windows.x[:400])
    q = encode_inputs(mixed_input_sets(sim_windows.x[:ARM_WINDOWS]))
    c_dir = tmp_path / "hid12"
    report = ec.export_c(m, c_dir, test_windows=q)
    assert "#define VO2_LIF2_DENSE 1" in (c_dir / ec.MODEL_H).read_text()
    ec.build_host(c_dir)
    ref = run_windows(m, q)
    assert ref.spikes[:, 1].sum() > 0  # LIF2 fired: its weights were used
    expected = np.concatenate([ref.out, ref.spikes], axis=1)
    np.testing.assert_array_equal(ec.run_harness(c_dir, q), expected)
    run = ec.run_qemu(ec.build_arm(c_dir), timeout=120)
    assert run.fingerprint == report["fingerprint"]
    np.testing.assert_array_equal(run.windows, expected)
    np.testing.assert_array_equal(run.stream, ec.expected_stream(m, q))
