"""Linear baselines fitted on window means: ridge on every signal, ridge on a watch's
signals (speed and heart rate, with or without breathing rate), and VE alone."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vo2spike.data.windows import CHANNELS, INPUT_SETS, Windows

_PERSON = ["Age", "Weight", "Height", "Sex"]
#: Baseline name -> (input channels used, ridge (True) or ordinary least squares). The
#: ``ridge_<set>`` baselines use an input set's signals (vo2spike.data.windows.INPUT_SETS).
BASELINES = {"ridge": (["Speed", "HR", "RR", "VE"] + _PERSON, True),
             "ve_linear": (["VE"], False),
             **{f"ridge_{name.replace(',', '_')}": (list(signals) + _PERSON, True)
                for name, signals in INPUT_SETS.items() if "VE" not in signals}}


def ridge_for(input_set: str) -> str:
    """The ridge baseline on an input set's signals."""
    return "ridge" if "VE" in INPUT_SETS[input_set] else f"ridge_{input_set.replace(',', '_')}"


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
