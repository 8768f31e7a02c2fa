"""The integer-only model (``IntModel``) and its files: ``<name>.safetensors`` (integer tensors)
+ ``<name>.json`` (architecture, input encoding, requantisation multipliers and shifts, LIF
constants, float scales for documentation, SHA256 of the .safetensors). Torch-free.

Tensors (O: TCN channels, H: hidden units, C: inputs, K: kernel size):

==========================  ======  =========  =============================================
name                        dtype   shape      meaning
==========================  ======  =========  =============================================
input.offset                int32   (C,)       channel mean in encoded units (0.1 raw units)
block{b}.weight             int8    (O, Cb, K) BN-folded causal conv, tap k sees t-(K-1-k)d
block{b}.bias               int32   (O,)       folded BN bias at scale s_in * s_w
block{b}.res_weight / bias  int8/32 (O, C)     1x1 residual conv (block 0 only)
lif{1,2}.weight / bias      int8/32 (H, .)     synapses; bias in membrane units
lif{1,2}.threshold          int32   (H,)       threshold in membrane units (per neuron)
layer{1,2}.weight / bias    int8/32 (H, .)     ANN twin's Linear + ReLU layers
head.weight / bias          int8/32 (2, H)     VO2 and VO2max heads, mL/min folded in
==========================  ======  =========  =============================================
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from vo2spike.compress.fixedpoint import MULT16_MAX
from vo2spike.errors import RunDirError
from vo2spike.outputs import atomic_write_bytes, sha256_file

FORMAT = "vo2spike-int8"
FORMAT_VERSION = 2  # 2: shift-and-add leak, 32-bit requantisation with the residual
#: File names of the int8 models in a compressed model folder.
SPIKING_NAME, TWIN_NAME = "int8", "int8_twin"

#: The integer input encoding at the engine boundary (what the watch's firmware feeds in).
ENCODING = {
    "dtype": "int16",
    "scale": 10,
    "rule": "q = clip(floor(10 * x + 0.5), -32768, 32767): 0.1 units of each channel's raw "
            "unit (0.1 km/h, 0.1 bpm, 0.1 breaths/min, 0.1 L/min, 0.1 year, 0.1 kg, 0.1 cm, "
            "sex 0 or 10)",
    "channels": ["Speed", "HR", "RR", "VE", "Age", "Weight", "Height", "Sex"],
    "layout": "Python: (N, channels, T); C: time-major, [T][channels] per window",
}
OUTPUT = {"units": "mL/min", "dtype": "int32", "names": ["vo2", "vo2max"]}


def fail(msg: str) -> NoReturn:
    """Raise RunDirError (from the torch-free vo2spike.errors: the integer engine must run
    without torch)."""
    raise RunDirError(msg)


def has_res_conv(arch: dict, b: int) -> bool:
    """Whether block ``b`` has a 1x1 residual convolution (its input width differs)."""
    return b == 0 and arch["n_inputs"] != arch["channels"]


def block_inputs(arch: dict, b: int) -> int:
    """Input channels of TCN block ``b``."""
    return arch["n_inputs"] if b == 0 else arch["channels"]


def tensor_spec(arch: dict) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Expected tensors of an int8 model: name -> (dtype, shape)."""
    c_in, ch, k, h = arch["n_inputs"], arch["channels"], arch["kernel_size"], arch["hidden"]
    spec: dict[str, tuple[str, tuple[int, ...]]] = {"input.offset": ("int32", (c_in,))}
    for b in range(len(arch["dilations"])):
        cb = block_inputs(arch, b)
        spec[f"block{b}.weight"] = ("int8", (ch, cb, k))
        spec[f"block{b}.bias"] = ("int32", (ch,))
        if has_res_conv(arch, b):
            spec[f"block{b}.res_weight"] = ("int8", (ch, cb))
            spec[f"block{b}.res_bias"] = ("int32", (ch,))
    prefix = "lif" if arch["spiking"] else "layer"
    for i, n_in in ((1, ch), (2, h)):
        spec[f"{prefix}{i}.weight"] = ("int8", (h, n_in))
        spec[f"{prefix}{i}.bias"] = ("int32", (h,))
        if arch["spiking"]:
            spec[f"{prefix}{i}.threshold"] = ("int32", (h,))
    spec["head.weight"] = ("int8", (2, h))
    spec["head.bias"] = ("int32", (2,))
    return spec


def requant_spec(arch: dict) -> dict[str, int]:
    """Requantisation stages (JSON ``requant``) -> number of channels."""
    ch, h = arch["channels"], arch["hidden"]
    spec = {"input": arch["n_inputs"]}
    for b in range(len(arch["dilations"])):
        spec[f"block{b}"] = ch
        spec[f"block{b}.res"] = ch
    if not arch["spiking"]:
        spec["layer1"] = spec["layer2"] = h
    spec["head"] = 2
    return spec


