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

from vo2spike.compress.blocks import BLOCK_COLS, flat_columns, padded, sparse_blocks
from vo2spike.compress.int_engine import (
    IntOutputs,
    encode_inputs,
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


#: LIF2 is stored dense (4 weights added per instruction pair, SXTAB16) unless that takes
#: more than this many times the bytes of its bitmap + non-zeros + column starts. The
#: shipped model's LIF2 is about 52% non-zero: dense takes 1.5x the bytes and a spike's
#: column costs about a quarter of the instructions.
DENSE_LIF2_MAX_RATIO = 1.5


def storage_bytes(w: np.ndarray, blocked: bool = False) -> dict[str, int]:
    """Bytes of an int8 weight stored dense, as bitmap + packed non-zeros, as CSR (uint8
    column index + int8 value per non-zero, uint16 row pointers) and as 2 x 4 blocks
    (a uint8 count per row pair, a uint8 column index + 8 weights per non-zero block);
    ``stored``: what the export uses (``blocked``: the blocks; else dense (4 weights added
    at a time) unless that takes over DENSE_LIF2_MAX_RATIO x the bitmap, its non-zeros and
    its uint16 row starts, then the bitmap and non-zeros). A conv weight (O, I, K) counts
    in its block layout."""
    w = flat_columns(w) if w.ndim == 3 else np.asarray(w)
    rows, cols = w.shape
    nnz = int((w != 0).sum())
    count, _, blocks = sparse_blocks(w)
    sizes = {"dense": rows * cols, "bitmap": rows * ((cols + 31) // 32) * 4 + nnz,
             "csr": 2 * nnz + 2 * (rows + 1), "blocks": len(count) + 9 * len(blocks),
             "nonzero": nnz, "weights": int(np.size(w))}
    dense = sizes["dense"] <= DENSE_LIF2_MAX_RATIO * (sizes["bitmap"] + 2 * (rows + 1))
    sizes["stored"] = sizes["blocks"] if blocked else \
        sizes["dense"] if dense else sizes["bitmap"]
    return sizes


def is_dense(w: np.ndarray) -> bool:
    """Whether the export stores LIF2's ``w`` (a row per LIF1 neuron) dense: it takes at
    most DENSE_LIF2_MAX_RATIO x the bytes of its bitmap, non-zeros and row starts."""
    s = storage_bytes(w)
    return s["stored"] == s["dense"]


def _matrices(m: IntModel) -> dict[str, tuple[np.ndarray, bool]]:
    """Every stored weight matrix, in the orientation the C engine reads, and whether it is
    block-sparse (vo2spike.compress.blocks)."""
    mats = {}
    for b in range(len(m.arch["dilations"])):
        mats[f"block{b}"] = (m.t(f"block{b}.weight"), True)
        if has_res_conv(m.arch, b):
            mats[f"block{b}.res"] = (m.t(f"block{b}.res_weight"), True)
    if m.spiking:
        mats["lif1"] = (m.t("lif1.weight"), True)
        mats["lif2"] = (m.t("lif2.weight").T, False)  # column-major: per input neuron
    else:
        mats["layer1"] = (m.t("layer1.weight"), True)
        mats["layer2"] = (m.t("layer2.weight"), True)
    return mats


def storage_report(m: IntModel) -> dict[str, int]:
    """Weight storage of the whole model in each format (bytes): every matrix dense, every
    one as bitmap, as CSR, as 2 x 4 blocks, and as exported (``stored``: the blocks for the
    multiply-accumulate layers, LIF2's bitmap with its uint16 column starts). Heads stay
    dense (2 x 64 bytes). ``weights`` counts the padding of the block layout."""
    total = {"dense": 0, "bitmap": 0, "csr": 0, "blocks": 0, "stored": 0, "nonzero": 0,
             "weights": 0}
    for name, (w, blocked) in _matrices(m).items():
        s = storage_bytes(w, blocked)
        for k in total:
            total[k] += s[k]
        if name == "lif2":
            extra = 2 * (m.arch["hidden"] + 1)  # uint16 column starts
            total["bitmap"] += extra
            total["stored"] += 0 if is_dense(w) else extra
    head = m.t("head.weight")
    for k in ("dense", "bitmap", "csr", "blocks", "stored", "weights"):
        total[k] += head.size
    total["nonzero"] += int((head != 0).sum())
    return total


# ---------------------------------------------------------------------------- sizes


def _dims(m: IntModel) -> dict[str, int]:
    a = m.arch
    k, nb = a["kernel_size"], len(a["dilations"])
    if a["window_s"] * 127 > 32767 or a["n_inputs"] > 255 or a["channels"] > 252:
        raise ValueError("the C engine supports windows up to 258 steps and 252 channels")
    if a["channels"] % BLOCK_COLS or a["hidden"] % BLOCK_COLS:
        raise ValueError(f"the C engine needs channels and hidden units that are multiples "
                         f"of {BLOCK_COLS}")
    cin4 = [padded(block_inputs(a, b)) for b in range(nb)]
    rings = [((k - 1) * d + 1) * c // 4 for d, c in zip(a["dilations"], cin4, strict=True)]
    x16 = max([k * c // 4 for c in cin4] + [a["channels"] // 4]
              + ([] if m.spiking else [a["hidden"] // 4]))  # words of each packed plane
    res = any(has_res_conv(a, b) for b in range(nb))
    return {"NIN": a["n_inputs"], "CH": a["channels"], "HID": a["hidden"], "K": k,
            "NBLOCKS": nb, "T": a["window_s"], "STRIDE": a["stride_s"],
            "NSLOT": a["window_s"] // a["stride_s"], "RING_WORDS": sum(rings),
            "X16_WORDS": x16, "ACC": max(a["channels"] * (2 if res else 1), a["hidden"]),
            "H_WORDS": (a["channels"] if m.spiking else max(a["channels"], a["hidden"])) // 4}


def _align(n: int, a: int = 4) -> int:
    return (n + a - 1) // a * a


def buffer_sizes(m: IntModel) -> dict[str, int]:
    """Bytes of the C engine's static buffers and state structs (as vo2spike.h lays them
    out: largest members first, so no padding but the tail)."""
    d = _dims(m)
    state = (8 * d["HID"] if m.spiking else 0) + 8 + 4 * d["RING_WORDS"] + 2 * d["HID"] + 2 \
        + d["NBLOCKS"] + 1
    state = _align(state)
    scratch = 8 * d["X16_WORDS"] + 4 * d["H_WORDS"] + 4 * d["ACC"] \
        + (2 * d["HID"] if m.spiking else 0)
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


def _blocks(name: str, w: np.ndarray, bias: np.ndarray) -> tuple[str, str]:
    """Arrays + the vo2_blocks_t initialiser of a block-sparse weight (conv or Linear):
    per row pair its block count then its column-block indices; per row pair its two int32
    ``bias`` words, then its blocks' weights (2 words a block)."""
    count, col, blocks = sparse_blocks(w)
    splits = np.cumsum(count)[:-1]
    stream = np.concatenate([np.concatenate([[n], part]) for n, part in
                             zip(count, np.split(col, splits), strict=True)])
    block_words = np.ascontiguousarray(blocks.astype(np.uint8)).reshape(-1, 8).view("<u4")
    bias_words = np.asarray(bias, dtype=np.int64).astype("<i4").view("<u4").reshape(-1, 2)
    words = np.concatenate([np.concatenate([b, part.reshape(-1)]) for b, part in
                            zip(bias_words, np.split(block_words, splits), strict=True)])
    text = _array("uint8_t", f"{name}_COL", stream) + \
        _array("uint32_t", f"{name}_W", words, hex_=True)
    return text, f"{{{len(count)}, {name}_COL, {name}_W}}"


def _structs(ctype: str, name: str, fields: list[np.ndarray]) -> str:
    """An array of structs, {a[i], b[i]} for each i."""
    rows = ["{" + ", ".join(str(int(f[i])) for f in fields) + "}"
            for i in range(len(fields[0]))]
    return f"static const {ctype} {name}[{len(rows)}] = {{\n    " + ",\n    ".join(rows) \
        + "\n};\n"


def _mults(m: IntModel, stage: str, name: str, ctype: str = "int16_t") -> tuple[str, int]:
    """The per-row multipliers of a 32-bit requantised layer (int16; a residual's int32)
    and its one shift."""
    mult, shift = m.mult_shift(stage)
    if len(set(shift.tolist())) != 1:
        raise ValueError(f"requant.{stage}: the C engine needs one shift per layer")
    return _array(ctype, name, mult), int(shift[0])


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
           f"{storage['stored']} bytes (2 x 4 blocks, LIF2 as a bitmap or dense; all dense "
           f"{storage['dense']}, all bitmap + packed {storage['bitmap']}, all CSR "
           f"{storage['csr']}).\n"
           f" * Static buffers (bytes): window state {sizes['state']}, scratch "
           f"{sizes['scratch']} (vo2spike_window: {sizes['window_ram']} in all);\n"
           f" * vo2spike_stream_t {sizes['stream']} (a caller's stream adds this).\n */\n"]
    mult, shift = m.mult_shift("input")
    out.append(_structs("vo2_input_t", "INPUT", [m.t("input.offset"),
                                                 1 << (shift.astype(np.int64) - 1), mult,
                                                 shift]))
    blocks, off = [], 0
    for b, dil in enumerate(a["dilations"]):
        text, conv = _blocks(f"B{b}", m.t(f"block{b}.weight"), m.t(f"block{b}.bias"))
        rows, shift = _mults(m, f"block{b}", f"B{b}_MULT")
        out.append(text + rows)
        if has_res_conv(a, b):
            text, res = _blocks(f"B{b}R", m.t(f"block{b}.res_weight"),
                                m.t(f"block{b}.res_bias"))
            rows, _ = _mults(m, f"block{b}.res", f"B{b}R_MULT", "int32_t")
            out.append(text + rows)
            res_rows, res_scale = f"B{b}R_MULT", 0
        else:
            res, res_rows = "{0, 0, 0}", "0"
            rmult, _ = m.mult_shift(f"block{b}.res")
            if len(set(rmult.tolist())) != 1:
                raise ValueError(f"requant.block{b}.res: the identity residual needs one "
                                 "multiplier")
            res_scale = int(rmult[0])
        cin4, length = padded(block_inputs(a, b)), (a["kernel_size"] - 1) * dil + 1
        if length > 255 or off > 65535:
            raise ValueError("dilation too large for the C engine's ring buffers")
        words = cin4 // 4
        blocks.append(f"    {{{conv}, B{b}_MULT, {res}, {res_rows}, {res_scale}, {off}, "
                      f"{length * words}, {dil * words}, {words}, {length}, {shift}}}")
        off += length * words
    out.append("static const vo2_block_t BLOCKS[VO2_NBLOCKS] = {\n" + ",\n".join(blocks)
               + "\n};\n")
    if m.spiking:
        for i in (1, 2):
            k1, k2 = m.leak_shifts(i)
            out.append(f"#define VO2_LIF{i}_LEAK {k1}\n#define VO2_LIF{i}_LEAK2 {k2}\n"
                       f"#define VO2_LIF{i}_FRAC {m.frac_bits(i)}\n")
        # LIF1 adds acc * 2^frac + bias: the multiples of 2^frac of the bias start its
        # accumulators, the rest stays with the neuron (the same integers)
        frac, bias1 = m.frac_bits(1), m.t("lif1.bias").astype(np.int64)
        text, lif1 = _blocks("LIF1", m.t("lif1.weight"), bias1 >> frac)
        out.append(text + f"static const vo2_blocks_t LIF1 = {lif1};\n")
        out.append(_structs("vo2_lif_t", "LIF1_N", [bias1 - ((bias1 >> frac) << frac),
                                                    m.t("lif1.threshold")]))
        out.append(_structs("vo2_lif_t", "LIF2_N", [m.t("lif2.bias"),
                                                    m.t("lif2.threshold")]))
        cols = m.t("lif2.weight").T  # (inputs, outputs): a column per LIF1 neuron
        if is_dense(cols):  # word k of input i = its weights to LIF2 neurons 4k..4k+3
            words = np.ascontiguousarray(cols.astype(np.uint8)).reshape(
                cols.shape[0], -1).view("<u4")
            out.append("#define VO2_LIF2_DENSE 1\n"
                       f"static const uint32_t LIF2_W[{words.shape[0]}][{words.shape[1]}] = "
                       + "{\n    " + ",\n    ".join(_c_hex(r).replace("\n", "")
                                                   for r in words) + "\n};\n")
        else:
            mask, vals = sparse_rows(cols)
            starts = np.concatenate([[0], np.cumsum((cols != 0).sum(axis=1))])
            if starts[-1] > 65535:
                raise ValueError("LIF2 has too many weights for uint16 column starts")
            out.append(f"#define VO2_LIF2_DENSE 0\n#define VO2_LIF2_WORDS {mask.shape[1]}\n"
                       + _array("uint32_t", "LIF2_MASK", mask, hex_=True)
                       + _array("int8_t", "LIF2_W", vals)
                       + _array("uint16_t", "LIF2_COL", starts))
    else:
        for i in (1, 2):
            text, layer = _blocks(f"LAYER{i}", m.t(f"layer{i}.weight"),
                                  m.t(f"layer{i}.bias"))
            out.append(text + f"static const vo2_blocks_t LAYER{i} = {layer};\n")
            rows, shift = _mults(m, f"layer{i}", f"LAYER{i}_MULT")
            out.append(rows + f"#define VO2_LAYER{i}_SHIFT {shift}\n")
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
            f"all bitmap + packed {s['bitmap']}, all CSR {s['csr']}, all 2 x 4 blocks "
            f"{s['blocks']})\n"
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


def build_arm(c_dir: Path, test_windows: np.ndarray | None = None,
              n_stream: int | None = None, opt: str | None = None) -> Path:
    """``make -C c_dir arm``: vo2spike.elf for a Cortex-M4 (arm-none-eabi-gcc
    -mcpu=cortex-m4 -mthumb -O2, newlib-nano); ``test_windows`` (int16 or raw (N, C, T))
    replace the compiled-in ones first (the first ``n_stream`` of them also streamed;
    default all). ``opt``: another optimisation level (e.g. "-Os"; rebuilds the engine)."""
    c_dir = Path(c_dir)
    if test_windows is not None:
        q = np.asarray(test_windows)
        (c_dir / TEST_H).write_text(test_windows_header(
            q if q.dtype == np.int16 else encode_inputs(q), n_stream))
    args = [] if opt is None else ["-B", f"ARM_OPT={opt}"]  # -B: rebuild at that level
    _run(["make", "-C", str(c_dir), "--no-print-directory", "arm"] + args,
         f"building {c_dir} for ARM")
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


def _library_frame(disassembly: str, name: str) -> int:
    """Stack bytes a library function of the image takes: its pushes and ``sub sp`` before
    its first branch (newlib's memset: push {r4, r5, lr}, 12 bytes)."""
    found = re.search(rf"^[0-9a-f]+ <{re.escape(name)}>:\n((?:.+\n)+?)\n", disassembly,
                      re.M)
    if not found:
        raise CBuildError(f"no {name} in the image to bound its stack")
    frame = 0
    for line in found.group(1).splitlines():
        parts = line.split("\t")  # address:, mnemonic, operands[, comment]
        op = parts[1].strip() if len(parts) > 1 else ""
        args = parts[2] if len(parts) > 2 else ""
        if op.startswith(("push", "stmdb")):
            frame += 4 * len(args[args.index("{") + 1:args.index("}")].split(","))
        elif op.startswith("sub") and args.startswith("sp, "):
            frame += int(re.search(r"#(\d+)", args).group(1))
        elif op.startswith(("b", "cb")) and not op.startswith(("bic", "bfc", "bfi")):
            break
    return frame


def deepest_stack(call_graph: str, library_frame=None, where: str = "call graph") -> int:
    """Bytes of stack of the deepest call chain from the extern ``vo2spike_*`` functions of
    a GCC call graph (``-fcallgraph-info=su``, VCG text: a node per function with its
    frame, an edge per call). ``library_frame(name)`` gives the frame of a function the
    graph has no frame for (a library call). Refuses dynamic frames and recursion."""
    frames: dict[str, int | None] = {}
    for title, label in re.findall(r'node: \{ title: "([^"]+)" label: "([^"]*)"',
                                   call_graph):
        found = re.search(r"(\d+) bytes \((\w+)\)", label)
        if found and found.group(2) != "static":
            raise CBuildError(f"{where}: {title} has a {found.group(2)} stack frame")
        frames[title] = int(found.group(1)) if found else None
    calls: dict[str, set[str]] = {}
    for src, dst in re.findall(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"',
                               call_graph):
        calls.setdefault(src, set()).add(dst)
    for name in [n for n, f in frames.items() if f is None]:
        if library_frame is None:
            raise CBuildError(f"{where}: no stack frame for {name}")
        frames[name] = library_frame(name)

    def deepest(name: str, seen: tuple[str, ...] = ()) -> int:
        if name in seen:
            raise CBuildError(f"{where}: recursion through {name}")
        return (frames.get(name) or 0) + max(
            [deepest(c, seen + (name,)) for c in calls.get(name, ())], default=0)

    roots = [n for n in frames if n.startswith("vo2spike_")]  # extern: no "file.c:" prefix
    if not roots:
        raise CBuildError(f"{where}: no vo2spike_* function")
    return max(deepest(n) for n in roots)


def stack_bound(c_dir: Path) -> int:
    """Bytes of stack the ARM build of the engine takes at most: :func:`deepest_stack` of
    its call graph (frames after inlining; the engine has no recursion or indirect calls),
    a library function's frame read from its prologue in the image."""
    c_dir = Path(c_dir)
    ci = c_dir / "arm" / "vo2spike.ci"
    try:
        text = ci.read_text()
    except OSError as e:
        raise CBuildError(f"{ci}: no call graph ({e}); build with make arm") from e
    dis: list[str] = []

    def library_frame(name: str) -> int:
        if not dis:
            dis.append(_run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn",
                             str(c_dir / ELF)], "arm-none-eabi-objdump").stdout)
        return _library_frame(dis[0], name)

    return deepest_stack(text, library_frame, str(ci))


def size_report(c_dir: Path) -> dict[str, int]:
    """Flash and RAM of the ARM build (after :func:`build_arm`), from arm-none-eabi-size.

    engine_*: vo2spike.o alone (code, weights and tables, static buffers: what a watch
    firmware links) and the library functions it calls (newlib's memset); elf_*: the whole
    QEMU image (with start-up, the test program, its test windows); stack: the deepest call
    chain of the engine (:func:`stack_bound`). flash_bytes = engine + its library
    functions; ram_bytes = static buffers + stack."""
    c_dir = Path(c_dir)
    obj = _arm_size(c_dir / "arm" / "vo2spike.o")
    code = sum(v for k, v in obj.items() if k.startswith(".text"))
    rodata = sum(v for k, v in obj.items() if k.startswith(".rodata"))
    data = sum(v for k, v in obj.items() if k.startswith(".data"))
    bss = sum(v for k, v in obj.items() if k.startswith(".bss"))
    elf = _arm_size(c_dir / ELF)
    stack = stack_bound(c_dir)
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


# ---------------------------------------------------------------------------- profile

#: A stage marker in vo2spike.c: every line below it, to the next marker, is that stage. A
#: name starting with "+" (the shared kernels: "+mac", "+pack") is charged to the stage
#: that called it ("mac (conv b1)"); "=" (the arithmetic helpers) to the innermost caller
#: of another stage, as are the lines above the first marker.
STAGE_MARKER = re.compile(r"/\*\s*@stage\s+(=|\+?[a-z0-9 ]*[a-z0-9])")
#: Stages of one TCN block, suffixed with the block (" b0" ...) in the emulated profile.
BLOCK_STAGES = ("taps", "conv", "residual", "requant")


def stage_lines(source: str) -> list[tuple[int, str]]:
    """(first line, stage) of every ``@stage`` marker of a C source, in line order."""
    return [(i, m.group(1)) for i, line in enumerate(source.splitlines(), start=1)
            if (m := STAGE_MARKER.search(line))]


def _stage_of_line(markers: list[tuple[int, str]], line: int) -> str:
    name = "="
    for first, stage in markers:
        if first > line:
            break
        name = stage
    return name


def address_stages(binary: Path, addresses: list[int], markers: list[tuple[int, str]],
                   addr2line: str = "addr2line") -> dict[int, str | None]:
    """The stage of each machine-code address of ``binary`` (built with -g): of the
    innermost inlined frame in vo2spike.c whose line is not an "=" line; None when there
    is none (compiler-made code of line 0, code outside the engine)."""
    out = _run([addr2line, "-i", "-a", "-e", str(binary)] + [f"0x{a:x}" for a in addresses],
               addr2line).stdout if addresses else ""
    found: dict[int, str | None] = {}
    addr = None
    for line in out.splitlines():
        if line.startswith("0x"):
            addr = int(line, 16)
            found[addr] = None
            continue
        if addr is None or found[addr] is not None:
            continue
        file, _, num = line.rpartition(":")
        num = num.split()[0] if num else ""
        if Path(file).name == "vo2spike.c" and num.isdigit() and int(num) > 0:
            stage = _stage_of_line(markers, int(num))
            if stage != "=":
                found[addr] = stage
    return found


def profile_stages(stages: list[str], n_blocks: int) -> dict[str, int]:
    """Instructions per stage from the stage of each executed instruction, in execution
    order: "+" stages take their caller's name, and the TCN stages their block's. A step
    starts at "input"; a block (of ``n_blocks``) at the first "taps" or "+pack" instruction
    after the block before it requantised its conv's output."""
    counts: dict[str, int] = {}
    context, block, convolved, ended, last = "other", 0, False, False, None
    for stage in stages:
        if stage != last:
            if stage == "input" and context not in BLOCK_STAGES:  # a new step
                block, convolved, ended = 0, False, False
            elif stage == "+mac" and context == "conv":
                convolved = True
            elif stage == "requant" and convolved:  # requantising the conv: its last rows
                ended = True
            elif stage == "taps" and ended and block < n_blocks - 1:
                block, convolved, ended = block + 1, False, False
            elif stage == "+pack" and ended and block < n_blocks - 1:
                # the next block's packing, scheduled before its other taps work
                block, convolved, ended = block + 1, False, False
            if not stage.startswith("+"):
                context = stage
            last = stage
        if stage.startswith("+"):
            # LIF1 holds the only multiply-accumulates of the LIF stages: a kernel
            # instruction scheduled among its neighbours' is LIF1's
            caller = "lif1" if context.startswith(("lif1", "lif2")) else context
            if stage == "+mac" and caller == "taps":  # scheduled before the conv's loop
                caller = "conv"
            elif stage == "+pack":  # the TCN's taps, then (the TCN done) LIF1's input
                caller = "lif1" if block == n_blocks - 1 and ended else "taps"
            name = f"{stage[1:]} ({caller}{f' b{block}' if caller in BLOCK_STAGES else ''})"
        else:
            name = f"{stage} b{block}" if stage in BLOCK_STAGES else stage
        counts[name] = counts.get(name, 0) + 1
    return counts


def profile_qemu(c_dir: Path, q: np.ndarray, timeout: float = 600) -> dict[str, float]:
    """ARM instructions per window of each stage of the engine on the emulated Cortex-M4,
    exactly: QEMU runs the test image on the int16 windows q (N, C, T) one instruction per
    translation block (``-singlestep -d exec,nochain``), and every executed address is
    mapped to its ``@stage`` (:func:`address_stages`; an address without one takes the
    stage of the instruction before it). The test program and semihosting are not
    counted: the total is what vo2spike_window executes, call overhead aside."""
    c_dir = Path(c_dir)
    elf = build_arm(c_dir, np.asarray(q), n_stream=0)
    markers = stage_lines((c_dir / "vo2spike.c").read_text())
    with tempfile.TemporaryDirectory(prefix="vo2spike-trace-") as tmp:
        log = Path(tmp) / "exec.log"
        _run(QEMU_CMD + ["-singlestep", "-d", "exec,nochain", "-D", str(log), "-kernel",
                         str(elf)], "qemu-system-arm trace", timeout=timeout)
        pattern = re.compile(r"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")
        with log.open() as f:
            pcs = [int(m.group(1), 16) for line in f if (m := pattern.match(line))]
    engine = _engine_range(elf)
    pcs = [pc for pc in pcs if engine[0] <= pc < engine[1]]
    where = address_stages(elf, sorted(set(pcs)), markers, "arm-none-eabi-addr2line")
    stages, last = [], "other"
    for pc in pcs:
        last = where.get(pc) or last
        stages.append(last)
    counts = profile_stages(stages, len(load_model_arch(c_dir)["dilations"]))
    counts.pop("other", None)
    return {k: v / len(q) for k, v in counts.items()}


def load_model_arch(c_dir: Path) -> dict:
    """The architecture recorded in a C folder's MODEL.json."""
    return json.loads((Path(c_dir) / MODEL_JSON).read_text())["arch"]


def _engine_range(elf: Path) -> tuple[int, int]:
    """[start, end) of the engine's code in the image: the functions of vo2spike.o."""
    nm = _run(["arm-none-eabi-nm", "-S", "--defined-only", str(Path(elf).parent / "arm"
                                                              / "vo2spike.o")],
              "arm-none-eabi-nm").stdout
    names = {p[3] for p in (line.split() for line in nm.splitlines())
             if len(p) == 4 and p[2] in "tT"}
    spans = []
    for p in (line.split() for line in _run(["arm-none-eabi-nm", "-S", str(elf)],
                                            "arm-none-eabi-nm").stdout.splitlines()):
        if len(p) == 4 and p[3] in names:
            start = int(p[0], 16) & ~1
            spans.append((start, start + int(p[1], 16)))
    return min(a for a, _ in spans), max(b for _, b in spans)


def profile_callgrind(c_dir: Path, q: np.ndarray) -> dict[str, float]:
    """x86-64 instructions per window of each stage type of the host build (-g), from
    valgrind callgrind's per-instruction counts inside vo2spike_window, mapped to stages
    as :func:`address_stages` does. Callgrind keeps no order, so the shared kernels are not
    split by caller or block ("mac" and "pack" are totals)."""
    c_dir = Path(c_dir)
    markers = stage_lines((c_dir / "vo2spike.c").read_text())
    with tempfile.TemporaryDirectory(prefix="vo2spike-cg-") as tmp:
        src, dst, cg = Path(tmp) / "in.bin", Path(tmp) / "out.bin", Path(tmp) / "cg.out"
        np.ascontiguousarray(np.asarray(q).transpose(0, 2, 1)).astype("<i2").tofile(src)
        _run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}",
              "--toggle-collect=vo2spike_window", "--dump-instr=yes", "--dump-line=no",
              "--compress-strings=no", "--compress-pos=no", str(c_dir / HARNESS), str(src),
              str(dst)], "valgrind callgrind", timeout=600)
        lines = cg.read_text().splitlines()
    cost: dict[int, int] = {}
    skip = False
    for line in lines:
        if line.startswith("calls="):
            skip = True  # the next cost line is the call's inclusive cost
        elif line.startswith("0x"):
            if skip:
                skip = False
                continue
            addr, n = line.split()[:2]
            cost[int(addr, 16)] = cost.get(int(addr, 16), 0) + int(n)
    where = address_stages(c_dir / HARNESS, sorted(cost), markers)
    counts: dict[str, float] = {}
    for addr, n in cost.items():
        stage = (where.get(addr) or "other").lstrip("+")
        counts[stage] = counts.get(stage, 0) + n
    return {k: v / len(q) for k, v in counts.items()}


#: What each stage of a profile is (the table's second column).
STAGE_MEANING = {
    "input": "standardise the sample into block 0's ring",
    "taps": "ring bookkeeping of the causal taps, the block's calls",
    "pack (taps": "int8 taps -> int16 pairs",
    "conv": "calls of the conv's kernels",
    "mac (conv": "conv blocks (SMLAD kernel)",
    "residual": "block 0's 1x1 residual conv (its call)",
    "mac (residual": "block 0's 1x1 residual blocks (SMLAD kernel)",
    "requant": "ReLU, requantisation with the residual, saturation",
    "lif1": "LIF1 and LIF2 calls, once a step",
    "pack (lif1)": "TCN output -> int16 pairs",
    "mac (lif1)": "LIF1 synapse blocks (SMLAD kernel)",
    "lif1 neurons": "LIF1 leak, integrate, fire",
    "lif2 synapses": "a LIF1 spike adds its LIF2 column (SXTAB16)",
    "lif2 neurons": "LIF2 leak, integrate, fire, count",
    "readout": "heads, once per window",
    "reset": "state reset, once per window",
}


def _stage_order(name: str) -> tuple:
    m = re.search(r"b(\d+)\)?$", name)
    block = int(m.group(1)) if m else -1
    base = re.sub(r" b\d+\)?$", "", name)
    order = list(STAGE_MEANING)
    rank = order.index(base) if base in order else len(order)
    return (0 if base == "input" else 1 if block >= 0 else 2, block, rank, name)


def profile_table(profile: dict[str, float], title: str = "instructions / window") -> str:
    """Markdown: a profile's stages in the order the engine runs them, with their share."""
    total = sum(profile.values())
    lines = [f"| stage | what | {title} | share |", "|---|---|---|---|"]
    for name in sorted(profile, key=_stage_order):
        base = re.sub(r" b\d+\)?$", "", name)
        lines.append(f"| {name} | {STAGE_MEANING.get(base, '')} | {profile[name]:,.0f} | "
                     f"{profile[name] / total:.1%} |")
    lines.append(f"| **total** | | **{total:,.0f}** | 100% |")
    return "\n".join(lines)


def group_profile(profile: dict[str, float]) -> dict[str, float]:
    """A profile in the network's parts, in engine order: the input, each TCN block's taps,
    conv multiply-accumulates, residual and requantisation, LIF1's synapses and neurons,
    LIF2's synapses and neurons, the heads (with the once-a-window state reset)."""
    parts: dict[str, float] = {}
    for name in sorted(profile, key=_stage_order):
        m = re.search(r"b(\d+)\)?$", name)
        base = re.sub(r" b\d+\)?$", "", name)
        if m:
            kind = {"taps": "taps", "pack (taps": "taps", "conv": "conv MACs",
                    "mac (conv": "conv MACs", "residual": "residual",
                    "mac (residual": "residual", "requant": "requantisation"}.get(base, base)
            key = f"TCN block {m.group(1)}: {kind}"
        else:
            key = {"input": "input standardisation", "lif1": "LIF1 synapses (MACs)",
                   "mac (lif1)": "LIF1 synapses (MACs)", "pack (lif1)": "LIF1 synapses (MACs)",
                   "lif1 neurons": "LIF1 neurons", "lif2 synapses": "LIF2 synapses (spikes)",
                   "lif2 neurons": "LIF2 neurons", "readout": "heads and state reset",
                   "reset": "heads and state reset"}.get(base, base)
        parts[key] = parts.get(key, 0.0) + profile[name]
    return parts


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
