"""VO2Net: causal TCN -> two LIF spiking layers -> spike rates -> VO2 and VO2max heads.

With ``spiking=False`` the LIF layers become Linear + ReLU layers of the same size: the
ANN twin used as a baseline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from vo2spike.model.spike import LIF
from vo2spike.model.tcn import TCN


@dataclass
class ModelConfig:
    """Architecture hyper-parameters."""

    n_inputs: int = 10  # len(vo2spike.data.windows.CHANNELS): 8 signals + 2 presence flags
    channels: int = 32
    kernel_size: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    hidden: int = 64
    spiking: bool = True
    beta: float = 0.9
    threshold: float = 1.0
    gamma: float = 0.5

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["dilations"] = tuple(d["dilations"])
        return cls(**d)


@dataclass
class Output:
    """Network outputs in standardised target units, plus per-layer spike rates.

    ``spike_rates``: fraction of neuron-steps that fired per LIF layer (scalars, detached, for
    reports); ``spike_rates_grad``: the same values attached to the graph (gradients flow
    through the surrogate), for a spike-rate penalty in the loss. Both empty for the twin.
    """

    vo2: torch.Tensor
    vo2max: torch.Tensor
    spike_rates: dict[str, torch.Tensor] = field(default_factory=dict)
    spike_rates_grad: dict[str, torch.Tensor] = field(default_factory=dict)


class VO2Net(nn.Module):
    """(B, n_inputs, T) standardised inputs -> standardised window VO2 and test VO2max."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.tcn = TCN(c.n_inputs, c.channels, c.kernel_size, c.dilations)
        if c.spiking:
            self.layer1 = LIF(c.channels, c.hidden, c.beta, c.threshold, c.gamma)
            self.layer2 = LIF(c.hidden, c.hidden, c.beta, c.threshold, c.gamma)
        else:
            self.layer1 = nn.Sequential(nn.Linear(c.channels, c.hidden), nn.ReLU())
            self.layer2 = nn.Sequential(nn.Linear(c.hidden, c.hidden), nn.ReLU())
        self.head_vo2 = nn.Linear(c.hidden, 1)
        self.head_vo2max = nn.Linear(c.hidden, 1)

    def forward(self, x: torch.Tensor) -> Output:
        h = self.tcn(x).transpose(1, 2)  # (B, T, C)
        a1 = self.layer1(h)
        a2 = self.layer2(a1)
        rate = a2.mean(dim=1)  # average over time: spike rate per neuron
        rates: dict[str, torch.Tensor] = {}
        if self.config.spiking:
            rates = {"lif1": a1.mean(), "lif2": a2.mean()}  # scalars
        return Output(self.head_vo2(rate).squeeze(-1), self.head_vo2max(rate).squeeze(-1),
                      {k: v.detach() for k, v in rates.items()}, rates)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
