"""Compare graded treadmill tests with the real Malaga cohort's aggregate curves.

``../shared/data/malaga-aggregates/`` holds the only view of the real Malaga measurements on
these machines: mean VO2 per kg, HR and RR over the graded test by quintile of the top speed
reached, end-of-test VO2 per kg per quintile, and how many tests are still running at each
time (its README). This module computes the same aggregates from any cohort in the
PhysioNet format (a simulated one, or the real ``test_measure.csv`` where it exists) and
scores one against the other.

Per test (breaths cleaned of implausible values, linearly resampled to 1 Hz):

- start: the first second at 4.5 km/h or more, or, when the test walks at 5 km/h before the
  speed rises (as the real one does), the last second at 5 km/h or less before it first
  exceeds 5 km/h: the later of the two. Time 0 of the real curves is 5 km/h, then rising.
- end: the last second at the top speed reached (before any recovery).
- top-speed quintile: edges from the cohort's own top speeds (equal fifths; ties broken by
  the test duration).
- curves on a 30 s grid from the start up to the end: VO2 per kg as a trailing 30 s mean
  (the averaging this project uses for VO2max, a usual peak-VO2 averaging; the real rolling
  window is not documented), HR and RR as the 1 Hz values (the real HR and RR curves are not
  smoothed per test).
- end-of-test VO2 per kg: the trailing 30 s mean at the end second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vo2spike.data.clean import apply_plausibility_limits
from vo2spike.data.read import DataError, DataReport, read_subject_info
from vo2spike.data.simulate import (
    CALIBRATIONS,
    FOUNDATION,
    Calibration,
    simulate_cohort,
    synthetic_demographics,
)

CURVES_FILE = "curves_by_max_speed_quintile.csv"
END_FILE = "end_of_test_vo2_by_max_speed_quintile.csv"
PROTOCOL_FILE = "protocol_and_tests_remaining.csv"
GRID_S = 30  # s, time step of the real aggregates
START_KMH = 4.5  # km/h: a test has started once the treadmill is at least this fast
WARMUP_KMH = 5.0  # km/h: the real graded test walks at 5 km/h before the speed rises
VO2_ROLLING_S = 10  # s, trailing mean of VO2 per kg (see the module docstring)
QUINTILES = (1, 2, 3, 4, 5)
#: signal -> (column in the curves file, label with unit)
SIGNALS = {
    "vo2": ("vo2_ml_per_kg_min", "VO2 (mL/kg/min)"),
    "hr": ("hr_bpm", "HR (bpm)"),
    "rr": ("rr_per_min", "RR (breaths/min)"),
}
#: A simulated curve point is compared only where at least this many tests still run.
MIN_TESTS_PER_POINT = 10


@dataclass
class Aggregates:
    """Aggregate curves of a cohort of graded tests (real or simulated).

    curves: quintile, time_s, vo2, hr, rr (means over the quintile's tests still running;
    NaN where not published) and n (tests behind the point; NaN for the real file).
    end_vo2: mean end-of-test VO2 per kg (mL/kg/min), indexed by quintile.
    remaining: time_s, remaining (fraction of the cohort's tests still running), speed_kmh.
    n_tests: tests in the cohort.
    """

    curves: pd.DataFrame
    end_vo2: pd.Series
    remaining: pd.DataFrame
    n_tests: int


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    """A CSV with the given numeric columns, or a DataError naming the file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (the Malaga aggregates need {path.name})")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: not a readable CSV ({e})") from e
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; "
                        f"expected {', '.join(columns)}")
    if df.empty:
        raise DataError(f"{path}: no rows")
    for c in columns:
        values = pd.to_numeric(df[c], errors="coerce")
        bad = values.isna() & df[c].notna()
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise DataError(f"{path}: line {line}, column '{c}': not a number "
                            f"({df[c][bad].iloc[0]!r})")
        df[c] = values
    return df[columns]


def _check_quintiles(df: pd.DataFrame, path: Path) -> None:
    q = df["max_speed_quintile"]
    if q.isna().any() or not set(q.astype(int)) <= set(QUINTILES) or (q % 1 != 0).any():
        raise DataError(f"{path}: column 'max_speed_quintile' must hold quintiles 1 to 5")


