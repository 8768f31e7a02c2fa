"""Inference: load a run directory (typed config + checksummed weights) and predict windows.

The float engine takes raw windows (N, C, 60) in the units of ``CHANNELS`` and returns
window VO2 and VO2max in mL/min; ``vo2spike.engines`` chooses between it and the integer
engines of ``compress``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from vo2spike.config import (
    MODEL_FILE,
    SIM_ONLY_FILES,
    TWIN_FILE,
    Normalizer,
    RunConfig,
    RunDirError,
    load_config,
    sha256_file,
)
from vo2spike.model.net import VO2Net
from vo2spike.predictions import WindowPredictions

#: The model shipped with the repository (trained by ``vo2spike run``).
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default"


def weights_file(config: RunConfig, twin: bool = False, sim_only: bool = False) -> str:
    """Name of the weight file to load: the spiking model or its twin; with ``sim_only`` the
    weights trained on simulation alone (the run's only weights if it was not fine-tuned)."""
    name = TWIN_FILE if twin else MODEL_FILE
    if sim_only and SIM_ONLY_FILES[name] in config.weights:
        return SIM_ONLY_FILES[name]
    return name


def load_verified_tensors(run_dir: Path, name: str, config: RunConfig) -> dict[str, torch.Tensor]:
    """Read a weight file of a finished run after checking its SHA256 against the config."""
    path = Path(run_dir) / name
    if name not in config.weights:
        raise RunDirError(
            f"{path}: not a finished weight file of this run (config.json lists "
            f"{', '.join(sorted(config.weights)) or 'none'}); was training interrupted? "
            "Continue it with `vo2spike train --resume`")
    if not path.is_file():
        raise RunDirError(f"{path}: weight file missing")
    digest = sha256_file(path)
    if digest != config.weights[name]:
        raise RunDirError(f"{path}: damaged: its SHA256 {digest[:12]}... differs from the "
                          f"{config.weights[name][:12]}... recorded in config.json")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise RunDirError(f"{path}: not a readable safetensors file ({e})") from e


def build_model(state: dict[str, torch.Tensor], config: RunConfig, twin: bool,
                where: Path) -> VO2Net:
    """A VO2Net of the config's architecture holding ``state``; eval mode."""
    model = VO2Net(config.twin_model if twin else config.model)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = ([f"missing {', '.join(missing[:4])}"] if missing else []) + \
                ([f"unexpected {', '.join(unexpected[:4])}"] if unexpected else []) + \
                ([f"wrong shape {', '.join(wrong[:4])}"] if wrong else [])
        raise RunDirError(f"{where}: weights do not fit the architecture in config.json: "
                          + "; ".join(parts))
    model.load_state_dict(state)
    model.eval()
    return model


def load_model(run_dir: Path, twin: bool = False,
               sim_only: bool = False) -> tuple[VO2Net, Normalizer, RunConfig]:
    """Load a trained model (or its ANN twin), its normaliser and the run config.

    ``sim_only`` loads the weights trained on simulation alone: the pre-trained ones if the
    run was fine-tuned on real recordings, otherwise the run's only weights. Raises
    RunDirError naming the file for a missing, unfinished or damaged run directory.
    """
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    name = weights_file(config, twin, sim_only)
    model = build_model(load_verified_tensors(run_dir, name, config), config, twin,
                        run_dir / name)
    return model, config.normalization, config


@torch.no_grad()
def predict_windows(model: VO2Net, norm: Normalizer, x: np.ndarray,
                    batch_size: int = 1024) -> WindowPredictions:
    """Predict window VO2 and VO2max (mL/min) for raw windows x (N, 8, T)."""
    model.eval()
    vo2, vmax, rates = [], [], {}
    xs = torch.from_numpy(norm.inputs(x))
    for i in range(0, len(xs), batch_size):
        out = model(xs[i:i + batch_size])
        a, b = norm.to_ml_min(out.vo2.numpy(), out.vo2max.numpy())
        vo2.append(a)
        vmax.append(b)
        for k, r in out.spike_rates.items():
            rates.setdefault(k, []).append(float(r) * len(out.vo2))
    return WindowPredictions(np.concatenate(vo2), np.concatenate(vmax),
                             {k: sum(v) / len(xs) for k, v in rates.items()})


class FloatEngine:
    """The PyTorch float model of a run directory."""

    name = "float"

    def __init__(self, run_dir: Path, twin: bool = False) -> None:
        self.model, self.norm, self.config = load_model(run_dir, twin=twin)

    def predict(self, x: np.ndarray) -> WindowPredictions:
        """Window VO2 and VO2max (mL/min) of raw windows x (N, 8, T)."""
        return predict_windows(self.model, self.norm, x)
