"""The run directory's configuration: typed, versioned, loaded and saved in one place.

A run directory (written by ``vo2spike train`` / ``run``) holds ``config.json`` (this module's
:class:`RunConfig` as JSON), checksummed weight files (``model.safetensors`` and friends) and
``metrics.json``. Everything needed to rebuild the models, reproduce the run and check that
nothing was damaged is in the config.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vo2spike import __version__
from vo2spike.data.windows import Windows
from vo2spike.errors import RunDirError  # also imported from here by callers
from vo2spike.model.net import ModelConfig
from vo2spike.outputs import sha256_file  # noqa: F401 - also imported from here by callers

#: Version of the config.json layout; bumped when a field is added, removed or renamed.
FORMAT_VERSION = 3
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
MODEL_FILE, TWIN_FILE = "model.safetensors", "twin.safetensors"
#: Sub-folder of a run directory holding its compressed model (``vo2spike run`` writes it).
COMPRESSED_DIR = "compressed"
#: Weights trained on simulation alone, kept when a run is fine-tuned on real recordings.
SIM_ONLY_FILES = {MODEL_FILE: "sim_only.safetensors", TWIN_FILE: "sim_only_twin.safetensors"}


#: Channel dropout's default: half the windows keep every signal (the lab, whose accuracy
#: must not suffer), a quarter each are seen as from a watch with and without breathing rate.
INPUT_SET_WEIGHTS = {"speed,hr,rr,ve": 0.5, "speed,hr,rr": 0.25, "speed,hr": 0.25}
FINE_TUNE_INPUT_SET_WEIGHTS = {"speed,hr,rr,ve": 1.0, "speed,hr,rr": 0.0, "speed,hr": 0.0}


@dataclass
class TrainConfig:
    """Pre-training on simulated (or real) windows: Adam on both heads, early stopping."""

    epochs: int = 40
    batch_size: int = 256
    lr: float = 2e-3
    patience: int = 6  # epochs without a better validation loss before stopping
    vo2max_loss_weight: float = 1.0  # loss = MSE(VO2) + w * MSE(VO2max), standardised units
    grad_clip: float = 1.0  # max gradient norm per step
    # loss += penalty x mean spike rate of the LIF layers (the fraction of neuron-steps that
    # fire in the batch, 0..1); spiking models only; 0: no penalty. 2 brings the mean rate
    # from about 24% to about 5% with no loss of VO2 R² (README, "Sparse spikes")
    spike_rate_penalty: float = 2.0
    # channel dropout: the probability of each input set (vo2spike.data.windows.INPUT_SETS)
    # per training window; the signals outside the drawn set are made absent, so one network
    # learns every set. Validation (early stopping) uses the full inputs.
    input_set_weights: dict[str, float] = field(default_factory=lambda: dict(INPUT_SET_WEIGHTS))


@dataclass
class FineTuneConfig:
    """Fine-tuning on real recordings: each batch holds real windows and as many windows
    drawn from the simulated training split (so the simulation is not forgotten);
    BatchNorm statistics stay frozen; at the end the weights are interpolated between the
    starting and the fine-tuned ones (a weight-space ensemble, WiSE-FT: Wortsman et al.,
    CVPR 2022). Chosen by leave-one-person-out on the Yo-Yo data."""

    epochs: int = 20
    batch_size: int = 32  # real windows per batch
    lr: float = 3e-4
    sim_per_real: float = 1.0  # simulated windows added per real window in a batch
    vo2max_loss_weight: float = 1.0
    grad_clip: float | None = 1.0  # max gradient norm per step (as in pre-training); None: off
    spike_rate_penalty: float = 2.0  # as TrainConfig.spike_rate_penalty
    # as TrainConfig.input_set_weights. Full inputs only: by leave-one-person-out on the
    # Yo-Yo data it gave real VO2 R² 0.898 / 0.868 / 0.859 (speed,hr,rr,ve / speed,hr /
    # speed,hr,rr) against 0.893 / 0.867 / 0.853 with pre-training's weights (bench/
    # input_sets.py --fine-tune-only): the pre-trained network has learned the watch sets
    input_set_weights: dict[str, float] = field(
        default_factory=lambda: dict(FINE_TUNE_INPUT_SET_WEIGHTS))
    # final weights = start + tuned_fraction x (fine-tuned - start); 1.0: plain fine-tuning.
    # 0.5 is WiSE-FT's default, not tuned here.
    tuned_fraction: float = 0.5


@dataclass
class FineTuneRecord:
    """What a run was fine-tuned on, and how."""

    config: FineTuneConfig
    data: dict  # the real data's source (kind, path, SHA256), as load_dataset reports it
    n_windows: int
    people: list[str]


@dataclass
class CompressionRecord:
    """How a compressed model folder was made from a run (``vo2spike compress``)."""

    source: str  # the run directory that was compressed
    source_weights: dict[str, str]  # its weight files' SHA256 at the time
    sparsity: float  # fraction of the Conv1d and Linear weights pruned (global, L1)
    finetune_epochs: int  # most epochs of masked fine-tuning on simulated windows
    calibration_windows: int  # training windows the int8 activation scales came from
    # sparsities pruned and fine-tuned before `sparsity` (gradual pruning); []: one-shot
    gradual_steps: list[float] = field(default_factory=list)
    # machine and CPU kernels it was compressed with (vo2spike.threads.cpu_kernels); the
    # masked fine-tuning rounds as they do. None: not recorded
    cpu_kernels: str | None = None


@dataclass
class Normalizer:
    """Per-channel input statistics and target statistics, fitted on the training split."""

    x_mean: list[float]  # per channel, raw units (CHANNELS order)
    x_std: list[float]
    vo2_mean: float  # mL/min
    vo2_std: float
    vo2max_mean: float  # mL/min
    vo2max_std: float

    @classmethod
    def fit(cls, w: Windows) -> Normalizer:
        """Fit on training windows (input statistics over windows and time steps)."""
        std = w.x.std(axis=(0, 2))
        return cls(
            x_mean=w.x.mean(axis=(0, 2)).tolist(),
            x_std=np.where(std > 1e-6, std, 1.0).tolist(),
            vo2_mean=float(w.vo2.mean()), vo2_std=float(w.vo2.std()),
            vo2max_mean=float(w.vo2max.mean()), vo2max_std=float(w.vo2max.std()),
        )

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """Standardise raw inputs (N, C, T) -> float32 (N, C, T)."""
        m = np.asarray(self.x_mean, dtype=np.float32)[None, :, None]
        s = np.asarray(self.x_std, dtype=np.float32)[None, :, None]
        return ((x - m) / s).astype(np.float32)

    def targets(self, w: Windows) -> tuple[np.ndarray, np.ndarray]:
        """Standardised float32 (VO2, VO2max) targets of windows."""
        return (((w.vo2 - self.vo2_mean) / self.vo2_std).astype(np.float32),
                ((w.vo2max - self.vo2max_mean) / self.vo2max_std).astype(np.float32))

    def to_ml_min(self, vo2: np.ndarray, vo2max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standardised outputs back to mL/min."""
        return vo2 * self.vo2_std + self.vo2_mean, vo2max * self.vo2max_std + self.vo2max_mean


