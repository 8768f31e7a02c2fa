"""Choosing an inference engine by name: ``float`` (the PyTorch model, ``inference``),
``int8`` (the NumPy integer engine) and ``c`` (the compiled C engine), both of which run a
model folder's compressed model (``compress``).

It sits above both: ``inference`` knows nothing of ``compress``, and ``compress`` nothing
of this module. Every engine takes raw windows (N, C, T) in the units of ``CHANNELS`` and
returns ``WindowPredictions`` (mL/min).
"""

from __future__ import annotations

from pathlib import Path

from vo2spike.config import COMPRESSED_DIR, RunDirError
from vo2spike.inference import DEFAULT_MODEL, FloatEngine

ENGINE_NAMES = ("float", "int8", "c")
#: The engines that run a folder's compressed model (``int8.json`` / ``int8.safetensors``).
INTEGER_ENGINES = ("int8", "c")


def compressed_folder(model_dir: Path) -> Path:
    """The compressed model folder of ``model_dir``: the folder itself when it holds an int8
    model, else its ``compressed/`` sub-folder."""
    model_dir = Path(model_dir)
    for folder in (model_dir, model_dir / COMPRESSED_DIR):
        if (folder / "int8.json").is_file():
            return folder
    if not model_dir.is_dir():
        raise RunDirError(f"{model_dir}: model folder not found")
    raise RunDirError(f"{model_dir}: no compressed model (int8.json) here or in "
                      f"{COMPRESSED_DIR}/; create one with `vo2spike compress`")


def engine_folder(run_dir: Path | None, engine: str) -> Path:
    """The folder the named engine reads (default model: the shipped one)."""
    folder = Path(run_dir) if run_dir else DEFAULT_MODEL
    return compressed_folder(folder) if engine in INTEGER_ENGINES else folder


def load_engine(run_dir: Path | None = None, engine: str = "float"):
    """The named engine for a model folder (default: the shipped model): ``float`` runs the
    PyTorch model; ``int8`` (NumPy) and ``c`` (compiled C) run its compressed model."""
    if engine not in ENGINE_NAMES:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINE_NAMES)}")
    folder = engine_folder(run_dir, engine)
    if engine == "int8":
        from vo2spike.compress.int_engine import Int8Engine

        return Int8Engine(folder)
    if engine == "c":
        from vo2spike.compress.export_c import CEngine

        return CEngine(folder)
    return FloatEngine(folder)
