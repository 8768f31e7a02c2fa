"""ONNX export: the window graph and the step cell agree with PyTorch under onnxruntime."""

import numpy as np
import pytest
import torch

from vo2spike.compress.onnx_export import (
    CELL_FILE,
    WINDOW_FILE,
    StepCell,
    WindowGraph,
    check_onnx,
    export_onnx,
)
from vo2spike.data.windows import CHANNELS
from vo2spike.inference import load_model

N_INPUTS = len(CHANNELS)  # model inputs per time step


@pytest.fixture(scope="module")
def spiking(run_dir):
    return load_model(run_dir)[0]


def test_cell_unrolled_equals_the_window_model_in_torch(spiking):
    x = torch.randn(6, N_INPUTS, 60, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = spiking(x)
        graph = WindowGraph(spiking)(x)
        cell = StepCell(spiking, 60)
        state = cell.zero_state(6)
        for t in range(60):
            out = cell(x[:, :, t], *state)
            state = out[2:]
    assert torch.equal(graph[0], ref.vo2) and torch.equal(graph[1], ref.vo2max)
    assert torch.allclose(out[0], ref.vo2, atol=1e-5) and torch.allclose(out[1], ref.vo2max,
                                                                        atol=1e-5)


def test_onnxruntime_matches_torch(spiking, tmp_path):
    # A 12-step window keeps the unrolled graph small; the cell is the 60-step model's own.
    short = tmp_path / "short"
    short.mkdir()
    files = export_onnx(spiking, 12, short)
    assert set(files) == {WINDOW_FILE, CELL_FILE}
    x = np.random.default_rng(1).normal(size=(20, N_INPUTS, 12)).astype(np.float32)
    report = check_onnx(short, spiking, x)
    assert report["windows"] == 20
    assert report["window_max_abs_diff"] < 1e-4 and report["cell_max_abs_diff"] < 1e-4
