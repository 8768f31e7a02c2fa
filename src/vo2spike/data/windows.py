"""Resample tests to 1 Hz, compute targets and slice fixed-length windows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vo2spike.data.clean import (
    PLAUSIBLE,
    apply_plausibility_limits,
    clean_measures,
    reject_rolling_outliers,
)
from vo2spike.data.read import (
    MAX_TEST_S,
    MEASURE_FILE,
    DataError,
    DataReport,
    Dataset,
    load_dataset,
)

#: Model inputs per time step, in this order (static ones repeated over time).
CHANNELS = ["Speed", "HR", "RR", "VE", "Age", "Weight", "Height", "Sex"]
DYNAMIC = ["Speed", "HR", "RR", "VE"]
WINDOW_S = 60
STRIDE_S = 30
VO2MAX_AVERAGE_S = 30
#: A stretch longer than this between two usable breaths is a gap, not interpolated over.
MAX_GAP_S = 30.0
#: Speed is smoothed with a trailing (causal) mean over this many seconds: GPS speed on
#: 20 m shuttles jumps by several km/h from one second to the next.
SPEED_SMOOTHING_S = 5
#: The longest stretch (s) :func:`resample_to_1hz` puts on a 1 Hz grid: a last guard that
#: keeps memory bounded whatever the times (``load_dataset`` rejects longer tests first).
MAX_RESAMPLE_S = MAX_TEST_S


def smooth_speed(speed_1hz: np.ndarray, seconds: int = SPEED_SMOOTHING_S) -> np.ndarray:
    """Trailing mean of a 1 Hz speed series over ``seconds`` (causal, length kept)."""
    s = pd.Series(speed_1hz)
    return s.rolling(seconds, min_periods=1).mean().to_numpy()


def resample_to_1hz(test: pd.DataFrame, max_gap_s: float = MAX_GAP_S, *,
                    name: str | None = None) -> pd.DataFrame:
    """Linearly interpolate one test's breath rows (sorted by time) onto whole seconds.

    Returns columns ``t`` (s, the test's own time base), every signal present, and
    ``valid`` (False for seconds inside a gap longer than ``max_gap_s``). Raises DataError
    (naming the test: ``name``, else its ID_test) if the times are not finite or span more
    than ``MAX_RESAMPLE_S``.
    """
    t = test["time"].to_numpy(dtype=float)
    if name is None and "ID_test" in test and len(test):
        name = str(test["ID_test"].iloc[0])
    label = f"test {name!r}" if name is not None else "test"
    if len(t) == 0:
        raise DataError(f"{label}: no breath rows to resample")
    if not np.isfinite(t).all():
        raise DataError(f"{label}: {int((~np.isfinite(t)).sum())} time(s) are not finite")
    span = float(t.max() - t.min())
    if span > MAX_RESAMPLE_S:
        raise DataError(
            f"{label}: breaths span {span:,.0f} s ({span / 3600:,.1f} h), more than the "
            f"{MAX_RESAMPLE_S / 3600:g} h a test may last; are its times in seconds?"
        )
    grid = np.arange(np.ceil(t.min()), np.floor(t.max()) + 1.0)
    out = {"t": grid}
    for col in ["Speed", "HR", "RR", "VE", "VO2", "VCO2"]:
        if col not in test:
            continue
        v = test[col].to_numpy(dtype=float)
        ok = np.isfinite(v)
        out[col] = np.interp(grid, t[ok], v[ok]) if ok.sum() >= 2 else np.full(len(grid), np.nan)
    # A grid second is valid when the breaths around it are at most max_gap_s apart.
    idx = np.clip(np.searchsorted(t, grid, side="right"), 1, len(t) - 1)
    out["valid"] = (t[idx] - t[idx - 1]) <= max_gap_s
    return pd.DataFrame(out)


def highest_rolling_mean(x: np.ndarray, valid: np.ndarray, width: int) -> float:
    """Highest mean of ``width`` consecutive valid samples (NaN if there is none)."""
    if len(x) < width:
        return float("nan")
    xs = np.where(valid, x, 0.0)
    c = np.concatenate([[0.0], np.cumsum(xs)])
    n = np.concatenate([[0], np.cumsum(valid.astype(int))])
    sums, counts = c[width:] - c[:-width], n[width:] - n[:-width]
    full = counts == width
    return float(sums[full].max() / width) if full.any() else float("nan")


def window_starts(n_seconds: int, window_s: int = WINDOW_S, stride_s: int = STRIDE_S) -> np.ndarray:
    """Start indices of all windows of ``window_s`` samples with ``stride_s`` stride."""
    if n_seconds < window_s:
        return np.zeros(0, dtype=int)
    return np.arange(0, n_seconds - window_s + 1, stride_s)


@dataclass
class Windows:
    """Windows of one or more tests.

    x: (N, 8, window_s) inputs in raw units (CHANNELS order); vo2: (N,) window mean VO2
    (mL/min, NaN without labels); id_test, person: (N,) identifiers; t_start, t_end: (N,)
    seconds in each test's own time base. ``tests`` has one row per test with ID_test, ID,
    Weight (kg) and vo2max (mL/min, highest 30 s mean of 1 Hz VO2).
    """

    x: np.ndarray
    vo2: np.ndarray
    vo2max: np.ndarray
    id_test: np.ndarray
    person: np.ndarray
    t_start: np.ndarray
    t_end: np.ndarray
    tests: pd.DataFrame

    def __len__(self) -> int:
        return len(self.vo2)

    def subset(self, mask: np.ndarray) -> Windows:
        """Windows where ``mask`` is True (tests table restricted accordingly)."""
        keep_tests = set(self.id_test[mask])
        return Windows(
            self.x[mask], self.vo2[mask], self.vo2max[mask], self.id_test[mask],
            self.person[mask], self.t_start[mask], self.t_end[mask],
            self.tests[self.tests["ID_test"].isin(keep_tests)].reset_index(drop=True),
        )


def make_windows(
    dataset: Dataset,
    with_labels: bool = True,
    window_s: int = WINDOW_S,
    stride_s: int = STRIDE_S,
) -> Windows:
    """Clean, resample to 1 Hz and window every test of a dataset.

    With labels, rows missing VO2, VCO2, VE or HR are dropped and windows carry VO2 targets;
    without, only HR and VE are required. Windows that touch a gap are dropped (counted).
    """
    report = dataset.report
    required = ("VO2", "VCO2", "VE", "HR") if with_labels else ("HR", "VE")
    source = Path(dataset.source["path"]) / MEASURE_FILE if "path" in dataset.source else None
    clean = clean_measures(dataset.measures, report, required, source=source)
    subjects = dataset.subjects.set_index("ID_test")
    xs, vo2s, vo2maxs, ids, persons, t0s = [], [], [], [], [], []
    test_rows = []
    n_gap_windows, short_tests = 0, []
    for id_test, test in clean.groupby("ID_test", sort=True):
        if len(test) < 2:
            short_tests.append(id_test)
            continue
        s = subjects.loc[id_test]
        hz = resample_to_1hz(test)
        valid = hz["valid"].to_numpy()
        if with_labels:
            vo2_1hz = hz["VO2"].to_numpy()
            vo2max = highest_rolling_mean(vo2_1hz, valid, VO2MAX_AVERAGE_S)
        else:
            vo2_1hz, vo2max = np.full(len(hz), np.nan), float("nan")
        starts = window_starts(len(hz), window_s, stride_s)
        if len(starts) == 0:
            short_tests.append(id_test)
            continue
        hz["Speed"] = smooth_speed(hz["Speed"].to_numpy())
        dyn = np.stack([hz[c].to_numpy() for c in DYNAMIC])  # (4, T)
        static = np.array([s["Age"], s["Weight"], s["Height"], s["Sex"]], dtype=float)
        test_rows.append({"ID_test": id_test, "ID": s["ID"], "Weight": float(s["Weight"]),
                          "vo2max": vo2max})
        for a in starts:
            b = a + window_s
            if not valid[a:b].all():
                n_gap_windows += 1
                continue
            w = np.concatenate([dyn[:, a:b], np.repeat(static[:, None], window_s, axis=1)])
            xs.append(w)
            vo2s.append(vo2_1hz[a:b].mean())
            vo2maxs.append(vo2max)
            ids.append(id_test)
            persons.append(s["ID"])
            t0s.append(hz["t"].iloc[a])
    where = f"{source}: " if source is not None else ""
    report.add("windows_dropped_gap", n_gap_windows,
               f"{where}{n_gap_windows} window(s) dropped: they span a gap over "
               f"{MAX_GAP_S:g} s")
    report.add("tests_too_short", len(short_tests),
               f"{where}{len(short_tests)} test(s) shorter than one {window_s} s window after "
               f"cleaning were skipped: {', '.join(map(str, short_tests[:5]))}"
               f"{' ...' if len(short_tests) > 5 else ''}")
    if not xs:
        reason = _why_no_windows(dataset, clean, required, n_gap_windows, window_s)
        report.emit()  # the warnings explain the error: show them before it
        raise DataError(f"{where}no usable windows: {reason}")
    t_start = np.asarray(t0s, dtype=float)
    return Windows(
        x=np.stack(xs).astype(np.float32),
        vo2=np.asarray(vo2s, dtype=np.float32),
        vo2max=np.asarray(vo2maxs, dtype=np.float32),
        id_test=np.asarray(ids, dtype=object),
        person=np.asarray(persons, dtype=object),
        t_start=t_start,
        t_end=t_start + window_s,
        tests=pd.DataFrame(test_rows),
    )


def _why_no_windows(dataset: Dataset, clean: pd.DataFrame, required: tuple[str, ...],
                    n_gap_windows: int, window_s: int) -> str:
    """The main reason why a dataset gave no window, for the error message."""
    m = dataset.measures
    n = len(m)
    lost = f"{n - len(clean):,} of {n:,} breath rows lost" if len(clean) else \
        f"all {n:,} breath rows lost"
    if len(clean) < n:
        lost += f": {_worst_column(m, required)}"
    if clean.empty:
        return lost
    spans = clean.groupby("ID_test")["time"].agg(lambda t: t.max() - t.min())
    if n_gap_windows == 0:
        why = (f"every test is shorter than one {window_s} s window after cleaning (the "
               f"longest spans {spans.max():.0f} s)")
    else:
        steps = clean.groupby("ID_test")["time"].diff()
        why = (f"all {n_gap_windows:,} windows span a gap of over {MAX_GAP_S:g} s between "
               f"usable breaths (median step {steps.median():.3g} s, longest "
               f"{steps.max():,.0f} s)")
    return f"{why}; {lost}" if len(clean) < n else why


def _worst_column(m: pd.DataFrame, required: tuple[str, ...]) -> str:
    """The required signal that made the most rows unusable, and why."""
    cleaned = reject_rolling_outliers(apply_plausibility_limits(m, DataReport()), DataReport())
    col = max(required, key=lambda c: int(cleaned[c].isna().sum()))
    lo, hi = PLAUSIBLE.get(col, (-np.inf, np.inf))
    n_missing = int(m[col].isna().sum())
    n_outside = int(((m[col] < lo) | (m[col] > hi)).sum())
    n_outliers = int(cleaned[col].isna().sum()) - n_missing - n_outside
    parts = []
    if n_missing:
        parts.append(f"{col} missing in {n_missing:,} row(s)")
    if n_outside:
        n_zero = int((m[col] == 0).sum())
        hint = f" (HR 0 in {n_zero:,}: no heart-rate strap?)" if col == "HR" and n_zero else ""
        parts.append(f"{col} outside {lo:g}..{hi:g} in {n_outside:,} row(s){hint}")
    if n_outliers > 0:
        parts.append(f"{col} far from its neighbours (outlier) in {n_outliers:,} row(s)")
    return ", ".join(parts)


def prepare_windows(data_dir: Path, with_labels: bool = True) -> tuple[Dataset, Windows]:
    """Load, validate, clean and window a data directory; log the data report once."""
    dataset = load_dataset(Path(data_dir), require_labels=with_labels)
    windows = make_windows(dataset, with_labels=with_labels)
    dataset.report.emit()
    return dataset, windows