@dataclass
class RunConfig:
    """Everything a run directory needs to be rebuilt, reproduced and checked."""

    model: ModelConfig  # the spiking network
    twin_model: ModelConfig  # its ANN twin: the same network with Linear + ReLU for LIF
    train: TrainConfig
    normalization: Normalizer
    seed: int  # the one seed: split, initialisation, batch order, fine-tuning
    split: dict[str, list[str]]  # person IDs of the train / val / test splits
    data: dict  # training data's source: kind (simulated / real ...), path, SHA256 per file
    data_report: dict[str, int]  # what validation and cleaning counted in the training data
    channels: list[str]  # model inputs per time step, in order
    input_sets: list[str]  # the input sets it serves (vo2spike.data.windows.INPUT_SETS)
    window_s: int  # window length (s at 1 Hz)
    stride_s: int  # window stride (s)
    fine_tune: FineTuneRecord | None = None  # set when fine-tuned on real recordings
    compression: CompressionRecord | None = None  # set in a compressed model folder
    weights: dict[str, str] = field(default_factory=dict)  # finished weight file -> SHA256
    # torch / BLAS threads it was trained with (vo2spike.threads; results depend on it);
    # None: not recorded (runs from before it was fixed)
    threads: int | None = None
    # machine and instruction set of torch's CPU kernels it was trained with, e.g. "x86_64
    # AVX2" (vo2spike.threads.cpu_kernels; weights are byte-identical only where it agrees);
    # None: not recorded
    cpu_kernels: str | None = None
    # VO2max per input set as predict reports it: {"level": coverage aimed at, "calibration":
    # what the residuals came from, "input_sets": {name: {"combination": head /
    # extrapolation / mean (vo2spike.vo2max), "half_width": relative interval half-width}}}
    vo2max: dict | None = None
    format_version: int = FORMAT_VERSION
    vo2spike_version: str = __version__


