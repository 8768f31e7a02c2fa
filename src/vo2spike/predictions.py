"""What every inference engine returns (torch-free, so integer engines need no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class WindowPredictions:
    """Per-window estimates (mL/min) and, for spiking models, mean spike rate per layer
    (fraction of neuron-steps that fire)."""

    vo2: np.ndarray  # (N,)
    vo2max: np.ndarray  # (N,)
    spike_rates: dict[str, float] = field(default_factory=dict)
