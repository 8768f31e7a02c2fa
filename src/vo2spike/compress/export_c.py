"""C export of an int8 model: a self-contained C99 folder (no malloc, no floating point,
static buffers), its host harness, a Cortex-M4 image for QEMU, and ``CEngine``.

The folder written by :func:`export_c`:

- ``vo2spike.c`` / ``vo2spike.h``: the engine (``vo2spike_window`` for a 60 s window,
  ``vo2spike_stream_push`` for one 1 Hz sample); ``vo2spike_config.h``: dimensions and the
  model fingerprint (SHA256 of the int8 .safetensors); ``vo2spike_model.h``: the weights,
  as a bitmap of non-zero positions + the packed non-zero int8 values;
- ``harness.c`` + ``Makefile``: ``make -C DIR`` builds ``vo2spike_harness`` with
  ``gcc -std=c99 -O2 -Wall -Wextra -Werror``;
- ``arm/``: start-up code, linker script (code at 0x00000000, RAM at 0x20000000), a
  semihosting test program and ``test_windows.h``: ``make -C DIR arm`` / ``qemu``;
- ``MODEL.json``: the fingerprint, the model's kind and the sizes printed at export.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from vo2spike.compress.int_engine import (
    IntOutputs,
    encode_inputs,
    flat_conv_weight,
    load_folder_model,
    predictions,
)
from vo2spike.compress.intmodel import (
    IntModel,
    block_inputs,
    fail,
    has_res_conv,
    tensor_bytes,
)
from vo2spike.predictions import WindowPredictions

#: Files copied from the package into every export (relative paths).
STATIC_FILES = ("vo2spike.c", "vo2spike.h", "harness.c", "Makefile", "arm/startup.c",
                "arm/semihost.h", "arm/main.c", "arm/mps2_an386.ld")
CONFIG_H, MODEL_H, TEST_H, MODEL_JSON = ("vo2spike_config.h", "vo2spike_model.h",
                                         "arm/test_windows.h", "MODEL.json")
HARNESS = "vo2spike_harness"
ELF = "vo2spike.elf"
OUTPUT_KIND = "c-export"
#: Windows compiled into the QEMU test image when none are given: enough to time, small
#: enough for QEMU to run them in a few seconds.
DEFAULT_ARM_WINDOWS = 32


class CBuildError(OSError):
    """A C build or run failed (compiler, harness, QEMU); the message holds its output.
    An OSError, so that the command line reports it as an error message, not a traceback."""


# ---------------------------------------------------------------------------- storage


def sparse_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D int8 matrix (rows, cols) -> (mask uint32 (rows, words), non-zero values int8):
    bit b of word k of row r is set when w[r, 32 k + b] != 0; values row after row."""
    rows, cols = w.shape
    words = (cols + 31) // 32
    nz = np.zeros((rows, words * 32), dtype=bool)
    nz[:, :cols] = w != 0
    bits = nz.reshape(rows, words, 32).astype(np.uint64) << np.arange(32, dtype=np.uint64)
    mask = bits.sum(axis=2).astype(np.uint32)
    return mask, w[w != 0].astype(np.int8)


