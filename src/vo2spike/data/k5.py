"""Readers for COSMED K5 breath-by-breath CSV exports and the Yo-Yo data set's layout.

A K5 export has two header lines (column names, then units) and dozens of columns; the
ones used here are ``t`` (s), ``Rf`` (breaths/min), ``VE`` (L/min), ``VO2`` and ``VCO2``
(mL/min), ``HR`` (bpm, 0 when no strap is paired) and ``GPS Speed`` (km/h).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vo2spike.data.read import (
    MEASURE_COLUMNS,
    MEASURE_FILE,
    SIGNALS,
    SOURCE_MARKER,
    SUBJECT_COLUMNS,
    SUBJECT_FILE,
    DataError,
    read_csv_as_text,
    require_columns,
    to_number,
)
from vo2spike.outputs import atomic_dir

log = logging.getLogger("vo2spike")

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
    return out[["time", *SIGNALS]]


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
    humidity: float  # %
    temperature: float  # deg C
    note: str

    @property
    def id_test(self) -> str:
        """Test identifier in the canonical format, e.g. ``D05_1``."""
        return f"{self.person}_{self.round}"

    def test_period(self) -> pd.DataFrame:
        """Breaths between the Yo-Yo test's start and end."""
        t = self.breaths["time"]
        return self.breaths[(t >= self.start_s) & (t <= self.end_s)]


def _column(df: pd.DataFrame, prefix: str) -> str:
    """The column whose name starts with ``prefix`` (the metadata's unit signs are
    mis-encoded in the shipped files, e.g. the degree sign of 'Ambient Temperature')."""
    return next(c for c in df.columns if c.startswith(prefix))


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
                humidity=float(row[_column(meta, "Ambient Relative Humidity")]),
                temperature=float(row[_column(meta, "Ambient Temperature")]),
                note="" if pd.isna(row.get("Note")) else str(row.get("Note")),
            ))
    return sessions


_TRUE_START = re.compile(r"true start time is (\d+(?:\.\d+)?)", re.IGNORECASE)


def session_start(s: YoYoSession) -> float:
    """The test's start (s), honouring a metadata note that corrects it."""
    m = _TRUE_START.search(s.note)
    return float(m.group(1)) if m else s.start_s


def _canonical(breaths: pd.DataFrame, person: str, id_test: str) -> pd.DataFrame:
    out = breaths.copy()
    out["ID"], out["ID_test"] = person, id_test
    return out[MEASURE_COLUMNS]


def _write_canonical(out: Path, subjects: list[dict], measures: list[pd.DataFrame],
                     provenance: dict, force: bool, inputs: list[Path]) -> None:
    if not subjects:
        raise DataError("no session left to write (every session was skipped)")
    with atomic_dir(Path(out), force=force, kind="converted", inputs=inputs) as tmp:
        pd.DataFrame(subjects)[SUBJECT_COLUMNS].to_csv(tmp / SUBJECT_FILE, index=False)
        pd.concat(measures, ignore_index=True).to_csv(tmp / MEASURE_FILE, index=False)
        (tmp / SOURCE_MARKER).write_text(json.dumps(provenance, indent=2) + "\n")


def convert_yoyo(root: Path, out: Path, before_s: float = 60.0, after_s: float = 120.0,
                 force: bool = False) -> dict:
    """Write the Yo-Yo sessions as a canonical data directory.

    Each session keeps the Yo-Yo test period from ``before_s`` before its start to
    ``after_s`` after its end (K5 time base). Sessions without heart rate are reported and
    skipped. Returns {"written": [...], "skipped": {id_test: reason}}.
    """
    subjects, measures, written, skipped = [], [], [], {}
    for s in read_yoyo(root):
        if not s.has_hr:
            skipped[s.id_test] = "no heart rate (Heart Rate Included? = 0)"
            log.warning("%s: skipped, no heart rate recorded", s.id_test)
            continue
        t = s.breaths["time"]
        period = s.breaths[(t >= session_start(s) - before_s) & (t <= s.end_s + after_s)]
        measures.append(_canonical(period, s.person, s.id_test))
        subjects.append({"Age": s.age, "Weight": s.weight_kg, "Height": s.height_cm,
                         "Humidity": s.humidity, "Temperature": s.temperature, "Sex": s.sex,
                         "ID": s.person, "ID_test": s.id_test})
        written.append(s.id_test)
    _write_canonical(out, subjects, measures, {
        "kind": "real: Oxford NIL Yo-Yo test recordings (COSMED K5, Polar H10, GPS)",
        "source": str(root), "window": f"test start - {before_s:g} s to end + {after_s:g} s",
        "written": written, "skipped": skipped}, force, [Path(root)])
    return {"written": written, "skipped": skipped}


def convert_k5(files: list[Path], subjects_csv: Path, out: Path, force: bool = False) -> dict:
    """Write K5 exports as a canonical data directory.

    ``subjects_csv`` has one row per file: File (name of the export), ID, Age, Weight (kg),
    Height (cm), Sex (0/1 or M/F). Files whose HR is all zero or missing are skipped.
    """
    subjects_csv = Path(subjects_csv)
    table = read_csv_as_text(subjects_csv)
    require_columns(table, ["File", "ID", "Age", "Weight", "Height", "Sex"], subjects_csv)
    table["File"] = table["File"].str.strip()
    subjects, measures, written, skipped = [], [], [], {}
    counts: dict[str, int] = {}
    for f in sorted(Path(p) for p in files):
        rows = table[table["File"] == f.name]
        if rows.empty:
            raise DataError(f"{subjects_csv}: no row with File = {f.name!r}")
        row = rows.iloc[0]
        person = row["ID"].strip()
        counts[person] = counts.get(person, 0) + 1
        id_test = f"{person}_{counts[person]}"
        breaths = read_k5_csv(f)
        if not (breaths["HR"].fillna(0) > 0).any():
            skipped[id_test] = f"{f.name}: no heart rate"
            log.warning("%s (%s): skipped, no heart rate recorded", f.name, id_test)
            continue
        measures.append(_canonical(breaths, person, id_test))
        subjects.append({"Age": row["Age"], "Weight": row["Weight"], "Height": row["Height"],
                         "Humidity": "", "Temperature": "", "Sex": row["Sex"],
                         "ID": person, "ID_test": id_test})
        written.append(id_test)
    _write_canonical(out, subjects, measures, {
        "kind": "real: COSMED K5 exports", "files": [str(f) for f in files],
        "written": written, "skipped": skipped}, force, [*map(Path, files), subjects_csv])
    return {"written": written, "skipped": skipped}
