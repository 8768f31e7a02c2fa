"""Run the spiking model layer by layer and keep what the demo draws.

:func:`trace_model` computes exactly what ``VO2Net.forward`` computes (same layers, same
order), keeping the TCN activations, both LIF layers' spikes and membrane potentials, the
per-neuron spike rates and the heads' outputs. The page's numbers themselves come from
:func:`vo2spike.inference.predict_windows` (the CLI's code path); the tests check that both
agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vo2spike.config import Normalizer
from vo2spike.model.net import VO2Net


@dataclass
class ModelTrace:
    """Internals of the spiking model for N windows of T steps (1 Hz).

    x_std: (N, 8, T) standardised inputs; tcn: (N, C, T) TCN output activations;
    spikes1/spikes2: (N, T, H) 0/1 spikes of LIF1/LIF2; potential1/potential2: (N, T, H)
    membrane potentials before reset; rates2: (N, H) LIF2 spike rate per neuron (what the
    heads read); vo2/vo2max: (N,) heads' outputs in mL/min.
    """

    x_std: np.ndarray
    tcn: np.ndarray
    spikes1: np.ndarray
    potential1: np.ndarray
    spikes2: np.ndarray
    potential2: np.ndarray
    rates2: np.ndarray
    vo2: np.ndarray
    vo2max: np.ndarray


@torch.no_grad()
def trace_model(model: VO2Net, norm: Normalizer, x: np.ndarray) -> ModelTrace:
    """Trace raw windows x (N, 8, T) through a spiking VO2Net (eval mode)."""
    if not model.config.spiking:
        raise ValueError("the demo traces the spiking model, not the ANN twin")
    model.eval()
    xs = torch.from_numpy(norm.inputs(x))
    h = model.tcn(xs)
    s1, u1 = model.layer1.forward_with_potential(h.transpose(1, 2))
    s2, u2 = model.layer2.forward_with_potential(s1)
    rate = s2.mean(dim=1)
    vo2, vo2max = norm.to_ml_min(model.head_vo2(rate).squeeze(-1).numpy(),
                                 model.head_vo2max(rate).squeeze(-1).numpy())
    return ModelTrace(xs.numpy(), h.numpy(), s1.numpy(), u1.numpy(), s2.numpy(), u2.numpy(),
                      rate.numpy(), vo2, vo2max)


def pick_neurons(rates: np.ndarray, quantiles: tuple[float, ...] = (0.3, 0.6, 0.9)) -> list[int]:
    """Distinct neurons whose mean spike rate is nearest these quantiles of the rates of the
    neurons that fire at all: with sparse spikes most neurons are silent, and the membrane
    plots should show neurons that rise, leak and cross the threshold, rarely and often."""
    active = rates[rates > 0]
    targets = np.quantile(active if len(active) >= len(quantiles) else rates, quantiles)
    chosen: list[int] = []
    for target in targets:
        order = np.argsort(np.abs(rates - target), kind="stable")
        chosen.append(int(next(i for i in order if int(i) not in chosen)))
    return chosen


def receptive_field(kernel_size: int, dilations: tuple[int, ...]) -> int:
    """Steps (s at 1 Hz) one TCN output sees: 1 + (kernel - 1) x sum of dilations."""
    return 1 + (kernel_size - 1) * sum(dilations)