def storage_bytes(w: np.ndarray) -> dict[str, int]:
    """Bytes of a 2-D int8 matrix stored dense, as bitmap + packed non-zeros, and as CSR
    (uint8 column index + int8 value per non-zero, uint16 row pointers); ``stored``: what
    the export uses (the bitmap, or dense when the bitmap is not smaller)."""
    rows, cols = w.shape
    nnz = int((w != 0).sum())
    sizes = {"dense": rows * cols, "bitmap": rows * ((cols + 31) // 32) * 4 + nnz,
             "csr": 2 * nnz + 2 * (rows + 1), "nonzero": nnz, "weights": rows * cols}
    sizes["stored"] = min(sizes["dense"], sizes["bitmap"])
    return sizes


def is_dense(w: np.ndarray) -> bool:
    """Whether the export stores ``w`` dense (its bitmap would not be smaller)."""
    s = storage_bytes(w)
    return s["dense"] <= s["bitmap"]


def _matrices(m: IntModel) -> dict[str, np.ndarray]:
    """Every sparse-stored weight matrix, 2-D, in the orientation the C engine reads."""
    mats = {}
    for b in range(len(m.arch["dilations"])):
        mats[f"block{b}"] = flat_conv_weight(m.t(f"block{b}.weight"))
        if has_res_conv(m.arch, b):
            mats[f"block{b}.res"] = m.t(f"block{b}.res_weight")
    if m.spiking:
        mats["lif1"] = m.t("lif1.weight")
        mats["lif2"] = m.t("lif2.weight").T  # column-major: per input neuron
    else:
        mats["layer1"] = m.t("layer1.weight")
        mats["layer2"] = m.t("layer2.weight")
    return mats


def storage_report(m: IntModel) -> dict[str, int]:
    """Weight storage of the whole model in each format (bytes): every matrix dense, every
    one as bitmap, every one as CSR, and as exported (``stored``). Heads stay dense
    (2 x 64 bytes); the LIF2 column starts (uint16) count with the sparse formats."""
    total = {"dense": 0, "bitmap": 0, "csr": 0, "stored": 0, "nonzero": 0, "weights": 0}
    for name, w in _matrices(m).items():
        s = storage_bytes(w)
        for k in total:
            total[k] += s[k]
        if name == "lif2":
            extra = 2 * (m.arch["hidden"] + 1)
            total["bitmap"] += extra
            total["stored"] += 0 if is_dense(w) else extra
    head = m.t("head.weight")
    for k in ("dense", "bitmap", "csr", "stored", "weights"):
        total[k] += head.size
    total["nonzero"] += int((head != 0).sum())
    return total


# ---------------------------------------------------------------------------- sizes


def _dims(m: IntModel) -> dict[str, int]:
    a = m.arch
    k, nb = a["kernel_size"], len(a["dilations"])
    if a["window_s"] * 127 > 32767 or a["n_inputs"] > 255 or a["channels"] > 255:
        raise ValueError("the C engine supports windows up to 258 steps and 255 channels")
    rings = [((k - 1) * d + 1) * block_inputs(a, b) for b, d in enumerate(a["dilations"])]
    return {"NIN": a["n_inputs"], "CH": a["channels"], "HID": a["hidden"], "K": k,
            "NBLOCKS": nb, "T": a["window_s"], "STRIDE": a["stride_s"],
            "NSLOT": a["window_s"] // a["stride_s"], "RING_BYTES": sum(rings),
            "TAPS_MAX": k * max(a["n_inputs"], a["channels"]),
            "ACC_MAX": max(a["channels"], a["hidden"]),
            "ACT_MAX": max(a["n_inputs"], a["channels"], a["hidden"])}


def _align(n: int, a: int = 4) -> int:
    return (n + a - 1) // a * a


def buffer_sizes(m: IntModel) -> dict[str, int]:
    """Bytes of the C engine's static buffers and state structs (as vo2spike.h lays them
    out: largest members first, so no padding but the tail)."""
    d = _dims(m)
    state = (8 * d["HID"] if m.spiking else 0) + 8 + 2 * d["HID"] + 2 + d["NBLOCKS"] \
        + d["RING_BYTES"] + 1
    state = _align(state)
    scratch = 4 * d["ACC_MAX"] + 4 * d["CH"] + d["ACT_MAX"] + d["TAPS_MAX"] \
        + (d["HID"] if m.spiking else 0)
    return {"state": state, "stream": d["NSLOT"] * state + 4, "scratch": scratch,
            "window_ram": state + scratch, "stream_ram": d["NSLOT"] * state + 4 + scratch}


# ---------------------------------------------------------------------------- headers


def _c_values(values: np.ndarray, per_line: int = 16) -> str:
    v = [str(int(x)) for x in np.ravel(values)] or ["0"]
    lines = [", ".join(v[i:i + per_line]) for i in range(0, len(v), per_line)]
    return "{\n    " + ",\n    ".join(lines) + "\n}"


def _c_hex(values: np.ndarray, per_line: int = 8) -> str:
    v = [f"0x{int(x):08x}u" for x in np.ravel(values)] or ["0u"]
    lines = [", ".join(v[i:i + per_line]) for i in range(0, len(v), per_line)]
    return "{\n    " + ",\n    ".join(lines) + "\n}"


def _array(ctype: str, name: str, values: np.ndarray, hex_: bool = False) -> str:
    n = max(int(np.size(values)), 1)  # C99 has no empty arrays
    body = _c_hex(values) if hex_ else _c_values(values)
    return f"static const {ctype} {name}[{n}] = {body};\n"


def _sparse(name: str, w: np.ndarray) -> tuple[str, str]:
    """Arrays + the vo2_sparse_t initialiser of a 2-D matrix (bitmap, or dense)."""
    rows, cols = w.shape
    if is_dense(w):
        return _array("int8_t", f"{name}_W", w), f"{{{rows}, {cols}, 0, 0, {name}_W}}"
    mask, vals = sparse_rows(w)
    text = _array("uint32_t", f"{name}_MASK", mask, hex_=True) + \
        _array("int8_t", f"{name}_W", vals)
    return text, f"{{{rows}, {cols}, {mask.shape[1]}, {name}_MASK, {name}_W}}"


def _requant_arrays(m: IntModel, stage: str, name: str) -> str:
    mult, shift = m.mult_shift(stage)
    return _array("int32_t", f"{name}_MULT", mult) + _array("uint8_t", f"{name}_SHIFT", shift)


def config_header(m: IntModel, fingerprint: str) -> str:
    """vo2spike_config.h: dimensions and the model fingerprint."""
    d = _dims(m)
    lines = [f"/* Generated by vo2spike export-c: do not edit. Model {fingerprint}. */",
             "#ifndef VO2SPIKE_CONFIG_H", "#define VO2SPIKE_CONFIG_H", "",
             f'#define VO2_FINGERPRINT "{fingerprint}"',
             f"#define VO2_SPIKING {1 if m.spiking else 0}"]
    lines += [f"#define VO2_{k} {v}" for k, v in d.items()]
    return "\n".join(lines + ["", "#endif", ""])


def model_header(m: IntModel, fingerprint: str, sizes: dict, storage: dict) -> str:
    """vo2spike_model.h: every integer constant of the model (included by vo2spike.c)."""
    a = m.arch
    d = _dims(m)
    out = [f"/* Generated by vo2spike export-c: do not edit.\n"
           f" * Model: {m.meta['kind']} int8, SHA256 {fingerprint}\n"
           f" * Weights: {storage['nonzero']} non-zero of {storage['weights']}; stored in "
           f"{storage['stored']} bytes (all dense {storage['dense']}, all bitmap + packed "
           f"{storage['bitmap']}, all CSR {storage['csr']}).\n"
           f" * Static buffers (bytes): window state {sizes['state']}, scratch "
           f"{sizes['scratch']} (vo2spike_window: {sizes['window_ram']} in all);\n"
           f" * vo2spike_stream_t {sizes['stream']} (a caller's stream adds this).\n */\n"]
    out.append(_array("int32_t", "IN_OFF", m.t("input.offset")))
    out.append(_requant_arrays(m, "input", "IN"))
    blocks, off = [], 0
    for b, dil in enumerate(a["dilations"]):
        text, conv = _sparse(f"B{b}", flat_conv_weight(m.t(f"block{b}.weight")))
        out.append(text)
        out.append(_array("int32_t", f"B{b}_BIAS", m.t(f"block{b}.bias")))
        out.append(_requant_arrays(m, f"block{b}", f"B{b}"))
        if has_res_conv(a, b):
            text, res = _sparse(f"B{b}R", m.t(f"block{b}.res_weight"))
            out.append(text)
            out.append(_array("int32_t", f"B{b}R_BIAS", m.t(f"block{b}.res_bias")))
            res_bias = f"B{b}R_BIAS"
        else:
            res, res_bias = "{0, 0, 0, 0, 0}", "0"
        out.append(_requant_arrays(m, f"block{b}.res", f"B{b}R"))
        cin, length = block_inputs(a, b), (a["kernel_size"] - 1) * dil + 1
        if length > 255 or off > 65535:
            raise ValueError("dilation too large for the C engine's ring buffers")
        blocks.append(f"    {{{conv}, B{b}_BIAS, B{b}_MULT, B{b}_SHIFT, {res}, {res_bias}, "
                      f"B{b}R_MULT, B{b}R_SHIFT, {off}, {cin}, {dil}, {length}}}")
        off += length * cin
    out.append("static const vo2_block_t BLOCKS[VO2_NBLOCKS] = {\n" + ",\n".join(blocks)
               + "\n};\n")
    if m.spiking:
        out.append(f"#define VO2_BETA_Q15 {m.beta_q15}\n#define VO2_LIF1_FRAC "
                   f"{m.frac_bits(1)}\n#define VO2_LIF2_FRAC {m.frac_bits(2)}\n")
        text, lif1 = _sparse("LIF1", m.t("lif1.weight"))
        out.append(text + f"static const vo2_sparse_t LIF1 = {lif1};\n")
        out.append(_array("int32_t", "LIF1_BIAS", m.t("lif1.bias")))
        out.append(_array("int32_t", "LIF1_TH", m.t("lif1.threshold")))
        cols = m.t("lif2.weight").T  # (inputs, outputs): one bitmap per input neuron
        dense = is_dense(cols)
        mask, vals = sparse_rows(cols)
        starts = np.concatenate([[0], np.cumsum((cols != 0).sum(axis=1))])
        if dense:
            vals, starts = cols.ravel(), np.arange(cols.shape[0] + 1) * cols.shape[1]
        if starts[-1] > 65535:
            raise ValueError("LIF2 has too many weights for uint16 column starts")
        out.append(f"#define VO2_LIF2_DENSE {int(dense)}\n#define VO2_LIF2_WORDS "
                   f"{mask.shape[1]}\n")
        if not dense:
            out.append(_array("uint32_t", "LIF2_MASK", mask, hex_=True))
        out.append(_array("int8_t", "LIF2_W", vals))
        out.append(_array("uint16_t", "LIF2_COL", starts))
        out.append(_array("int32_t", "LIF2_BIAS", m.t("lif2.bias")))
        out.append(_array("int32_t", "LIF2_TH", m.t("lif2.threshold")))
    else:
        for i in (1, 2):
            text, layer = _sparse(f"LAYER{i}", m.t(f"layer{i}.weight"))
            out.append(text + f"static const vo2_sparse_t LAYER{i} = {layer};\n")
            out.append(_array("int32_t", f"LAYER{i}_BIAS", m.t(f"layer{i}.bias")))
            out.append(_requant_arrays(m, f"layer{i}", f"LAYER{i}"))
    hw = m.t("head.weight")
    out.append(f"static const int8_t HEAD_W[2][{d['HID']}] = {{\n    "
               + ",\n    ".join(_c_values(row).replace("\n", "") for row in hw) + "\n};\n")
    out.append(_array("int32_t", "HEAD_BIAS", m.t("head.bias")))
    out.append(_requant_arrays(m, "head", "HEAD"))
    return "\n".join(out)


def test_windows_header(q: np.ndarray, n_stream: int | None = None) -> str:
    """arm/test_windows.h: int16 windows q (N, C, T) compiled in, time-major. The first
    ``n_stream`` of them are also streamed back to back (window i+1 taken to start
    stride samples after window i)."""
    n = len(q)
    n_stream = n if n_stream is None else min(n_stream, n)
    rows = [_c_values(w.T.ravel(), per_line=24) for w in q]
    return (f"/* Generated by vo2spike: {n} test windows (int16, 0.1 units, time-major). */\n"
            f"#define VO2_N_TEST {n}\n#define VO2_N_STREAM {n_stream}\n"
            f"static const int16_t TEST_X[VO2_N_TEST][VO2_T * VO2_NIN] = {{\n"
            + ",\n".join(rows) + "\n};\n")


# ---------------------------------------------------------------------------- export


def model_fingerprint(m: IntModel) -> str:
    """The SHA256 of the model's .safetensors (computed when it was never saved)."""
    if m.sha256 is None:
        m.sha256 = hashlib.sha256(tensor_bytes(m.tensors)).hexdigest()
    return m.sha256


def _default_windows(m: IntModel) -> np.ndarray:
    """One window of every channel at its training mean (when no test windows are given)."""
    off = np.clip(m.t("input.offset"), -32768, 32767).astype(np.int16)
    return np.repeat(off[None, :, None], m.arch["window_s"], axis=2)


def write_c_folder(m: IntModel, folder: Path, test_windows: np.ndarray | None = None) -> dict:
    """Write the C sources for ``m`` into an existing ``folder``; returns the export report
    (fingerprint, storage, buffer sizes)."""
    folder = Path(folder)
    fp = model_fingerprint(m)
    src = resources.files("vo2spike.compress") / "c"
    (folder / "arm").mkdir(parents=True, exist_ok=True)
    for rel in STATIC_FILES:
        (folder / rel).write_bytes((src / rel).read_bytes())
    sizes, storage = buffer_sizes(m), storage_report(m)
    (folder / CONFIG_H).write_text(config_header(m, fp))
    (folder / MODEL_H).write_text(model_header(m, fp, sizes, storage))
    q = _default_windows(m)[None] if test_windows is None else np.asarray(test_windows)
    if q.dtype != np.int16:
        q = encode_inputs(q)
    (folder / TEST_H).write_text(test_windows_header(q[:, :, :]))
    report = {"fingerprint": fp, "kind": m.meta["kind"], "arch": m.arch,
              "storage_bytes": storage, "buffers_bytes": sizes, "test_windows": int(len(q))}
    (folder / MODEL_JSON).write_text(json.dumps(report, indent=1) + "\n")
    return report


def export_c(model: IntModel | Path, out_dir: Path, force: bool = False, *,
             twin: bool = False, test_windows: np.ndarray | None = None) -> dict:
    """Write a self-contained C99 folder for an int8 model (an IntModel, or a compressed
    model folder: its ``int8`` model, ``int8_twin`` with ``twin``) at ``out_dir``, safely
    (nothing half-written; ``force`` replaces only an earlier C export). ``test_windows``
    (raw float or int16 (N, C, T)) are compiled into the QEMU image. Returns the report:
    fingerprint, weight storage per format, static buffer sizes."""
    from vo2spike.outputs import atomic_dir

    inputs: list[Path] = []
    if not isinstance(model, IntModel):
        inputs = [Path(model)]
        model = load_folder_model(Path(model), twin)
    with atomic_dir(Path(out_dir), force=force, kind=OUTPUT_KIND, inputs=inputs) as tmp:
        report = write_c_folder(model, tmp, test_windows)
    return report


def describe_export(report: dict) -> str:
    """Human-readable lines about an export: buffers and weight storage."""
    s, b = report["storage_bytes"], report["buffers_bytes"]
    return (f"model {report['kind']} {report['fingerprint'][:12]}...: {s['nonzero']} non-zero "
            f"of {s['weights']} weights stored in {s['stored']} bytes (all dense {s['dense']}, "
            f"all bitmap + packed {s['bitmap']}, all CSR {s['csr']})\n"
            f"static buffers: window state {b['state']} B + scratch {b['scratch']} B = "
            f"{b['window_ram']} B for vo2spike_window; vo2spike_stream_t {b['stream']} B")


def c_folder_fingerprint(c_dir: Path) -> str:
    """The fingerprint compiled into a C folder (from vo2spike_config.h)."""
    path = Path(c_dir) / CONFIG_H
    try:
        text = path.read_text()
    except OSError:
        fail(f"{c_dir}: not a vo2spike C folder (no readable {CONFIG_H})")
    found = re.search(r'#define VO2_FINGERPRINT "([0-9a-f]{64})"', text)
    if not found:
        fail(f"{path}: no VO2_FINGERPRINT; not a vo2spike C folder")
    return found.group(1)


# ---------------------------------------------------------------------------- builds


def _run(cmd: list[str], what: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except FileNotFoundError as e:
        raise CBuildError(f"{what}: {cmd[0]} not found ({e})") from e
    except subprocess.TimeoutExpired as e:
        raise CBuildError(f"{what}: timed out after {timeout:g} s") from e
    if r.returncode != 0:
        raise CBuildError(f"{what} failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
    return r


def build_host(c_dir: Path) -> Path:
    """``make -C c_dir``: the host harness (gcc -std=c99 -O2 -Wall -Wextra -Werror)."""
    _run(["make", "-C", str(c_dir), "--no-print-directory"], f"building {c_dir}")
    return Path(c_dir) / HARNESS


def _read_i32(path: Path, cols: int) -> np.ndarray:
    data = np.fromfile(path, dtype="<i4")
    return data.reshape(-1, cols)


def run_harness(c_dir: Path, q: np.ndarray, expect: str | None = None,
                stream: bool = False) -> np.ndarray:
    """Run the built harness on int16 windows q (N, C, T) -> int32 (N, 4): VO2, VO2max,
    spikes1, spikes2. With ``stream``, q is one recording (C, S): -> (E, 5) rows of
    (last sample index, VO2, VO2max, spikes1, spikes2). ``expect``: the model fingerprint
    the harness must have been generated from (else RunDirError)."""
    harness = Path(c_dir) / HARNESS
    q = np.asarray(q)
    if q.dtype != np.int16:
        raise ValueError("the harness takes int16 inputs")
    with tempfile.TemporaryDirectory(prefix="vo2spike-io-") as tmp:
        src, dst = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        # time-major, little-endian
        data = q.T if stream else q.transpose(0, 2, 1)
        np.ascontiguousarray(data).astype("<i2").tofile(src)
        cmd = [str(harness)] + (["--expect", expect] if expect else []) + \
            (["--stream"] if stream else []) + [str(src), str(dst)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode == 3:
            fail(f"{c_dir}: {r.stderr.strip()}")
        if r.returncode != 0:
            raise CBuildError(f"{harness} failed (exit {r.returncode}): {r.stderr.strip()}")
        return _read_i32(dst, 5 if stream else 4)


def harness_sizes(c_dir: Path) -> dict[str, int]:
    """sizeof(vo2spike_state_t) and sizeof(vo2spike_stream_t) as the host compiler lays
    them out."""
    out = _run([str(Path(c_dir) / HARNESS), "--sizes"], "harness --sizes").stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def build_arm(c_dir: Path, test_windows: np.ndarray | None = None) -> Path:
    """``make -C c_dir arm``: vo2spike.elf for a Cortex-M4 (arm-none-eabi-gcc
    -mcpu=cortex-m4 -mthumb -O2, newlib-nano); ``test_windows`` (int16 or raw (N, C, T))
    replace the compiled-in ones first."""
    c_dir = Path(c_dir)
    if test_windows is not None:
        q = np.asarray(test_windows)
        (c_dir / TEST_H).write_text(test_windows_header(q if q.dtype == np.int16
                                                        else encode_inputs(q)))
    _run(["make", "-C", str(c_dir), "--no-print-directory", "arm"], f"building {c_dir} for ARM")
    return c_dir / ELF


@dataclass
class QemuRun:
    """What the QEMU test image printed."""

    fingerprint: str
    sizes: dict[str, int]  # sizeof state / stream on the Cortex-M4
    windows: np.ndarray  # (N, 4) int32: VO2, VO2max, spikes1, spikes2 per test window
    ticks: np.ndarray  # (N,) SysTick ticks per window (1 tick = 40 instructions with icount)
    stream: np.ndarray  # (E, 5): last sample index, VO2, VO2max, spikes1, spikes2
    seconds: float  # wall-clock run time of QEMU


QEMU_CMD = ["qemu-system-arm", "-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic",
            "-semihosting-config", "enable=on,target=native"]
#: Under ``-icount shift=0`` QEMU advances its clock 1 ns per instruction; mps2-an386's
#: SysTick runs at 25 MHz, so one tick is 40 instructions.
INSTRUCTIONS_PER_TICK = 40


def run_qemu(elf: Path, timeout: float = 120, icount: bool = False) -> QemuRun:
    """Run the test image on ``qemu-system-arm -M mps2-an386 -cpu cortex-m4`` and parse its
    semihosting output. ``icount`` makes SysTick count instructions (slower)."""
    import time

    cmd = QEMU_CMD + (["-icount", "shift=0"] if icount else []) + ["-kernel", str(elf)]
    t0 = time.monotonic()
    r = _run(cmd, f"QEMU on {elf}", timeout=timeout)
    seconds = time.monotonic() - t0
    # QEMU 7.2 writes semihosting output to stderr (target=native); accept either stream
    lines = [line.strip() for line in (r.stdout + '\n' + r.stderr).splitlines()]
    if "END" not in lines:
        raise CBuildError(f"QEMU on {elf}: no END line:\n{r.stdout[-2000:]}{r.stderr}")
    fp, sizes, wins, ticks, stream = "", {}, [], [], []
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "FP":
            fp = parts[1]
        elif parts[0] == "SIZES":
            sizes = {"state": int(parts[1]), "stream": int(parts[2])}
        elif parts[0] == "W":
            wins.append([int(p) for p in parts[2:6]])
            ticks.append(int(parts[6]))
        elif parts[0] == "S":
            stream.append([int(p) for p in parts[1:6]])
    return QemuRun(fp, sizes, np.array(wins, dtype=np.int32).reshape(-1, 4),
                   np.array(ticks, dtype=np.int64),
                   np.array(stream, dtype=np.int32).reshape(-1, 5), seconds)


def expected_stream(m: IntModel, q: np.ndarray, n_stream: int | None = None) -> np.ndarray:
    """What the QEMU image's streaming part must print for test windows q (N, C, T): the
    windows streamed back to back, each adding its last ``T - stride`` samples."""
    from vo2spike.compress.int_engine import run_windows

    n = len(q) if n_stream is None else min(n_stream, len(q))
    t, stride = m.arch["window_s"], m.arch["stride_s"]
    seq = np.concatenate([q[0]] + [w[:, t - stride:] for w in q[1:n]], axis=1)
    ends = np.arange(t - 1, seq.shape[1], stride)
    wins = np.stack([seq[:, e - t + 1:e + 1] for e in ends])
    o = run_windows(m, wins)
    return np.concatenate([ends[:, None], o.out, o.spikes], axis=1).astype(np.int32)


def _arm_size(path: Path) -> dict[str, int]:
    """Section sizes of an ARM object / ELF (``arm-none-eabi-size -A``)."""
    out = _run(["arm-none-eabi-size", "-A", str(path)], "arm-none-eabi-size").stdout
    sizes: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = sizes.get(parts[0], 0) + int(parts[1])
    return sizes


def size_report(c_dir: Path) -> dict[str, int]:
    """Flash and RAM of the ARM build (after :func:`build_arm`), from arm-none-eabi-size.

    engine_*: vo2spike.o alone (code, weights and tables, static buffers: what a watch
    firmware links) and the library functions it calls (newlib's memset); elf_*: the whole
    QEMU image (with start-up, the test program, its test windows); stack: the sum of every
    engine function's frame (-fstack-usage; an upper bound of the deepest call chain).
    flash_bytes = engine + its library functions; ram_bytes = static buffers + stack."""
    c_dir = Path(c_dir)
    obj = _arm_size(c_dir / "arm" / "vo2spike.o")
    code = sum(v for k, v in obj.items() if k.startswith(".text"))
    rodata = sum(v for k, v in obj.items() if k.startswith(".rodata"))
    data = sum(v for k, v in obj.items() if k.startswith(".data"))
    bss = sum(v for k, v in obj.items() if k.startswith(".bss"))
    elf = _arm_size(c_dir / ELF)
    stack = 0
    su = c_dir / "arm" / "vo2spike.su"
    if su.is_file():
        stack = sum(int(line.split("\t")[1]) for line in su.read_text().splitlines() if line)
    nm = _run(["arm-none-eabi-nm", "-S", str(c_dir / ELF)], "arm-none-eabi-nm").stdout
    symbols = {p[3]: int(p[1], 16) for p in (line.split() for line in nm.splitlines())
               if len(p) == 4}
    test_data = symbols.get("TEST_X", 0)
    # library functions the engine calls (memset, 64-bit helpers ...), as linked
    needed = _run(["arm-none-eabi-nm", "-u", str(c_dir / "arm" / "vo2spike.o")],
                  "arm-none-eabi-nm").stdout.split()
    runtime = sum(symbols.get(n, 0) for n in needed if n != "U")
    elf_flash = sum(elf.get(k, 0) for k in (".text", ".ARM.exidx", ".data"))
    elf_ram = elf.get(".data", 0) + elf.get(".bss", 0)
    return {"engine_code_bytes": code, "engine_const_bytes": rodata,
            "engine_flash_bytes": code + rodata + data, "engine_runtime_bytes": runtime,
            "engine_ram_bytes": data + bss, "engine_stack_bytes": stack,
            "elf_flash_bytes": elf_flash, "elf_ram_bytes": elf_ram,
            "elf_test_windows_bytes": test_data,
            "elf_flash_without_test_windows": elf_flash - test_data,
            "flash_bytes": code + rodata + data + runtime, "ram_bytes": data + bss + stack}


def float_symbols(c_dir: Path) -> list[str]:
    """Floating-point helper symbols (soft-float ABI: __aeabi_f*/d*, __*sf*/__*df*) that the
    ARM engine object needs: empty when the engine uses no floating point."""
    out = _run(["arm-none-eabi-nm", "-u", str(Path(c_dir) / "arm" / "vo2spike.o")],
               "arm-none-eabi-nm").stdout
    names = [line.split()[-1] for line in out.splitlines() if line.strip()]
    return [n for n in names if re.match(r"__aeabi_[fd]|__\w*[sd]f\d?$|__\w*(sf|df)\w*", n)]


def callgrind_instructions(c_dir: Path, q: np.ndarray) -> float:
    """x86-64 instructions per window of the host build (gcc -O2), counted by valgrind
    ``--tool=callgrind --toggle-collect=vo2spike_window`` over the int16 windows q."""
    c_dir = Path(c_dir)
    with tempfile.TemporaryDirectory(prefix="vo2spike-cg-") as tmp:
        src, dst, cg = Path(tmp) / "in.bin", Path(tmp) / "out.bin", Path(tmp) / "cg.out"
        np.ascontiguousarray(np.asarray(q).transpose(0, 2, 1)).astype("<i2").tofile(src)
        _run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}",
              "--toggle-collect=vo2spike_window", str(c_dir / HARNESS), str(src), str(dst)],
             "valgrind callgrind", timeout=600)
        text = cg.read_text()
    found = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.MULTILINE)
    if not found:
        raise CBuildError("callgrind wrote no instruction total")
    return int(found.group(1)) / len(q)