def _field_types(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: object) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


#: Fields added after a run format was in use, with the value that files without them meant.
ADDED_FIELDS: dict[tuple[type, str], object] = {
    (TrainConfig, "spike_rate_penalty"): 0.0,
    (FineTuneConfig, "spike_rate_penalty"): 0.0,
    (FineTuneConfig, "tuned_fraction"): 1.0,
    (CompressionRecord, "gradual_steps"): [],
    (RunConfig, "threads"): None,
    (RunConfig, "cpu_kernels"): None,
    (CompressionRecord, "cpu_kernels"): None,
}


def _matches(value: object, tp: object) -> bool:
    """Whether a parsed JSON value has type ``tp``; int, float, str and list[...] of them are
    checked, other types are left to the dataclass."""
    if tp is float:
        return isinstance(value, int | float)
    if tp in (int, str):
        return isinstance(value, tp)  # type: ignore[arg-type]
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    return True


def _type_name(tp: object) -> str:
    if typing.get_origin(tp) is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _from_dict(cls: type, data: object, where: str) -> object:
    """Build dataclass ``cls`` from parsed JSON, refusing missing or unknown fields."""
    if not isinstance(data, dict):
        raise RunDirError(f"{where}: expected an object, found {type(data).__name__}")
    hints = _field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RunDirError(f"{where}: unknown field(s) {', '.join(unknown)}")
    missing = [n for n, f in fields.items() if n not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise RunDirError(f"{where}: missing field(s) {', '.join(missing)}")
    kwargs = {name: copy.copy(value) for (owner, name), value in ADDED_FIELDS.items()
              if owner is cls and name not in data}
    for name, value in data.items():
        tp = hints[name]
        options = typing.get_args(tp) if isinstance(tp, types.UnionType) else (tp,)
        target = next((t for t in options if _is_dataclass_type(t)), None)
        if value is not None and target is not None:
            value = _from_dict(target, value, f"{where}.{name}")
        elif not _matches(value, tp):
            raise RunDirError(f"{where}.{name}: expected {_type_name(tp)}, found {value!r}")
        kwargs[name] = value
    obj = cls(**kwargs)
    if cls is ModelConfig:
        obj.dilations = tuple(obj.dilations)
    return obj


def config_to_dict(cfg: RunConfig) -> dict:
    """JSON-ready dict of a run configuration."""
    d = asdict(cfg)
    for key in ("model", "twin_model"):
        d[key]["dilations"] = list(d[key]["dilations"])
    return {"format_version": d.pop("format_version"),
            "vo2spike_version": d.pop("vo2spike_version"), **d}


def config_from_dict(d: dict, where: str = CONFIG_FILE) -> RunConfig:
    """Inverse of :func:`config_to_dict`; raises RunDirError naming ``where`` and the field."""
    version = d.get("format_version") if isinstance(d, dict) else None
    if version != FORMAT_VERSION:
        found = "no format_version (written before vo2spike 0.2)" if version is None \
            else f"format_version {version!r}"
        raise RunDirError(f"{where}: {found}; this vo2spike reads format_version "
                          f"{FORMAT_VERSION}. Train the model again with this version.")
    return typing.cast(RunConfig, _from_dict(RunConfig, d, where))


def save_config(run_dir: Path, cfg: RunConfig) -> None:
    """Write ``run_dir/config.json`` atomically."""
    from vo2spike.outputs import write_json

    write_json(Path(run_dir) / CONFIG_FILE, config_to_dict(cfg))


def load_config(run_dir: Path) -> RunConfig:
    """Read and check ``run_dir/config.json``; RunDirError names the file and the problem."""
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise RunDirError(f"{run_dir}: model folder not found")
    if not path.is_file():
        raise RunDirError(f"{run_dir}: not a trained run directory (no {CONFIG_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RunDirError(f"{path}: line {e.lineno}, column {e.colno}: invalid JSON "
                          f"({e.msg})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise RunDirError(f"{path}: cannot be read ({e})") from e
    return config_from_dict(data, str(path))


