"""Artefact cleaning for breath-by-breath recordings.

Artefacts never stop the pipeline: they become missing values, are counted per rule and
column, and reported. Two rules, applied in order within each test:

1. Physiological plausibility limits (``PLAUSIBLE``): a strap drop-out (HR 0), an absurd
   breath (VO2 over 10,000 mL/min), a negative speed.
2. Rolling-median outlier rejection: a breath further than ``k`` robust standard deviations
   (1.4826 x MAD over ``window`` breaths, floored at ``rel_floor`` x median) from the
   centred rolling median of its neighbours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vo2spike.data.read import DataReport

#: Plausible range per signal: (low, high), in the column's unit.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "Speed": (0.0, 30.0),  # km/h
    "HR": (30.0, 230.0),  # bpm
    "VO2": (50.0, 8000.0),  # mL/min
    "VCO2": (50.0, 9000.0),  # mL/min
    "RR": (3.0, 90.0),  # breaths/min
    "VE": (2.0, 300.0),  # L/min
}
MEDIAN_FILTERED = ["HR", "VO2", "VCO2", "VE", "RR"]


def _where(df: pd.DataFrame, bad: pd.Series, source: str | Path | None) -> tuple[str, str]:
    """Message prefix naming the file, and suffix naming the first bad row's line."""
    prefix = f"{source}: " if source is not None else ""
    if "line" not in df or not bad.any():
        return prefix, ""
    return prefix, f"; first at line {int(df.loc[bad, 'line'].min())}"


def apply_plausibility_limits(df: pd.DataFrame, report: DataReport, *,
                              source: str | Path | None = None) -> pd.DataFrame:
    """Set values outside ``PLAUSIBLE`` to NaN, counting them per column (messages name
    ``source`` and, when ``df`` has a ``line`` column, the first row's line)."""
    df = df.copy()
    for col, (lo, hi) in PLAUSIBLE.items():
        if col not in df:
            continue
        bad = (df[col] < lo) | (df[col] > hi)
        n = int(bad.sum())
        prefix, first = _where(df, bad, source) if n else ("", "")
        report.add(
            f"implausible_{col}",
            n,
            f"{prefix}{n} {col} value(s) outside {lo:g}..{hi:g} treated as missing "
            f"(artefacts{first})",
        )
        df.loc[bad, col] = np.nan
    return df


def reject_rolling_outliers(
    df: pd.DataFrame,
    report: DataReport,
    window: int = 9,
    k: float = 5.0,
    rel_floor: float = 0.25,
    *,
    source: str | Path | None = None,
) -> pd.DataFrame:
    """Set breaths far from their neighbours' rolling median to NaN (per test, per column)."""
    df = df.copy()
    groups = df.groupby("ID_test", sort=False)
    for col in MEDIAN_FILTERED:
        if col not in df or df[col].isna().all():
            continue
        med = groups[col].transform(
            lambda s: s.rolling(window, center=True, min_periods=3).median()
        )
        dev = (df[col] - med).abs()
        mad = dev.groupby(df["ID_test"], sort=False).transform(
            lambda s: s.rolling(window, center=True, min_periods=3).median()
        )
        limit = np.maximum(k * 1.4826 * mad, rel_floor * med.abs())
        bad = dev > limit
        n = int(bad.sum())
        prefix, first = _where(df, bad, source) if n else ("", "")
        report.add(
            f"outlier_{col}",
            n,
            f"{prefix}{n} {col} value(s) more than {k:g} robust SD from the {window}-breath "
            f"rolling median treated as missing (artefacts{first})",
        )
        df.loc[bad, col] = np.nan
    return df


def clean_measures(
    measures: pd.DataFrame, report: DataReport, required: tuple[str, ...], *,
    source: str | Path | None = None,
) -> pd.DataFrame:
    """Apply both artefact rules, then drop rows missing any ``required`` signal (messages
    name ``source``, the file the rows come from, when given)."""
    df = apply_plausibility_limits(measures, report, source=source)
    df = reject_rolling_outliers(df, report, source=source)
    missing = df[list(required)].isna().any(axis=1)
    n = int(missing.sum())
    prefix = f"{source}: " if source is not None else ""
    report.add(
        "rows_dropped_missing",
        n,
        f"{prefix}{n} of {len(df)} breath rows dropped: missing one of {', '.join(required)}",
    )
    return df.loc[~missing].reset_index(drop=True)