def energy_estimate(instructions: float, *, mhz: float = 64.0, cpi: float = 1.4,
                    ua_per_mhz: float = 50.0, volts: float = 3.0) -> dict[str, float]:
    """Time and energy of one window on a Cortex-M4: cycles = instructions x ``cpi``
    (Cortex-M4: data processing and MAC 1 cycle, a load 2 (back-to-back loads pipeline), a
    taken branch 2-4; the engine's inner loops come to 1.3-1.5; flash wait states assumed
    hidden by the MCU's cache / accelerator), current = ``ua_per_mhz`` x MHz at ``volts``
    while running (50 uA/MHz: TI's CC2340R2 datasheet gives 53 uA/MHz running CoreMark from
    flash at 48 MHz with its DC/DC; typical Cortex-M4 figures are 30-60 uA/MHz)."""
    cycles = instructions * cpi
    seconds = cycles / (mhz * 1e6)
    watts = ua_per_mhz * 1e-6 * mhz * volts
    return {"instructions": instructions, "cycles": cycles, "ms": seconds * 1e3,
            "uJ": watts * seconds * 1e6, "mW_running": watts * 1e3,
            "duty_percent_at_30s": seconds / 30 * 100,
            "average_uW_at_30s": watts * seconds / 30 * 1e6}


