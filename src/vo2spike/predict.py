"""Predict VO2 per window and VO2max per test for every test of a data directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vo2spike.data.windows import prepare_windows
from vo2spike.outputs import atomic_dir
from vo2spike.train import load_model, predict_windows

#: The model shipped with the repository (trained by ``vo2spike run``).
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default"
WINDOW_COLUMNS = ["ID_test", "t_start", "t_end", "vo2_pred", "vo2max_pred"]


def per_test_vo2max(id_test: np.ndarray, window_vo2max: np.ndarray) -> pd.DataFrame:
    """The per-test VO2max estimate (mL/min): mean of the test's window estimates."""
    df = pd.DataFrame({"ID_test": id_test, "vo2max_pred": window_vo2max})
    return df.groupby("ID_test", as_index=False, sort=True)["vo2max_pred"].mean()


def predict_dir(data_dir: Path, out: Path, model_dir: Path | None = None,
                force: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write ``out/windows.csv`` (ID_test,t_start,t_end,vo2_pred,vo2max_pred; seconds in each
    test's own time base, mL/min) and ``out/tests.csv`` (ID_test,vo2max_pred).

    VO2 and VCO2 columns are not needed: only the wearable's inputs are.
    """
    model, norm, _ = load_model(Path(model_dir) if model_dir else DEFAULT_MODEL)
    _, w = prepare_windows(data_dir, with_labels=False)
    pred = predict_windows(model, norm, w.x)
    windows = pd.DataFrame({
        "ID_test": w.id_test, "t_start": w.t_start, "t_end": w.t_end,
        "vo2_pred": np.round(pred["vo2"], 1), "vo2max_pred": np.round(pred["vo2max"], 1),
    })[WINDOW_COLUMNS]
    tests = per_test_vo2max(w.id_test, pred["vo2max"]).round({"vo2max_pred": 1})
    with atomic_dir(Path(out), force=force) as tmp:
        windows.to_csv(tmp / "windows.csv", index=False)
        tests.to_csv(tmp / "tests.csv", index=False)
    return windows, tests
