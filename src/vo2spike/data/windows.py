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

#: Model inputs per time step, in this order (static ones repeated over time). The last two
#: say whether RR and VE were measured (1) or are absent (0, the channel then holds
#: :data:`ABSENT_FILL`): one network serves every input set of :data:`INPUT_SETS`.
CHANNELS = ["Speed", "HR", "RR", "VE", "Age", "Weight", "Height", "Sex",
            "RR_present", "VE_present"]
DYNAMIC = ["Speed", "HR", "RR", "VE"]
#: Signals a wearable may lack, each with its presence channel.
OPTIONAL = {"RR": "RR_present", "VE": "VE_present"}
#: What an absent signal's channel holds (raw units: breaths/min, L/min): about the
#: simulated training cohort's mean (35.6, 65.6), so that it standardises to about 0.
ABSENT_FILL = {"RR": 35.0, "VE": 65.0}
#: Input sets by name (the measured signals; age, weight, height and sex are in every one):
#: a watch (speed + heart rate), a watch with a breathing-rate estimate, the lab (mask).
INPUT_SETS = {
    "speed,hr": ("Speed", "HR"),
    "speed,hr,rr": ("Speed", "HR", "RR"),
    "speed,hr,rr,ve": ("Speed", "HR", "RR", "VE"),
}
FULL_INPUT_SET = "speed,hr,rr,ve"
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


def check_input_set(name: str) -> str:
    """``name`` if it is an input set of :data:`INPUT_SETS` (order-insensitive, e.g.
    ``hr,speed``), in its canonical spelling; ValueError naming the choices otherwise."""
    wanted = {p.strip().lower() for p in str(name).split(",") if p.strip()}
    for key, signals in INPUT_SETS.items():
        if wanted == {c.lower() for c in signals}:
            return key
    raise ValueError(f"unknown input set {name!r}; choose from {', '.join(INPUT_SETS)}")


def _make_absent(x: np.ndarray, rows: np.ndarray | slice, signals: tuple[str, ...]) -> None:
    """In place: the optional signals outside ``signals`` of windows ``rows`` of raw x
    (N, C, T) hold ABSENT_FILL and their presence channel 0."""
    for sig, flag in OPTIONAL.items():
        if sig not in signals:
            x[rows, CHANNELS.index(sig)] = ABSENT_FILL[sig]
            x[rows, CHANNELS.index(flag)] = 0.0


def with_input_set(x: np.ndarray, input_set: str) -> np.ndarray:
    """Raw windows (N, C, T) as a wearable with ``input_set`` would give them: a copy in
    which every optional signal outside the set holds ABSENT_FILL and its presence
    channel 0. Raises ValueError if a window lacks a signal the set needs."""
    signals = INPUT_SETS[check_input_set(input_set)]
    for sig, flag in OPTIONAL.items():
        lacking = int((~(x[:, CHANNELS.index(flag), 0] > 0.5)).sum()) if sig in signals else 0
        if lacking:
            raise ValueError(f"input set {input_set}: {lacking} window(s) have no {sig}")
    x = np.array(x, dtype=np.float32, copy=True)
    _make_absent(x, slice(None), signals)
    return x


