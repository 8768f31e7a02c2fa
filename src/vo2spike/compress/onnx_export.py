"""ONNX export of the float model: the unrolled 60-step window, and one time step as a cell
with explicit state (for streaming runtimes), both checked against onnxruntime.

Inputs are standardised windows (the run's Normalizer is stored beside the graphs in
``normalization.json``); outputs are standardised VO2 and VO2max, which
``value * std + mean`` turns into mL/min.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vo2spike.model.net import VO2Net
from vo2spike.model.tcn import TCN

log = logging.getLogger("vo2spike")

WINDOW_FILE, CELL_FILE = "vo2spike_window.onnx", "vo2spike_cell.onnx"


def _lif_step(u: torch.Tensor, current: torch.Tensor, beta: float,
              threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One LIF step (inference): U = beta U + I; S = U > threshold; U -= S threshold."""
    u = beta * u + current
    s = (u > threshold).to(u.dtype)
    return u - s * threshold, s


def _hidden(model: VO2Net, layer: nn.Module, h: torch.Tensor, u: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer 1 or 2 at one time step: (B, in) -> state (B, out), activation (B, out)."""
    c = model.config
    if c.spiking:
        return _lif_step(u, layer.fc(h), c.beta, c.threshold)
    return u, layer(h)


class WindowGraph(nn.Module):
    """The window model as a plain graph: (B, 8, T) standardised -> (vo2, vo2max) (B,)."""

    def __init__(self, model: VO2Net) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        h = m.tcn(x).transpose(1, 2)  # (B, T, C)
        u1 = torch.zeros(x.shape[0], m.config.hidden, dtype=x.dtype)
        u2 = torch.zeros_like(u1)
        total = torch.zeros_like(u1)
        for t in range(x.shape[2]):  # unrolled: T is fixed at export
            u1, a1 = _hidden(m, m.layer1, h[:, t], u1)
            u2, a2 = _hidden(m, m.layer2, a1, u2)
            total = total + a2
        rate = total / x.shape[2]  # (B, hidden): spike rate (or mean activation)
        return m.head_vo2(rate).squeeze(-1), m.head_vo2max(rate).squeeze(-1)


def tcn_history_shapes(tcn: TCN) -> list[tuple[int, int]]:
    """(channels, steps) of each causal block's input history: (kernel - 1) x dilation."""
    return [(b.conv.in_channels, b.pad) for b in tcn.blocks]


class StepCell(nn.Module):
    """One time step with explicit state, for streaming.

    Inputs: x_t (B, 8) standardised, the history of each TCN block's input (B, C_i, P_i),
    the layers' states u1, u2 (B, hidden) and the running sum of layer-2 activations
    (B, hidden). Outputs: the estimate after ``window_s`` steps from a zero state
    (standardised vo2, vo2max: heads applied to sum / window_s), then the new state in the
    same order. Unrolled ``window_s`` times from zeros it equals :class:`WindowGraph`.
    """

    def __init__(self, model: VO2Net, window_s: int) -> None:
        super().__init__()
        self.model = model.eval()
        self.window_s = window_s

    def forward(self, x_t: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        n_blocks = len(m.tcn.blocks)
        histories, (u1, u2, total) = state[:n_blocks], state[n_blocks:]
        h = x_t.unsqueeze(-1)  # (B, C, 1)
        new_histories = []
        for block, past in zip(m.tcn.blocks, histories, strict=True):
            seq = torch.cat([past, h], dim=2)  # (B, C_in, P + 1): the conv's receptive span
            y = torch.relu(block.bn(block.conv(seq)))  # (B, C_out, 1): no padding needed
            h_new = y + block.residual(h)
            new_histories.append(seq[:, :, 1:])
            h = h_new
        u1, a1 = _hidden(m, m.layer1, h[:, :, 0], u1)
        u2, a2 = _hidden(m, m.layer2, a1, u2)
        total = total + a2
        rate = total / self.window_s
        return (m.head_vo2(rate).squeeze(-1), m.head_vo2max(rate).squeeze(-1),
                *new_histories, u1, u2, total)

    def zero_state(self, batch: int) -> list[torch.Tensor]:
        """The state before the first step of a window."""
        hidden = self.model.config.hidden
        return ([torch.zeros(batch, c, p) for c, p in tcn_history_shapes(self.model.tcn)]
                + [torch.zeros(batch, hidden) for _ in range(3)])


def state_names(model: VO2Net) -> list[str]:
    """Names of the cell's state tensors, in order."""
    n = len(model.tcn.blocks)
    return [f"tcn_history_{i}" for i in range(n)] + ["u1", "u2", "activation_sum"]


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str],
            outputs: list[str]) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    # One spec per positional parameter; the cell's state is one *args tuple.
    shapes = ({0: batch},) if len(args) == 1 else ({0: batch}, tuple({0: batch}
                                                                      for _ in args[1:]))
    program = torch.onnx.export(module, args, dynamo=True, input_names=inputs,
                                output_names=outputs, dynamic_shapes=shapes,
                                optimize=True, verbose=False)
    program.save(str(path))