@dataclass
class IntModel:
    """An integer-only VO2Net (spiking or ANN twin).

    ``tensors``: integer arrays as in :func:`tensor_spec`; ``meta``: JSON-ready dict with
    ``kind`` ("spiking" / "ann"), ``arch``, ``encoding``, ``output``, ``requant`` (stage ->
    {"mult": [...], "shift": [...]}), ``lif`` (spiking: frac_bits and leak_shifts per layer),
    ``scales`` and ``calibration`` (float, for documentation only), ``source``.
    ``sha256`` is the SHA256 of the .safetensors once saved or loaded (the fingerprint that
    a C export compiles in)."""

    meta: dict
    tensors: dict[str, np.ndarray]
    sha256: str | None = None

    @property
    def arch(self) -> dict:
        return self.meta["arch"]

    @property
    def spiking(self) -> bool:
        return bool(self.meta["arch"]["spiking"])

    def t(self, name: str) -> np.ndarray:
        """Tensor ``name``."""
        return self.tensors[name]

    def mult_shift(self, stage: str) -> tuple[np.ndarray, np.ndarray]:
        """(M, n) int64 arrays of a requantisation stage."""
        r = self.meta["requant"][stage]
        return np.asarray(r["mult"], dtype=np.int64), np.asarray(r["shift"], dtype=np.int64)

    def frac_bits(self, layer: int) -> int:
        """Extra fractional bits of LIF layer ``layer``'s membrane potential."""
        return int(self.meta["lif"][f"lif{layer}"]["frac_bits"])

    def leak_shifts(self, layer: int) -> tuple[int, int]:
        """(k1, k2) of LIF layer ``layer``'s leak ``U - (U >> k1) - (U >> k2)`` (k2 = 0:
        no second term)."""
        k1, k2 = self.meta["lif"][f"lif{layer}"]["leak_shifts"]
        return int(k1), int(k2)


def tensor_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in sorted(tensors.items())})


def save_int_model(m: IntModel, folder: Path, name: str = SPIKING_NAME) -> dict[str, str]:
    """Write ``folder/<name>.safetensors`` and ``folder/<name>.json`` (each atomically; the
    JSON records the .safetensors SHA256). Returns {file name: SHA256} of both files."""
    folder = Path(folder)
    validate(m, f"{name}.json", f"{name}.safetensors")
    st_name, js_name = f"{name}.safetensors", f"{name}.json"
    data = tensor_bytes(m.tensors)
    digest = hashlib.sha256(data).hexdigest()
    meta = dict(m.meta)
    meta["tensors"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape)}
                       for k, v in sorted(m.tensors.items())}
    meta["safetensors"] = st_name
    meta["sha256"] = digest
    atomic_write_bytes(folder / st_name, data)
    atomic_write_bytes(folder / js_name, (json.dumps(meta, indent=1) + "\n").encode())
    m.sha256 = digest
    return {st_name: digest, js_name: sha256_file(folder / js_name)}


_META_KEYS = ("format", "format_version", "kind", "arch", "encoding", "output", "requant",
              "sha256")
_ARCH_KEYS = ("n_inputs", "channels", "kernel_size", "dilations", "hidden", "window_s",
              "stride_s", "spiking")


