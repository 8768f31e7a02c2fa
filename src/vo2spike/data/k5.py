"""Readers for COSMED K5 breath-by-breath CSV exports and the Yo-Yo data set's layout.

A K5 export has two header lines (column names, then units) and dozens of columns; the
ones used here are ``t`` (s), ``Rf`` (breaths/min), ``VE`` (L/min), ``VO2`` and ``VCO2``
(mL/min), ``HR`` (bpm, 0 when no strap is paired) and ``GPS Speed`` (km/h).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vo2spike.data.read import DataError, read_csv_as_text, require_columns, to_number

#: K5 column -> canonical (PhysioNet-format) column.
K5_COLUMNS = {"t": "time", "GPS Speed": "Speed", "HR": "HR", "VO2": "VO2", "VCO2": "VCO2",
              "Rf": "RR", "VE": "VE"}
K5_REQUIRED = ["t", "Rf", "VE", "VO2", "VCO2"]


def _seconds(text: pd.Series, path: Path) -> pd.Series:
    """``t`` as seconds: plain numbers, or ``h:mm:ss`` / ``mm:ss`` clock times."""
    if text.str.contains(":").any():
        parts = text.str.strip().str.split(":")
        try:
            return parts.map(lambda p: sum(float(x) * 60 ** i for i, x in enumerate(p[::-1])))
        except ValueError as e:
            raise DataError(f"{path}: column 't': unreadable time value ({e})") from e
    return pd.Series(dtype=float)


def read_k5_csv(path: Path) -> pd.DataFrame:
    """Read a K5 export into canonical columns: time (s), Speed (km/h), HR (bpm), VO2, VCO2
    (mL/min), RR (breaths/min), VE (L/min). Missing HR / GPS Speed columns become NaN;
    HR of 0 (no strap) is kept for the cleaning step to count."""
    path = Path(path)
    raw = read_csv_as_text(path, skiprows=[1])  # line 2 holds the units
    require_columns(raw, K5_REQUIRED, path)
    if raw.empty:
        raise DataError(f"{path}: no breath rows after the two header lines")
    out = pd.DataFrame(index=raw.index)
    clock = _seconds(raw["t"], path)
    out["time"] = clock if len(clock) else to_number(raw, "t", path, allow_missing=False,
                                                     first_line=3)
    for k5, col in K5_COLUMNS.items():
        if k5 == "t":
            continue
        out[col] = to_number(raw, k5, path, allow_missing=True, first_line=3) if k5 in raw \
            else np.nan
    return out[["time", "Speed", "HR", "VO2", "VCO2", "RR", "VE"]]


@dataclass
class YoYoSession:
    """One Yo-Yo test session: breaths of the whole recording plus its metadata."""

    person: str  # e.g. D05
    round: int  # 1 or 2
    breaths: pd.DataFrame
    start_s: float
    end_s: float
    has_hr: bool
    age: float
    sex: int  # 0 male, 1 female
    height_cm: float
    weight_kg: float
    note: str

    @property
    def id_test(self) -> str:
        """Test identifier in the canonical format, e.g. ``D05_1``."""
        return f"{self.person}_{self.round}"

    def test_period(self) -> pd.DataFrame:
        """Breaths between the Yo-Yo test's start and end."""
        t = self.breaths["time"]
        return self.breaths[(t >= self.start_s) & (t <= self.end_s)]


def read_yoyo(root: Path) -> list[YoYoSession]:
    """Read every session listed in ``FirstRound/Metadata_1.csv`` and
    ``SecondRound/Metadata_2.csv`` under ``root``."""
    root = Path(root)
    sessions = []
    for rnd, folder in [(1, "FirstRound"), (2, "SecondRound")]:
        meta_path = root / folder / f"Metadata_{rnd}.csv"
        if not meta_path.is_file():
            raise DataError(f"{meta_path}: file not found (is {root} the Yo-Yo data set?)")
        meta = pd.read_csv(meta_path, encoding="latin-1")
        need = ["ID", "Gender", "Age", "Height (cm)", "Weight (kg)", "COSMED File Name",
                "Heart Rate Included?", "YoYo Test Start Time", "YoYo Test End Time"]
        require_columns(meta, need, meta_path)
        for i, row in meta.iterrows():
            gender = str(row["Gender"]).strip().lower()
            if gender not in ("male", "female"):
                raise DataError(f"{meta_path}: line {i + 2}, column 'Gender': {row['Gender']!r}")
            sessions.append(YoYoSession(
                person=str(row["ID"]), round=rnd,
                breaths=read_k5_csv(root / folder / str(row["ID"]) / row["COSMED File Name"]),
                start_s=float(row["YoYo Test Start Time"]),
                end_s=float(row["YoYo Test End Time"]),
                has_hr=bool(int(row["Heart Rate Included?"])),
                age=float(row["Age"]), sex=int(gender == "female"),
                height_cm=float(row["Height (cm)"]), weight_kg=float(row["Weight (kg)"]),
                note="" if pd.isna(row.get("Note")) else str(row.get("Note")),
            ))
    return sessions