def export_onnx(model: VO2Net, window_s: int, out_dir: Path) -> dict[str, str]:
    """Write the window graph and the step cell of ``model`` into ``out_dir``; returns
    file name -> what it is."""
    out_dir = Path(out_dir)
    model = model.eval()
    n_in = model.config.n_inputs
    with torch.no_grad():
        _export(WindowGraph(model), (torch.zeros(2, n_in, window_s),), out_dir / WINDOW_FILE,
                ["x"], ["vo2", "vo2max"])
        cell = StepCell(model, window_s)
        names = state_names(model)
        _export(cell, (torch.zeros(2, n_in), *cell.zero_state(2)), out_dir / CELL_FILE,
                ["x_t", *names], ["vo2", "vo2max", *[f"{n}_out" for n in names]])
    return {WINDOW_FILE: f"(B, {n_in}, {window_s}) standardised window -> vo2, vo2max",
            CELL_FILE: "one 1 Hz step with explicit state -> estimate, new state"}


def run_window_onnx(path: Path, x_std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime on the window graph: standardised (N, 8, T) -> standardised outputs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    vo2, vo2max = sess.run(None, {"x": x_std.astype(np.float32)})
    return vo2, vo2max


def run_cell_onnx(path: Path, model: VO2Net, x_std: np.ndarray) -> tuple[np.ndarray,
                                                                         np.ndarray]:
    """onnxruntime on the step cell, unrolled over each window from a zero state."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = state_names(model)
    state = [s.numpy() for s in StepCell(model, x_std.shape[2]).zero_state(len(x_std))]
    out = None
    for t in range(x_std.shape[2]):
        out = sess.run(None, {"x_t": x_std[:, :, t].astype(np.float32),
                              **dict(zip(names, state, strict=True))})
        state = out[2:]
    return out[0], out[1]


def check_onnx(out_dir: Path, model: VO2Net, x_std: np.ndarray) -> dict[str, float]:
    """Largest |difference| (standardised units) of onnxruntime vs PyTorch on ``x_std``,
    for the window graph and the unrolled cell; also the share of windows whose rounded
    mL/min-scale outputs agree is left to the caller."""
    with torch.no_grad():
        out = model.eval()(torch.from_numpy(x_std.astype(np.float32)))
    ref_vo2, ref_max = out.vo2.numpy(), out.vo2max.numpy()
    w = run_window_onnx(Path(out_dir) / WINDOW_FILE, x_std)
    c = run_cell_onnx(Path(out_dir) / CELL_FILE, model, x_std)
    report = {
        "window_max_abs_diff": float(max(np.abs(w[0] - ref_vo2).max(),
                                         np.abs(w[1] - ref_max).max())),
        "cell_max_abs_diff": float(max(np.abs(c[0] - ref_vo2).max(),
                                       np.abs(c[1] - ref_max).max())),
        "windows": int(len(x_std)),
    }
    (Path(out_dir) / "onnx_check.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