def _check_int(value: object, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _leak_ok(shifts: object) -> bool:
    return isinstance(shifts, list) and len(shifts) == 2 and _check_int(shifts[0], 1, 15) \
        and _check_int(shifts[1], 0, 15) and (shifts[1] == 0 or shifts[1] > shifts[0])


def validate(m: IntModel, where: str, where_tensors: str | None = None) -> None:
    """Check an IntModel's tensors and constants against its architecture; raises
    RunDirError naming ``where`` (``where_tensors`` for tensor problems) and the problem."""
    meta = m.meta
    missing = [k for k in _META_KEYS[:-1] if k not in meta]
    if missing:
        fail(f"{where}: missing key(s) {', '.join(missing)}")
    arch = meta["arch"]
    if not isinstance(arch, dict) or any(k not in arch for k in _ARCH_KEYS):
        fail(f"{where}: 'arch' must hold {', '.join(_ARCH_KEYS)}")
    if not all(_check_int(arch[k], 1, 4096) for k in _ARCH_KEYS if k not in
               ("dilations", "spiking")) or not isinstance(arch["dilations"], list) or \
            not all(_check_int(d, 1, 4096) for d in arch["dilations"]) or \
            not isinstance(arch["spiking"], bool):
        fail(f"{where}: 'arch' has a value of the wrong type or range: {arch}")
    if meta["kind"] != ("spiking" if arch["spiking"] else "ann"):
        fail(f"{where}: kind {meta['kind']!r} does not match arch.spiking")
    if arch["window_s"] % arch["stride_s"]:
        fail(f"{where}: window_s must be a multiple of stride_s")
    spec = tensor_spec(arch)
    where_meta, where = where, where_tensors or where
    missing = sorted(set(spec) - set(m.tensors))
    unexpected = sorted(set(m.tensors) - set(spec))
    if missing:
        fail(f"{where}: missing tensor(s) {', '.join(missing)}")
    if unexpected:
        fail(f"{where}: unexpected tensor(s) {', '.join(unexpected)}")
    for k, (dtype, shape) in spec.items():
        v = m.tensors[k]
        if str(v.dtype) != dtype:
            fail(f"{where}: tensor {k} has dtype {v.dtype}, expected {dtype}")
        if tuple(v.shape) != shape:
            fail(f"{where}: tensor {k} has shape {tuple(v.shape)}, expected {shape}")
        if dtype == "int8" and (v == -128).any():
            fail(f"{where}: tensor {k} holds -128 (int8 weights are symmetric, -127..127)")
    where = where_meta
    requant = meta["requant"]
    if not isinstance(requant, dict):
        fail(f"{where}: 'requant' must be an object")
    for stage, n in requant_spec(arch).items():
        r = requant.get(stage)
        if not isinstance(r, dict) or "mult" not in r or "shift" not in r:
            fail(f"{where}: requant.{stage} missing (needs mult and shift)")
        for key, lo, hi in (("mult", 0, (1 << 31) - 1), ("shift", 1, 62)):
            vals = r[key]
            if not isinstance(vals, list) or len(vals) != n:
                fail(f"{where}: requant.{stage}.{key} must be a list of {n} integers")
            if stage != "head":  # 32-bit requantisation (vo2spike.compress.fixedpoint)
                hi = (hi if stage.endswith(".res") else MULT16_MAX) if key == "mult" else 31
            if not all(_check_int(v, lo, hi) for v in vals):
                fail(f"{where}: requant.{stage}.{key} has a value outside {lo}..{hi}")
        if stage.endswith(".res") and r["shift"] != requant.get(stage[:-4], {}).get("shift"):
            fail(f"{where}: requant.{stage}.shift must equal requant.{stage[:-4]}.shift "
                   "(the residual is added inside the block's rounding)")
    if arch["spiking"]:
        lif = meta.get("lif")
        ok = isinstance(lif, dict) and all(
            isinstance(lif.get(f"lif{i}"), dict)
            and _check_int(lif[f"lif{i}"].get("frac_bits"), 0, 20)
            and _leak_ok(lif[f"lif{i}"].get("leak_shifts")) for i in (1, 2))
        if not ok:
            fail(f"{where}: 'lif' must hold lif1/lif2.frac_bits (0..20) and "
                   "lif1/lif2.leak_shifts ([k1, k2], 1 <= k1 < k2 <= 15 or k2 = 0)")
        for i in (1, 2):
            if (m.tensors[f"lif{i}.threshold"] <= 0).any():
                fail(f"{where_tensors or where}: lif{i}.threshold must be positive")


def load_int_model(folder: Path, name: str = SPIKING_NAME,
                   expected: dict[str, str] | None = None) -> IntModel:
    """Read and verify ``folder/<name>.json`` + ``folder/<name>.safetensors``.

    ``expected`` (e.g. config.json's ``weights``) may give the SHA256 of either file.
    Raises RunDirError naming the file and the problem: missing, invalid JSON, damaged
    (checksum), missing key or tensor, wrong shape or dtype."""
    folder = Path(folder)
    js, st = folder / f"{name}.json", folder / f"{name}.safetensors"
    if not folder.is_dir():
        fail(f"{folder}: model folder not found")
    for p in (js, st):
        if not p.is_file():
            fail(f"{p}: missing (not a compressed model folder? create it with "
                   "`vo2spike compress`)")
    expected = expected or {}
    for p in (js, st):
        if p.name in expected and sha256_file(p) != expected[p.name]:
            fail(f"{p}: damaged: its SHA256 differs from the {expected[p.name][:12]}... "
                   "recorded in config.json")
    try:
        meta = json.loads(js.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        fail(f"{js}: line {e.lineno}, column {e.colno}: invalid JSON ({e.msg})")
    except (OSError, UnicodeDecodeError) as e:
        fail(f"{js}: cannot be read ({e})")
    if not isinstance(meta, dict):
        fail(f"{js}: expected a JSON object")
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        fail(f"{js}: not a {FORMAT} version {FORMAT_VERSION} file (format "
               f"{meta.get('format')!r}, version {meta.get('format_version')!r})")
    if "sha256" not in meta:
        fail(f"{js}: missing key sha256")
    digest = sha256_file(st)
    if digest != meta["sha256"]:
        fail(f"{st}: damaged: its SHA256 {digest[:12]}... differs from the "
               f"{str(meta['sha256'])[:12]}... recorded in {js.name}")
    try:
        from safetensors.numpy import load_file

        tensors = load_file(str(st))
    except Exception as e:  # noqa: BLE001 - any reader failure means a damaged file
        fail(f"{st}: not a readable safetensors file ({e})")
    m = IntModel(meta=meta, tensors=tensors, sha256=digest)
    validate(m, str(js), str(st))
    return m
