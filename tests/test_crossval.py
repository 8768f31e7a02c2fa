"""The paired bootstrap over held-out people of an R² difference (leave-one-person-out)."""

import numpy as np
import pandas as pd
import pytest

from vo2spike.crossval import r2_difference_interval


def _predictions(seed: int = 0, people: int = 8, sessions: int = 2, windows: int = 10):
    """Per-window LOPO predictions: 'good' errs by 100 mL/min, 'bad' by 400 (SD)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(people):
        for s in range(sessions):
            vo2max = rng.uniform(2500, 4500)
            for _ in range(windows):
                vo2 = rng.uniform(800, vo2max)
                rows.append({"ID": f"P{p}", "ID_test": f"P{p}_{s}", "vo2": vo2,
                             "vo2max": vo2max})
    df = pd.DataFrame(rows)
    n = len(df)
    for name, sd in (("good", 100.0), ("bad", 400.0)):
        df[f"{name}_vo2"] = df["vo2"] + rng.normal(0, sd, n)
        df[f"{name}_vo2max"] = df["vo2max"] + rng.normal(0, sd, n)
    return df


def test_a_model_against_itself_differs_by_exactly_zero():
    ci = r2_difference_interval(_predictions(), "good", "good", resamples=200)
    assert ci == {"vo2": [0.0, 0.0], "vo2max": [0.0, 0.0]}


def test_a_clearly_better_model_gets_an_interval_above_zero_and_is_reproducible():
    df = _predictions()
    ci = r2_difference_interval(df, "good", "bad", resamples=300)
    assert 0 < ci["vo2"][0] < ci["vo2"][1]
    assert 0 < ci["vo2max"][0] < ci["vo2max"][1]
    assert r2_difference_interval(df, "good", "bad", resamples=300) == ci
    flipped = r2_difference_interval(df, "bad", "good", resamples=300)
    assert flipped["vo2"] == pytest.approx([-ci["vo2"][1], -ci["vo2"][0]])


def test_the_interval_contains_the_observed_difference_and_narrows_with_a_lower_level():
    df = _predictions(seed=1)
    wide = r2_difference_interval(df, "good", "bad", resamples=400)
    narrow = r2_difference_interval(df, "good", "bad", resamples=400, level=0.5)
    assert wide["vo2"][0] <= narrow["vo2"][0] <= narrow["vo2"][1] <= wide["vo2"][1]
