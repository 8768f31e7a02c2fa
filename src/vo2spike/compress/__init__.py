"""Compression of trained models for a microcontroller: BatchNorm folding, integer-only int8
quantisation, a NumPy reference integer engine and a C export.

Importing this package imports nothing heavy: ``vo2spike.compress.int_engine`` must stay
torch-free, and importing it imports this file first.
"""

from __future__ import annotations

#: Inference engines this package provides, by name (see :func:`register_engines`).
ENGINE_NAMES = ("int8", "c")


def register_engines(engines: dict | None = None) -> dict:
    """Add the ``int8`` and ``c`` engines to ``engines`` (default:
    ``vo2spike.inference.ENGINES``) and return it. Each takes a model folder holding
    ``int8.safetensors`` / ``int8.json``."""
    from vo2spike.compress.export_c import CEngine
    from vo2spike.compress.int_engine import Int8Engine

    if engines is None:
        from vo2spike.inference import ENGINES as engines
    engines.setdefault("int8", Int8Engine)
    engines.setdefault("c", CEngine)
    return engines
