"""Predict VO2 per window and VO2max per test for every test of a data directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vo2spike.data.windows import prepare_windows
from vo2spike.inference import DEFAULT_MODEL, load_engine
from vo2spike.metrics import per_test_vo2max
from vo2spike.outputs import atomic_dir, check_writable

WINDOW_COLUMNS = ["ID_test", "t_start", "t_end", "vo2_pred", "vo2max_pred"]


def predict_dir(data_dir: Path, out: Path, model_dir: Path | None = None,
                force: bool = False, engine: str = "float") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write ``out/windows.csv`` (ID_test,t_start,t_end,vo2_pred,vo2max_pred; seconds in each
    test's own time base, mL/min) and ``out/tests.csv`` (ID_test,vo2max_pred).

    VO2 and VCO2 columns are not needed: only the wearable's inputs are. The output, the
    model and the data are checked before any work is done.
    """
    model_dir = Path(model_dir) if model_dir else DEFAULT_MODEL
    inputs = [Path(data_dir), model_dir]
    check_writable(Path(out), force, kind="predictions", inputs=inputs)
    predictor = load_engine(model_dir, engine)
    _, w = prepare_windows(data_dir, with_labels=False)
    pred = predictor.predict(w.x)
    windows = pd.DataFrame({
        "ID_test": w.id_test, "t_start": w.t_start, "t_end": w.t_end,
        "vo2_pred": np.round(pred.vo2, 1), "vo2max_pred": np.round(pred.vo2max, 1),
    })[WINDOW_COLUMNS]
    tests = per_test_vo2max(w.id_test, pred.vo2max).round({"vo2max_pred": 1})
    with atomic_dir(Path(out), force=force, kind="predictions", inputs=inputs) as tmp:
        windows.to_csv(tmp / "windows.csv", index=False)
        tests.to_csv(tmp / "tests.csv", index=False)
    return windows, tests
