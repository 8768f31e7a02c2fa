"""Leaky integrate-and-fire layer with a triangular surrogate gradient (plain torch).

Surrogate after Li et al., arXiv:2212.02233: forward is the Heaviside step, backward is
dS/dU = (1/gamma) * max(0, 1 - |U - threshold| / gamma).
"""

from __future__ import annotations

import torch
from torch import nn


class TriangularSpike(torch.autograd.Function):
    """Spike = 1 where ``v = U - threshold > 0``; triangular surrogate gradient of width gamma."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, gamma: float) -> torch.Tensor:
        ctx.save_for_backward(v)
        ctx.gamma = gamma
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        (v,) = ctx.saved_tensors
        gamma = ctx.gamma
        surrogate = torch.clamp(1.0 - v.abs() / gamma, min=0.0) / gamma
        return grad_out * surrogate, None


class LIFSequence(torch.autograd.Function):
    """The whole LIF recurrence over T steps as one autograd node: the same arithmetic as
    :meth:`LIF.forward_per_step` (one :class:`TriangularSpike` per step), op for op, so
    spikes and gradients are bit-identical, at half the cost of a training step (autograd
    would otherwise record about six nodes per step and layer).

    Backward through time: the gradient reaching U[t] is the spike's (dL/dS[t] x surrogate)
    plus beta x that of U[t+1] (the reset is not differentiated).
    """

    @staticmethod
    def forward(ctx, current: torch.Tensor, beta: float, threshold: float,
                gamma: float) -> torch.Tensor:
        c = current.transpose(0, 1).contiguous()  # (B, T, H) -> (T, B, H)
        v = torch.empty_like(c)  # U[t] - threshold, kept for the surrogate
        spikes = torch.empty_like(c)
        u = torch.zeros_like(c[0])  # (B, H)
        for t in range(c.shape[0]):
            u = beta * u + c[t]
            torch.sub(u, threshold, out=v[t])
            torch.gt(v[t], 0, out=spikes[t])
            u = u - spikes[t] * threshold
        ctx.save_for_backward(v)
        ctx.beta, ctx.gamma = beta, gamma
        return spikes.transpose(0, 1).contiguous()  # (B, T, H)

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        (v,) = ctx.saved_tensors  # (T, B, H)
        beta, gamma = ctx.beta, ctx.gamma
        surrogate = torch.clamp(1.0 - v.abs() / gamma, min=0.0) / gamma
        g = grad_spikes.transpose(0, 1) * surrogate  # (T, B, H): dL/dU[t] via the spike
        for t in range(g.shape[0] - 2, -1, -1):
            g[t] += g[t + 1] * beta
        return g.transpose(0, 1).contiguous(), None, None, None


class LIF(nn.Module):
    """Linear synapse into leaky integrate-and-fire neurons.

    Per step: U[t] = beta * U[t-1] + W x[t] + b; S[t] = step(U[t] - threshold);
    then U[t] -= S[t] * threshold (reset by subtraction; the reset is not differentiated).
    Input (B, T, in_features) -> spikes (B, T, out_features) of 0/1.
    """

    def __init__(self, in_features: int, out_features: int, beta: float = 0.9,
                 threshold: float = 1.0, gamma: float = 0.5) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.beta, self.threshold, self.gamma = beta, threshold, gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LIFSequence.apply(self.fc(x), self.beta, self.threshold, self.gamma)

    def forward_per_step(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` written step by step with :class:`TriangularSpike` (the
        definition; slower): the tests hold the two to bit-identical spikes and gradients."""
        current = self.fc(x)
        u = torch.zeros_like(current[:, 0])
        spikes = []
        for t in range(current.shape[1]):
            u = self.beta * u + current[:, t]
            s = TriangularSpike.apply(u - self.threshold, self.gamma)
            u = u - s.detach() * self.threshold
            spikes.append(s)
        return torch.stack(spikes, dim=1)

    @torch.no_grad()
    def forward_with_potential(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spikes and membrane potentials, for inspection (no gradient).

        Returns (spikes, potential), both (B, T, out_features): the spikes are exactly those
        of :meth:`forward`; ``potential[:, t]`` is U[t] before the reset, the value compared
        with the threshold (a spike at t means potential[:, t] > threshold; the next step
        starts from potential[:, t] - threshold).
        """
        current = self.fc(x)
        u = torch.zeros_like(current[:, 0])
        spikes, potentials = [], []
        for t in range(current.shape[1]):
            u = self.beta * u + current[:, t]
            potentials.append(u)
            s = (u - self.threshold > 0).to(u.dtype)
            u = u - s * self.threshold
            spikes.append(s)
        return torch.stack(spikes, dim=1), torch.stack(potentials, dim=1)