# ---------------------------------------------------------------------------- engine


def _source_digest() -> str:
    h = hashlib.sha256()
    src = resources.files("vo2spike.compress") / "c"
    for rel in STATIC_FILES:
        h.update(rel.encode())
        h.update((src / rel).read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def cache_root() -> Path:
    """Where CEngine keeps built C folders (one per model fingerprint and source version)."""
    return Path(tempfile.gettempdir()) / f"vo2spike-c-{os.getuid()}"


def _built_folder(m: IntModel, sources: Path | None = None,
                  cache: Path | None = None) -> Path:
    """A built C folder for ``m`` in the cache: reused when present, else exported (or
    copied from ``sources``) into a fresh folder, built, and moved into place."""
    cache = Path(cache) if cache else cache_root()
    h = hashlib.sha256((model_fingerprint(m) + _source_digest()).encode())
    if sources is not None:  # a given C folder: its sources' content
        for p in sorted(Path(sources).rglob("*")):
            if p.is_file() and p.suffix in (".c", ".h", ".ld") or p.name == "Makefile":
                h.update(str(p.relative_to(sources)).encode())
                h.update(p.read_bytes())
    key = h
    final = cache / key.hexdigest()[:24]
    if (final / HARNESS).is_file():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    try:
        if sources is not None:
            shutil.copytree(sources, tmp, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(HARNESS, "*.o", "*.elf"))
        else:
            write_c_folder(m, tmp)
        build_host(tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


class CEngine:
    """The compiled C engine of a compressed model folder, run through its host harness.

    The C folder is exported from the folder's int8 model and built in a cache under the
    system's temporary folder (never in the model folder); ``c_dir`` runs a given C export
    instead, refused (RunDirError) when it was generated from another model. ``cache``:
    where built folders are kept (default :func:`cache_root`)."""

    name = "c"

    def __init__(self, model_dir: Path, twin: bool = False, c_dir: Path | None = None,
                 expected: dict[str, str] | None = None, cache: Path | None = None) -> None:
        self.model = load_folder_model(Path(model_dir), twin, expected)
        fp = model_fingerprint(self.model)
        if c_dir is not None:
            found = c_folder_fingerprint(Path(c_dir))
            if found != fp:
                fail(f"{c_dir}: this C engine was generated from the int8 model with SHA256 "
                       f"{found[:12]}..., but {model_dir} holds {fp[:12]}...: export it again "
                       f"with `vo2spike export-c --model {model_dir} --out {c_dir} --force`")
        self.c_dir = _built_folder(self.model, Path(c_dir) if c_dir else None, cache)
        built = _run([str(self.c_dir / HARNESS), "--fingerprint"], "harness").stdout.strip()
        if built != fp:
            fail(f"{self.c_dir}: harness built from model {built[:12]}..., not {fp[:12]}...")

    def run(self, q: np.ndarray) -> IntOutputs:
        """Integer outputs of int16 windows q (N, C, T)."""
        if len(q) == 0:
            return IntOutputs(np.zeros((0, 2), np.int32), np.zeros((0, 2), np.int32))
        o = run_harness(self.c_dir, q, expect=model_fingerprint(self.model))
        if len(o) != len(q):
            raise CBuildError(f"harness returned {len(o)} results for {len(q)} windows")
        return IntOutputs(o[:, :2].copy(), o[:, 2:].copy())

    def predict(self, x: np.ndarray) -> WindowPredictions:
        """Window VO2 and VO2max (mL/min) of raw windows x (N, C, T)."""
        return predictions(self.model, self.run(encode_inputs(x)))
