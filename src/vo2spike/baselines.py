"""Linear baselines fitted on window means: ridge on every input, and VE alone."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vo2spike.data.windows import CHANNELS, Windows

#: Baseline name -> (input channels used, ridge (True) or ordinary least squares).
BASELINES = {"ridge": (CHANNELS, True), "ve_linear": (["VE"], False)}


def window_means(x: np.ndarray) -> np.ndarray:
    """Baseline features: the mean of each input channel over the window, (N, C, T) -> (N, C)."""
    return x.mean(axis=2)


def linear_baseline(kind: str, train: Windows, test_x: np.ndarray) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """Fit baseline ``kind`` on training windows; predict window VO2 and VO2max (mL/min)."""
    channels, ridge = BASELINES[kind]
    cols = [CHANNELS.index(c) for c in channels]
    features, test_features = window_means(train.x)[:, cols], window_means(test_x)[:, cols]
    preds = []
    for target in (train.vo2, train.vo2max):
        est = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))) \
            if ridge else LinearRegression()
        est.fit(features, target)
        preds.append(est.predict(test_features))
    return preds[0], preds[1]


def baseline_parameters(kind: str) -> int:
    """Fitted coefficients of a baseline (both targets, intercepts included)."""
    return 2 * (len(BASELINES[kind][0]) + 1)
