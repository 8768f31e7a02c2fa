import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vo2spike.data.read import DataError
from vo2spike.data.windows import (
    CHANNELS,
    MAX_RESAMPLE_S,
    highest_rolling_mean,
    make_windows,
    resample_to_1hz,
    window_starts,
)


@given(st.integers(0, 2000))
def test_window_count_and_overlap(n):
    starts = window_starts(n, 60, 30)
    assert len(starts) == (0 if n < 60 else (n - 60) // 30 + 1)
    if len(starts) > 1:
        assert np.all(np.diff(starts) == 30)  # 50% overlap of 60 s windows
    assert np.all(starts + 60 <= n)


def test_resample_never_builds_a_grid_over_the_cap():
    test = pd.DataFrame({"time": [0.0, 2.0, 1e9], "HR": [100.0, 101.0, 102.0],
                         "ID_test": "x_1"})
    with pytest.raises(DataError, match=r"test 'x_1': breaths span 1,000,000,000 s"):
        resample_to_1hz(test)
    ok = pd.DataFrame({"time": [0.0, MAX_RESAMPLE_S], "HR": [100.0, 101.0]})
    assert len(resample_to_1hz(ok)) == MAX_RESAMPLE_S + 1


def test_resample_is_linear_on_whole_seconds_and_marks_gaps():
    test = pd.DataFrame({"time": [0.5, 2.5, 4.5, 60.0, 61.0],
                         "HR": [100.0, 110.0, 120.0, 130.0, 131.0]})
    hz = resample_to_1hz(test, max_gap_s=30)
    assert hz["t"].tolist() == list(range(1, 62))
    assert np.isclose(hz.loc[hz.t == 1, "HR"].item(), 102.5)
    assert np.isclose(hz.loc[hz.t == 3, "HR"].item(), 112.5)
    assert hz.loc[hz.t == 30, "valid"].item() == np.False_  # inside the 55.5 s gap
    assert hz.loc[hz.t == 3, "valid"].item() == np.True_


@given(st.lists(st.floats(0, 5000), min_size=1, max_size=120), st.integers(1, 40))
@settings(max_examples=60, deadline=None)
def test_highest_rolling_mean_matches_brute_force(values, width):
    x = np.array(values)
    valid = np.ones(len(x), bool)
    got = highest_rolling_mean(x, valid, width)
    if len(x) < width:
        assert np.isnan(got)
    else:
        brute = max(x[i:i + width].mean() for i in range(len(x) - width + 1))
        assert np.isclose(got, brute)


def test_windows_of_simulated_cohort(sim_dir):
    from vo2spike.data.read import load_dataset

    w = make_windows(load_dataset(sim_dir))
    assert w.x.shape[1:] == (len(CHANNELS), 60)
    assert np.all(w.t_end - w.t_start == 60)
    # Static channels (age, weight, height, sex, presence flags) are constant in a window.
    assert np.all(w.x[:, 4:, :].max(axis=2) == w.x[:, 4:, :].min(axis=2))
    # Window VO2 is a mean of 1 Hz VO2, so it never exceeds the test's highest 30 s mean.
    assert np.all(w.vo2 <= w.vo2max + 1e-3)
    # Consecutive windows of a test start 30 s apart unless a gap dropped one.
    first = w.id_test == w.id_test[0]
    assert np.all(np.diff(w.t_start[first]) % 30 == 0)