def mixed_input_sets(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Raw windows (N, C, T) each seen with an input set drawn uniformly (seeded; a window
    keeps a signal only if it has it): e.g. int8 calibration windows that cover every set."""
    drawn = np.random.default_rng(seed).integers(0, len(INPUT_SETS), len(x))
    out = np.array(x, dtype=np.float32, copy=True)
    for i, signals in enumerate(INPUT_SETS.values()):
        _make_absent(out, drawn == i, signals)
    return out


def input_sets_of(x: np.ndarray) -> np.ndarray:
    """The input set (name) of each raw window (N, C, T), read from its presence channels."""
    rr = x[:, CHANNELS.index("RR_present"), 0] > 0.5
    ve = x[:, CHANNELS.index("VE_present"), 0] > 0.5
    # make_windows never gives VE without RR (there is no speed,hr,ve set)
    return np.where(ve & rr, "speed,hr,rr,ve",
                    np.where(rr, "speed,hr,rr", "speed,hr")).astype(object)


def window_starts(n_seconds: int, window_s: int = WINDOW_S, stride_s: int = STRIDE_S) -> np.ndarray:
    """Start indices of all windows of ``window_s`` samples with ``stride_s`` stride."""
    if n_seconds < window_s:
        return np.zeros(0, dtype=int)
    return np.arange(0, n_seconds - window_s + 1, stride_s)


@dataclass
class Windows:
    """Windows of one or more tests.

    x: (N, 10, window_s) inputs in raw units (CHANNELS order); vo2: (N,) window mean VO2
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
    input_set: str | None = None,
) -> Windows:
    """Clean, resample to 1 Hz and window every test of a dataset.

    With labels, rows missing VO2, VCO2 or HR are dropped and windows carry VO2 targets;
    without, only HR is required. RR and VE are optional per test: a test with no value
    of one (the column absent or empty: a watch) gets it as absent (ABSENT_FILL, presence
    channel 0); a test that has VE drops the rows missing it (RR is interpolated over the
    rows missing it, as the other inputs are). VE without RR is used as
    absent too (there is no speed,hr,ve input set; said in the report). ``input_set``: the
    optional signals outside that set are treated as absent from every test. Windows that
    touch a gap are dropped (counted).
    """
    report = dataset.report
    base = ("VO2", "VCO2", "HR") if with_labels else ("HR",)
    source = Path(dataset.source["path"]) / MEASURE_FILE if "path" in dataset.source else None
    measures = dataset.measures
    if input_set is not None:
        signals = INPUT_SETS[check_input_set(input_set)]
        measures = measures.copy()
        for sig in OPTIONAL:
            if sig not in signals:
                measures[sig] = np.nan
    clean = _clean_by_input_set(measures, report, base, source)
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
        present = {sig: bool(test[sig].notna().any()) for sig in OPTIONAL}
        for sig in OPTIONAL:
            if not present[sig]:
                hz[sig] = ABSENT_FILL[sig]
        dyn = np.stack([hz[c].to_numpy() for c in DYNAMIC])  # (4, T)
        static = np.array([s["Age"], s["Weight"], s["Height"], s["Sex"]]
                          + [float(present[sig]) for sig in OPTIONAL], dtype=float)
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
        required = base + (("VE",) if dataset.measures["VE"].notna().any() else ())
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


def _clean_by_input_set(measures: pd.DataFrame, report: DataReport, base: tuple[str, ...],
                        source: Path | None) -> pd.DataFrame:
    """Clean the tests with VE requiring ``base`` and VE, the others requiring ``base``; a
    test's absent signals are left empty (NaN)."""
    m = measures.copy()
    has = {sig: m[sig].notna().groupby(m["ID_test"]).transform("any") for sig in OPTIONAL}
    ve_alone = has["VE"] & ~has["RR"]
    if ve_alone.any():
        tests = sorted(m.loc[ve_alone, "ID_test"].astype(str).unique())
        report.add("tests_ve_without_rr", len(tests),
                   f"{source or 'data'}: {len(tests)} test(s) have VE but no RR "
                   f"({', '.join(tests[:5])}{' ...' if len(tests) > 5 else ''}): VE is used "
                   "only with RR (input sets: " + ", ".join(INPUT_SETS) + "); predicted "
                   "from speed and heart rate")
        m.loc[ve_alone, "VE"] = np.nan
        has["VE"] = has["VE"] & ~ve_alone
    parts = []
    for ve in (True, False):  # RR is never required: a missing breath's RR is interpolated
        group = m[has["VE"] == ve]
        if len(group):
            required = base + (("VE",) if ve else ())
            parts.append(clean_measures(group, report, required, source=source))
    if not parts:
        return clean_measures(m, report, base, source=source)
    return pd.concat(parts, ignore_index=True).sort_values(["ID_test", "time"], kind="stable")


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


def prepare_windows(data_dir: Path, with_labels: bool = True,
                    input_set: str | None = None) -> tuple[Dataset, Windows]:
    """Load, validate, clean and window a data directory (``input_set``: see
    :func:`make_windows`); log the data report once."""
    dataset = load_dataset(Path(data_dir), require_labels=with_labels)
    windows = make_windows(dataset, with_labels=with_labels, input_set=input_set)
    dataset.report.emit()
    return dataset, windows