def read_aggregates(root: Path) -> Aggregates:
    """Read and validate the three real aggregate files of ``root``."""
    root = Path(root)
    cpath, epath, ppath = root / CURVES_FILE, root / END_FILE, root / PROTOCOL_FILE
    cols = [c for c, _ in SIGNALS.values()]
    curves = _read(cpath, ["max_speed_quintile", "time_s", *cols])
    _check_quintiles(curves, cpath)
    if (curves["time_s"] < 0).any() or curves["time_s"].isna().any():
        raise DataError(f"{cpath}: column 'time_s' must be seconds >= 0")
    if curves.duplicated(["max_speed_quintile", "time_s"]).any():
        raise DataError(f"{cpath}: repeated (max_speed_quintile, time_s) rows")
    end = _read(epath, ["max_speed_quintile", "vo2_ml_per_kg_min"])
    _check_quintiles(end, epath)
    if sorted(end["max_speed_quintile"].astype(int)) != list(QUINTILES):
        raise DataError(f"{epath}: needs one row per quintile 1 to 5")
    prot = _read(ppath, ["time_s", "speed_kmh", "tests_remaining"])
    n = prot["tests_remaining"].to_numpy()
    if np.isnan(n).any() or (n < 0).any() or (np.diff(n) > 0).any() or n[0] <= 0:
        raise DataError(f"{ppath}: column 'tests_remaining' must be counts that never rise")
    if (np.diff(prot["time_s"].to_numpy()) <= 0).any():
        raise DataError(f"{ppath}: column 'time_s' must increase")
    curves = curves.rename(columns={"max_speed_quintile": "quintile",
                                    **{c: k for k, (c, _) in SIGNALS.items()}})
    curves["quintile"] = curves["quintile"].astype(int)
    curves["n"] = np.nan
    end_vo2 = end.set_index(end["max_speed_quintile"].astype(int))["vo2_ml_per_kg_min"]
    end_vo2.index.name = "quintile"
    remaining = pd.DataFrame({"time_s": prot["time_s"],
                              "remaining": prot["tests_remaining"] / n[0],
                              "speed_kmh": prot["speed_kmh"]})
    return Aggregates(curves.sort_values(["quintile", "time_s"]).reset_index(drop=True),
                      end_vo2.sort_index(), remaining, int(n[0]))


def graded_start(speed: np.ndarray) -> int | None:
    """Index of the start of the graded part of a 1 Hz speed series (km/h), None if never
    at 4.5 km/h: the later of the first second at 4.5 km/h or more and, when the speed is
    at 5 km/h or less just before it first exceeds 5 km/h, that last second (the walking
    warm-up's end)."""
    on = np.flatnonzero(speed >= START_KMH - 1e-9)
    if len(on) == 0:
        return None
    start = int(on[0])
    above = np.flatnonzero(speed > WARMUP_KMH + 1e-6)
    if len(above) and above[0] > 0 and speed[above[0] - 1] <= WARMUP_KMH + 1e-6:
        start = max(start, int(above[0]) - 1)
    return start


