"""Metrics shared by evaluation and cross-validation, and the models' display labels.

Results are keyed by short model ids; :data:`MODEL_LABELS` says what each one is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from vo2spike.data.windows import Windows

#: Model id -> label shown in tables and reports.
MODEL_LABELS = {
    "spiking": "spiking TCN+LIF",
    "twin": "ANN twin (same TCN, no spikes)",
    "ridge": "ridge on window means",
    "spiking_real": "spiking TCN+LIF (sim + real)",
    "twin_real": "ANN twin (sim + real)",
    "spiking_sim": "spiking, simulation only",
    "ridge_real": "ridge on window means (real)",
    "ve_linear_real": "VE-only linear (real)",
    "pruned": "spiking, pruned (float)",
    "pruned_int8": "spiking, pruned + int8 (NumPy integer engine)",
    "pruned_c": "spiking, pruned + int8 (C engine)",
    "twin_pruned_int8": "ANN twin, pruned + int8",
    "pruned_real": "spiking, pruned (float; sim + real)",
    "pruned_int8_real": "spiking, pruned + int8 (sim + real)",
    "twin_pruned_int8_real": "ANN twin, pruned + int8 (sim + real)",
}


def label(model_id: str) -> str:
    """The display label of a model id (the id itself if it has none)."""
    return MODEL_LABELS.get(model_id, model_id)


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R², RMSE, MAE (in the units of y) and MAPE (%)."""
    y, pred = np.asarray(y), np.asarray(pred)
    return {
        "r2": float(r2_score(y, pred)),
        "rmse": float(np.sqrt(mean_squared_error(y, pred))),
        "mae": float(mean_absolute_error(y, pred)),
        "mape": float(np.mean(np.abs(pred - y) / np.abs(y)) * 100.0),
    }


def per_test_vo2max(id_test: np.ndarray, window_vo2max: np.ndarray) -> pd.DataFrame:
    """The per-test VO2max estimate (mL/min): the mean of the test's window estimates."""
    df = pd.DataFrame({"ID_test": id_test, "vo2max_pred": window_vo2max})
    return df.groupby("ID_test", as_index=False, sort=True)["vo2max_pred"].mean()


def score(w: Windows, vo2_pred: np.ndarray, window_vo2max: np.ndarray) -> tuple[dict,
                                                                                pd.DataFrame]:
    """Window VO2 metrics (mL/min) and per-test VO2max metrics (mL/min and mL/kg/min);
    also the per-test table (ID_test, ID, Weight, vo2max, vo2max_pred)."""
    tests = w.tests.merge(per_test_vo2max(w.id_test, window_vo2max), on="ID_test")
    rel_true = tests["vo2max"] / tests["Weight"]
    rel_pred = tests["vo2max_pred"] / tests["Weight"]
    return {
        "vo2_ml_min": regression_metrics(w.vo2, vo2_pred),
        "vo2max_ml_min": regression_metrics(tests["vo2max"].to_numpy(),
                                            tests["vo2max_pred"].to_numpy()),
        "vo2max_ml_kg_min": regression_metrics(rel_true.to_numpy(), rel_pred.to_numpy()),
        "n_windows": int(len(w)),
        "n_tests": int(len(tests)),
    }, tests