def _interp(grid: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    ok = np.isfinite(v)
    return np.interp(grid, t[ok], v[ok]) if ok.sum() >= 2 else np.full(len(grid), np.nan)


def graded_test_features(measures: pd.DataFrame, weight_kg: float) -> dict | None:
    """Start, end, top speed, curves and end-of-test VO2 of one test (breath rows in the
    PhysioNet format, implausible values already NaN); None if it never reaches 4.5 km/h.
    Signals are linearly interpolated onto whole seconds, as ``resample_to_1hz`` does."""
    t = measures["time"].to_numpy(dtype=float)
    grid = np.arange(np.ceil(t.min()), np.floor(t.max()) + 1.0)
    speed = _interp(grid, t, measures["Speed"].to_numpy(dtype=float))
    start = graded_start(speed)
    if start is None:
        return None
    after = speed[start:]
    top = float(np.nanmax(after))
    end = start + int(np.flatnonzero(after >= top - 0.05)[-1])
    vo2 = _interp(grid, t, measures["VO2"].to_numpy(dtype=float)) / weight_kg
    c = np.concatenate([[0.0], np.cumsum(vo2)])
    i = np.arange(len(vo2))
    lo = np.maximum(i + 1 - VO2_ROLLING_S, 0)
    rolled = (c[i + 1] - c[lo]) / (i + 1 - lo)  # trailing mean, shorter at the start
    idx = np.arange(start, end + 1, GRID_S)
    curve = pd.DataFrame({"time_s": idx - start, "vo2": rolled[idx],
                          "hr": _interp(grid, t, measures["HR"].to_numpy(dtype=float))[idx],
                          "rr": _interp(grid, t, measures["RR"].to_numpy(dtype=float))[idx]})
    return {"top_speed": top, "duration_s": end - start, "end_vo2": float(rolled[end]),
            "curve": curve}


def cohort_aggregates(subjects: pd.DataFrame, measures: pd.DataFrame,
                      times: np.ndarray | None = None) -> tuple[Aggregates, pd.DataFrame]:
    """The real aggregates' statistics for a cohort in the PhysioNet format.

    Returns the aggregates and one row per test (ID_test, top_speed km/h, duration_s,
    end_vo2 mL/kg/min, quintile). ``times``: where to evaluate the fraction of tests still
    running (s; default the 30 s grid up to the longest test).
    """
    weight = subjects.set_index(subjects["ID_test"].astype(str))["Weight"]
    clean = apply_plausibility_limits(measures[["time", "Speed", "HR", "VO2", "RR"]],
                                      DataReport())
    rows, curves = [], []
    for test, g in clean.groupby(measures["ID_test"].astype(str), sort=False):
        f = graded_test_features(g, float(weight[test]))
        if f is None:
            continue
        rows.append({"ID_test": test, **{k: f[k] for k in ("top_speed", "duration_s",
                                                             "end_vo2")}})
        curves.append(f["curve"].assign(ID_test=test))
    if len(rows) < len(QUINTILES):
        raise ValueError(f"need at least {len(QUINTILES)} graded tests, got {len(rows)}")
    tests = pd.DataFrame(rows)
    key = tests["top_speed"] + 1e-6 * tests["duration_s"]
    tests["quintile"] = pd.qcut(key.rank(method="first"), 5, labels=list(QUINTILES)).astype(int)
    long = pd.concat(curves, ignore_index=True).merge(tests[["ID_test", "quintile"]])
    grouped = long.groupby(["quintile", "time_s"])
    agg = grouped[list(SIGNALS)].mean().join(grouped.size().rename("n")).reset_index()
    end_vo2 = tests.groupby("quintile")["end_vo2"].mean()
    if times is None:
        times = np.arange(0, tests["duration_s"].max() + GRID_S, GRID_S)
    dur = tests["duration_s"].to_numpy()
    remaining = pd.DataFrame({"time_s": times,
                              "remaining": [(dur >= t).mean() for t in times]})
    return Aggregates(agg, end_vo2, remaining, len(tests)), tests


@dataclass
class Comparison:
    """Simulated (or any) aggregates scored against the real ones: ``summary`` holds the
    headline numbers (end_vo2_mae, {signal}_rmse, {signal}_bias, remaining_max_diff, ...);
    ``by_quintile`` one row per quintile."""

    real: Aggregates
    sim: Aggregates
    tests: pd.DataFrame
    summary: dict
    by_quintile: pd.DataFrame


def compare(real: Aggregates, sim: Aggregates, tests: pd.DataFrame,
            min_tests: int = MIN_TESTS_PER_POINT) -> Comparison:
    """Score ``sim`` against ``real``: per quintile end-of-test VO2 (sim - real), curve RMSE
    and bias (sim - real, over the times both have, simulated points with at least
    ``min_tests`` tests: a mean of fewer is mostly breath noise), and the largest
    |difference| of the fraction of tests still running over the real time grid."""
    m = real.curves.merge(sim.curves[sim.curves["n"] >= min_tests],
                          on=["quintile", "time_s"], suffixes=("_real", "_sim"))
    summary: dict = {"n_tests": sim.n_tests, "min_tests": min_tests}
    per_q = pd.DataFrame({"real_end_vo2": real.end_vo2, "sim_end_vo2": sim.end_vo2})
    per_q["end_vo2_diff"] = per_q["sim_end_vo2"] - per_q["real_end_vo2"]
    per_q["sim_top_speed"] = tests.groupby("quintile")["top_speed"].mean()
    for k in SIGNALS:
        d = (m[f"{k}_sim"] - m[f"{k}_real"]).dropna()
        summary[f"{k}_rmse"] = float(np.sqrt((d ** 2).mean()))
        summary[f"{k}_bias"] = float(d.mean())
        summary[f"{k}_points"] = f"{len(d)}/{int(real.curves[k].notna().sum())}"
        dq = (m[f"{k}_sim"] - m[f"{k}_real"]).groupby(m["quintile"])
        per_q[f"{k}_rmse"] = dq.apply(lambda s: float(np.sqrt((s.dropna() ** 2).mean())))
        per_q[f"{k}_bias"] = dq.mean()
    summary["end_vo2_mae"] = float(per_q["end_vo2_diff"].abs().mean())
    summary["end_vo2_bias"] = float(per_q["end_vo2_diff"].mean())
    t = real.remaining["time_s"].to_numpy()
    dur = tests["duration_s"].to_numpy()
    sim_rem = np.array([(dur >= x).mean() for x in t])
    diff = sim_rem - real.remaining["remaining"].to_numpy()
    summary["remaining_max_diff"] = float(np.abs(diff).max())
    summary["remaining_worst_time_s"] = int(t[int(np.argmax(np.abs(diff)))])
    return Comparison(real, sim, tests, summary, per_q)


#: Targets of issue 10 (simulated vs real aggregates).
TARGETS = {"end_vo2_mae": 2.0, "vo2_rmse": 2.5, "hr_rmse": 5.0, "rr_rmse": 3.0,
           "remaining_max_diff": 0.05}


def comparison_table(comparisons: dict[str, Comparison]) -> str:
    """Markdown: end-of-test VO2 per quintile (REAL and each SIMULATED column), then the
    curve RMSE / bias and the tests-remaining difference per simulated cohort."""
    first = next(iter(comparisons.values()))
    names = list(comparisons)
    lines = ["| quintile of top speed | REAL end-of-test VO2 (mL/kg/min) | "
             + " | ".join(f"SIMULATED {n}" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for q in QUINTILES:
        cells = [f"{c.by_quintile.loc[q, 'sim_end_vo2']:.1f} "
                 f"({c.by_quintile.loc[q, 'end_vo2_diff']:+.1f})" for c in comparisons.values()]
        lines.append(f"| {q} | {first.real.end_vo2[q]:.1f} | " + " | ".join(cells) + " |")
    lines.append("| mean abs. difference (target ≤ 2) | | "
                 + " | ".join(f"{c.summary['end_vo2_mae']:.1f}" for c in comparisons.values())
                 + " |")
    lines += ["", "| SIMULATED minus REAL | target | " + " | ".join(names) + " |",
              "|---|---|" + "---|" * len(names)]
    rows = [("VO2 curve RMSE (mL/kg/min)", "vo2_rmse", "≤ 2.5"),
            ("VO2 curve bias (mL/kg/min)", "vo2_bias", ""),
            ("HR curve RMSE (bpm)", "hr_rmse", "≤ 5"),
            ("HR curve bias (bpm)", "hr_bias", ""),
            ("RR curve RMSE (breaths/min)", "rr_rmse", "≤ 3"),
            ("RR curve bias (breaths/min)", "rr_bias", ""),
            ("tests still running: max abs. difference (fraction)", "remaining_max_diff",
             "≤ 0.05")]
    for label, key, target in rows:
        cells = [f"{c.summary[key]:+.2f}" if "bias" in key else f"{c.summary[key]:.2f}"
                 for c in comparisons.values()]
        lines.append(f"| {label} | {target} | " + " | ".join(cells) + " |")
    lines.append("| curve points compared (VO2) | | "
                 + " | ".join(c.summary["vo2_points"] for c in comparisons.values()) + " |")
    return "\n".join(lines)


def comparison_plot(comparisons: dict[str, Comparison], path) -> None:
    """One row per simulated cohort: VO2, HR, RR by quintile and the fraction of tests still
    running, REAL (solid, dots) vs SIMULATED (dashed); end-of-test VO2 as squares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.cm.viridis(np.linspace(0, 0.9, len(QUINTILES)))
    fig, axes = plt.subplots(len(comparisons), 4, figsize=(15, 3.3 * len(comparisons)),
                             squeeze=False)
    for row, (name, c) in zip(axes, comparisons.items(), strict=True):
        for ax, (k, (_, label)) in zip(row[:3], SIGNALS.items(), strict=True):
            for q, col in zip(QUINTILES, colors, strict=True):
                r = c.real.curves[c.real.curves["quintile"] == q]
                s = c.sim.curves[(c.sim.curves["quintile"] == q)
                                 & (c.sim.curves["n"] >= c.summary["min_tests"])]
                ax.plot(r["time_s"], r[k], "o-", color=col, ms=2.5, lw=1.2,
                        label=f"Q{q} REAL" if k == "vo2" else None)
                ax.plot(s["time_s"], s[k], "--", color=col, lw=1.2)
                if k == "vo2":
                    tq = c.tests[c.tests["quintile"] == q]["duration_s"].mean()
                    ax.plot([tq], [c.sim.end_vo2[q]], "s", color=col, mfc="none", ms=6)
                    ax.axhline(c.real.end_vo2[q], color=col, lw=0.6, alpha=0.5)
            ax.set_title(f"{label}: {c.summary[k + '_rmse']:.1f} RMSE", fontsize=9)
            ax.set_xlabel("time from start of graded test (s)", fontsize=8)
        row[0].set_ylabel(f"SIMULATED {name}\n(dashed) vs REAL", fontsize=9)
        row[0].legend(fontsize=6, loc="lower right")
        rem = c.real.remaining
        dur = c.tests["duration_s"].to_numpy()
        t = np.arange(0, max(rem["time_s"].max(), dur.max()) + 1, 5)
        row[3].plot(rem["time_s"], rem["remaining"], "o-", color="k", ms=2.5, label="REAL")
        row[3].plot(t, [(dur >= x).mean() for x in t], "--", color="tab:red",
                    label="SIMULATED")
        row[3].set_title(f"tests still running: max diff {c.summary['remaining_max_diff']:.2f}",
                         fontsize=9)
        row[3].set_xlabel("time from start of graded test (s)", fontsize=8)
        row[3].legend(fontsize=7)
    fig.suptitle("Graded treadmill tests by quintile of top speed: SIMULATED (dashed) vs REAL "
                 "Malaga aggregates (solid); squares: simulated end-of-test VO2, "
                 "thin lines: real end-of-test VO2", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=55)
    plt.close(fig)


def simulated_comparison(real: Aggregates, demographics: pd.DataFrame,
                         calibration: Calibration = FOUNDATION, seed: int = 0) -> Comparison:
    """Simulate ``demographics`` (one ramp test per row) with ``calibration`` and score the
    cohort against the real aggregates."""
    subjects, measures, _ = simulate_cohort(demographics, protocol="ramp", seed=seed,
                                            calibration=calibration)
    sim, tests = cohort_aggregates(subjects, measures)
    return compare(real, sim, tests)


def malaga_comparison(root: Path, calibration: Calibration = FOUNDATION,
                      demographics_csv: Path | None = None, n_tests: int | None = None,
                      seed: int = 0) -> Comparison:
    """The Malaga comparison of a simulated ramp cohort: the real demographics of
    ``demographics_csv`` (first ``n_tests`` rows) or, without it, ``n_tests`` (default 992)
    synthetic Malaga-like tests."""
    real = read_aggregates(root)
    if demographics_csv is not None:
        demo = read_subject_info(Path(demographics_csv))
        demo["ID"] = demo["ID"].astype(str)
        demo = demo.iloc[:n_tests] if n_tests else demo
    else:
        demo = synthetic_demographics(n_tests or 992, np.random.default_rng([seed, 10**6]))
    return simulated_comparison(real, demo, calibration, seed)


def malaga_comparisons(root: Path, demographics_csv: Path | None = None, seed: int = 0,
                       calibrations: list[Calibration] | None = None) -> dict[str, Comparison]:
    """The Malaga comparison of every calibration (default: all of ``CALIBRATIONS``), each a
    ramp cohort of the same demographics and seed."""
    real = read_aggregates(root)
    if demographics_csv is not None:
        demo = read_subject_info(Path(demographics_csv))
        demo["ID"] = demo["ID"].astype(str)
    else:
        demo = synthetic_demographics(992, np.random.default_rng([seed, 10**6]))
    return {c.name: simulated_comparison(real, demo, c, seed)
            for c in (calibrations or list(CALIBRATIONS.values()))}


def malaga_report(comparisons: dict[str, Comparison], root, demographics_csv, seed: int) -> str:
    """Markdown: what was compared, the end-of-test and curve tables."""
    first = next(iter(comparisons.values()))
    who = (f"the {first.sim.n_tests} real Malaga demographics of `{demographics_csv}`"
           if demographics_csv else f"{first.sim.n_tests} synthetic Malaga-like tests")
    return (f"REAL: the Malaga aggregates of `{root}` ({first.real.n_tests} graded treadmill "
            f"tests). SIMULATED: `simulate --protocol ramp` with each calibration, {who}, "
            f"seed {seed}. Quintiles of the top speed, edges from each cohort's own top speeds; "
            f"time 0 = start of the graded test (5 km/h, then +1 km/h per minute); VO2 per kg "
            f"as a trailing {VO2_ROLLING_S} s mean; curves compared where at least "
            f"{MIN_TESTS_PER_POINT} simulated tests still run.\n\n"
            + comparison_table(comparisons) + "\n")
