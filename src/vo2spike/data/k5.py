"""Readers for COSMED K5 breath-by-breath CSV exports and the Yo-Yo data set's layout.

A K5 export has two header lines (column names, then units) and dozens of columns; the
ones used here are ``t`` (s), ``Rf`` (breaths/min), ``VE`` (L/min), ``VO2`` and ``VCO2``
(mL/min), ``HR`` (bpm, 0 when no strap is paired) and ``GPS Speed`` (km/h). The unit line
is read and checked: other units are converted when unambiguous (``K5_UNITS``), rejected
otherwise.
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
    SUBJECT_RANGES,
    DataError,
    DataReport,
    check_range,
    read_csv_table,
    require_columns,
    require_text,
    sex_codes,
    to_number,
)
from vo2spike.outputs import atomic_dir

log = logging.getLogger("vo2spike")

#: K5 column -> canonical (PhysioNet-format) column.
K5_COLUMNS = {"t": "time", "GPS Speed": "Speed", "HR": "HR", "VO2": "VO2", "VCO2": "VCO2",
              "Rf": "RR", "VE": "VE"}
K5_REQUIRED = ["t", "Rf", "VE", "VO2", "VCO2"]
#: Clock-time unit of ``t`` (values such as ``0:12:05``).
CLOCK = "clock"
#: Accepted units of the used K5 columns (matched ignoring case and blanks) and the factor
#: to the canonical unit (s, km/h, bpm, mL/min, breaths/min, L/min); the first is canonical.
K5_UNITS: dict[str, dict[str, float | str]] = {
    "t": {"s": 1.0, "sec": 1.0, "ms": 0.001, "min": 60.0,
          "hh:mm:ss": CLOCK, "h:mm:ss": CLOCK, "mm:ss": CLOCK},
    "Rf": {"1/min": 1.0, "/min": 1.0, "min-1": 1.0, "b/min": 1.0, "br/min": 1.0,
           "breaths/min": 1.0, "bpm": 1.0},
    "VE": {"L/min": 1.0, "L/min (BTPS)": 1.0, "mL/min": 0.001},
    "VO2": {"mL/min": 1.0, "mL/min (STPD)": 1.0, "L/min": 1000.0, "L/min (STPD)": 1000.0},
    "VCO2": {"mL/min": 1.0, "mL/min (STPD)": 1.0, "L/min": 1000.0, "L/min (STPD)": 1000.0},
    "HR": {"bpm": 1.0, "1/min": 1.0, "/min": 1.0, "b/min": 1.0, "beats/min": 1.0,
           "min-1": 1.0},
    "GPS Speed": {"km/h": 1.0, "kmh": 1.0, "kph": 1.0, "m/s": 3.6, "mph": 1.609344},
}
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|\d+(:\d+(\.\d*)?)+")


def _unit_key(unit: str) -> str:
    return re.sub(r"\s+", "", unit).lower()


def _units(row: pd.Series, path: Path, line: int) -> dict[str, float | str]:
    """Factor (or ``CLOCK``) per used column from the unit line; a unit line that holds
    numbers (a data row: the unit line is missing) or an unknown unit is fatal."""
    used = [c for c in row.index if c in K5_COLUMNS]  # in file order
    cells = {c: str(row[c]).strip() for c in used}
    numeric = [c for c in used if _NUMBER.fullmatch(cells[c])]
    if numeric:
        shown = ", ".join(f"{c} = {cells[c]!r}" for c in numeric[:3])
        raise DataError(
            f"{path}: line {line}: the unit line is missing: line {line} holds numbers "
            f"({shown}) where a K5 export has the units (e.g. 'mL/min' under VO2)"
        )
    factors = {}
    for c in used:
        accepted = {_unit_key(u): f for u, f in K5_UNITS[c].items()}
        if _unit_key(cells[c]) not in accepted:
            found = repr(cells[c]) if cells[c] else "no unit"
            raise DataError(
                f"{path}: line {line}, column '{c}': {found} is not a unit this reader knows "
                f"for {c} (accepted, in any case: {', '.join(K5_UNITS[c])})"
            )
        factors[c] = accepted[_unit_key(cells[c])]
        if factors[c] != 1.0:
            log.info("%s: column %s in %s converted to %s", path, c, cells[c],
                     next(iter(K5_UNITS[c])))
    return factors


def _clock_seconds(text: pd.Series, path: Path, lines: np.ndarray) -> pd.Series:
    """``t`` given as ``h:mm:ss`` / ``mm:ss`` clock times (or plain seconds) as seconds."""
    out = np.empty(len(text))
    for i, value in enumerate(text.str.strip()):
        parts = value.split(":")
        try:
            if len(parts) > 3:
                raise ValueError(value)
            out[i] = sum(float(x) * 60 ** k for k, x in enumerate(parts[::-1]))
        except ValueError:
            out[i] = np.nan
        if not np.isfinite(out[i]):
            what = "value is missing" if not value else f"{value!r} is not a time (h:mm:ss or s)"
            raise DataError(f"{path}: line {int(lines[i])}, column 't': {what}")
    return pd.Series(out, index=text.index)


def read_k5_csv(path: Path, *, report: DataReport | None = None) -> pd.DataFrame:
    """Read a K5 export into canonical columns: time (s), Speed (km/h), HR (bpm), VO2, VCO2
    (mL/min), RR (breaths/min), VE (L/min). Missing HR / GPS Speed columns become NaN;
    HR of 0 (no strap) is kept for the cleaning step to count.

    Line 2 must hold the units (checked; converted when unambiguous). A last row cut off
    (fewer cells than the header, or a used last column in a file without a final line
    break) is dropped with a warning added to ``report`` (logged if no report is given).
    A file that is not UTF-8 is read as Latin-1, with a warning: every used cell must still
    be a number, so nothing is garbled silently.
    """
    path = Path(path)
    own = report if report is not None else DataReport()
    table = read_csv_table(path, fallback_encoding="latin-1", unique=list(K5_COLUMNS),
                           cut_off="drop")
    raw, lines = table.frame, table.lines
    require_columns(raw, K5_REQUIRED, path)
    if table.encoding != "utf-8":
        own.add("k5_files_not_utf8", 1,
                f"{path}: not UTF-8 text; read as {table.encoding} (only its text cells, not "
                "the numbers used, can be affected)")
    if raw.empty:
        raise DataError(f"{path}: line 2: the unit line is missing, and there are no breath "
                        f"rows after the column names (line {table.header_line})")
    unit_line = int(lines[0])
    factors = _units(raw.iloc[0], path, unit_line)
    raw, lines = raw.iloc[1:].reset_index(drop=True), lines[1:]
    raw_units = {c: str(v).strip() for c, v in table.frame.iloc[0].items()}
    cut = table.cut_off_line
    if cut is None and not table.ends_with_newline and raw.columns[-1] in K5_COLUMNS \
            and len(raw):
        cut = int(lines[-1])  # its last cell, a used number, may be incomplete
        raw, lines = raw.iloc[:-1], lines[:-1]
    if cut is not None:
        own.add("k5_rows_cut_off", 1,
                f"{path}: line {cut}: the last row is cut off (the file ends inside it); "
                "dropped")
    if raw.empty:
        raise DataError(f"{path}: no breath rows after the two header lines")
    out = pd.DataFrame(index=raw.index)
    if factors["t"] == CLOCK or raw["t"].str.contains(":").any():
        if factors["t"] not in (CLOCK, 1.0):
            raise DataError(f"{path}: line {unit_line}, column 't': {raw_units['t']!r} is not "
                            "the unit of clock times (h:mm:ss), which the values are")
        out["time"] = _clock_seconds(raw["t"], path, lines)
    else:
        out["time"] = to_number(raw, "t", path, allow_missing=False, lines=lines)
        if factors["t"] != 1.0:
            out["time"] = out["time"] * factors["t"]
    for k5, col in K5_COLUMNS.items():
        if k5 == "t":
            continue
        if k5 not in raw:
            out[col] = np.nan
            continue
        out[col] = to_number(raw, k5, path, allow_missing=True, lines=lines)
        if factors[k5] != 1.0:
            out[col] = out[col] * factors[k5]
    if report is None:
        own.emit()
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


#: Columns of the Yo-Yo metadata files read here (humidity and temperature are found by
#: prefix: their unit signs are mis-encoded in the shipped files).
YOYO_META_COLUMNS = ["ID", "Gender", "Age", "Height (cm)", "Weight (kg)", "COSMED File Name",
                     "Heart Rate Included?", "YoYo Test Start Time", "YoYo Test End Time"]
_YOYO_META_PREFIXES = ["Ambient Relative Humidity", "Ambient Temperature"]


def _column(df: pd.DataFrame, prefix: str, path: Path | None = None) -> str:
    """The column whose name starts with ``prefix`` (the metadata's unit signs are
    mis-encoded in the shipped files, e.g. the degree sign of 'Ambient Temperature')."""
    found = [c for c in df.columns if c.startswith(prefix)]
    if len(found) != 1:
        what = "no column" if not found else f"{len(found)} columns"
        raise DataError(f"{path}: line 1: {what} named '{prefix} ...' (found: "
                        f"{', '.join(df.columns)})")
    return found[0]


def read_yoyo(root: Path, *, report: DataReport | None = None) -> list[YoYoSession]:
    """Read every session listed in ``FirstRound/Metadata_1.csv`` and
    ``SecondRound/Metadata_2.csv`` under ``root``.

    Every metadata cell used is validated (file, line and column named on error); a K5
    file named in the metadata must exist. Warnings from the K5 files go to ``report``
    (logged if no report is given)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory (expected the Yo-Yo data set: FirstRound/, "
                        "SecondRound/)")
    own = report if report is not None else DataReport()
    sessions = []
    for rnd, folder in [(1, "FirstRound"), (2, "SecondRound")]:
        meta_path = root / folder / f"Metadata_{rnd}.csv"
        if not meta_path.is_file():
            raise DataError(f"{meta_path}: file not found (is {root} the Yo-Yo data set?)")
        sessions += _read_yoyo_round(root / folder, rnd, meta_path, own)
    if report is None:
        own.emit()
    return sessions


def _read_yoyo_round(folder: Path, rnd: int, meta_path: Path,
                     report: DataReport) -> list[YoYoSession]:
    table = read_csv_table(meta_path, encoding="latin-1", unique=YOYO_META_COLUMNS)
    meta, lines = table.frame, table.lines
    require_columns(meta, YOYO_META_COLUMNS, meta_path)
    if meta.empty:
        raise DataError(f"{meta_path}: no sessions listed (only the header line)")

    def number(col: str, allow_missing: bool = False) -> pd.Series:
        return to_number(meta, col, meta_path, allow_missing=allow_missing, lines=lines)

    ids = require_text(meta, "ID", meta_path, lines=lines)
    dup = ids.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"{meta_path}: line {lines[i]}, column 'ID': {ids.iloc[i]!r} is "
                        "listed more than once")
    gender = require_text(meta, "Gender", meta_path, lines=lines).str.lower()
    bad = ~gender.isin(["male", "female"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{meta_path}: line {lines[i]}, column 'Gender': "
                        f"{meta['Gender'].iloc[i]!r} is not a gender (use Male or Female)")
    values = {"Age": number("Age"), "Height": number("Height (cm)"),
              "Weight": number("Weight (kg)")}
    for col, (lo, hi) in SUBJECT_RANGES.items():
        name = {"Height": "Height (cm)", "Weight": "Weight (kg)"}.get(col, col)
        check_range(values[col], name, lo, hi, meta_path, lines=lines)
    humidity = number(_column(meta, _YOYO_META_PREFIXES[0], meta_path), allow_missing=True)
    temperature = number(_column(meta, _YOYO_META_PREFIXES[1], meta_path), allow_missing=True)
    has_hr = number("Heart Rate Included?")
    bad = ~has_hr.isin([0.0, 1.0])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{meta_path}: line {lines[i]}, column 'Heart Rate Included?': "
                        f"{meta['Heart Rate Included?'].iloc[i]!r} is not 0 or 1")
    start, end = number("YoYo Test Start Time"), number("YoYo Test End Time")
    bad = end <= start
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{meta_path}: line {lines[i]}, column 'YoYo Test End Time': "
                        f"{end.iloc[i]:g} s is not after the start time ({start.iloc[i]:g} s)")
    files = require_text(meta, "COSMED File Name", meta_path, lines=lines)
    notes = meta["Note"].str.strip() if "Note" in meta else pd.Series("", index=meta.index)
    sessions = []
    for i in range(len(meta)):
        k5 = folder / ids.iloc[i] / files.iloc[i]
        if not k5.is_file():
            raise DataError(f"{meta_path}: line {lines[i]}, column 'COSMED File Name': "
                            f"{k5} not found")
        breaths = read_k5_csv(k5, report=report)
        t = breaths["time"]
        if not ((t >= start.iloc[i]) & (t <= end.iloc[i])).any():
            raise DataError(
                f"{meta_path}: line {lines[i]}, columns 'YoYo Test Start Time'/'End Time': "
                f"no breath of {k5} lies between {start.iloc[i]:g} and {end.iloc[i]:g} s "
                f"(its times run from {t.min():g} to {t.max():g} s)"
            )
        sessions.append(YoYoSession(
            person=ids.iloc[i], round=rnd, breaths=breaths,
            start_s=float(start.iloc[i]), end_s=float(end.iloc[i]),
            has_hr=bool(int(has_hr.iloc[i])),
            age=float(values["Age"].iloc[i]), sex=int(gender.iloc[i] == "female"),
            height_cm=float(values["Height"].iloc[i]),
            weight_kg=float(values["Weight"].iloc[i]),
            humidity=float(humidity.iloc[i]), temperature=float(temperature.iloc[i]),
            note=notes.iloc[i],
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


def write_canonical(out: Path, subjects: list[dict], measures: list[pd.DataFrame],
                    provenance: dict, force: bool, report: DataReport,
                    inputs: list[Path]) -> None:
    """Write converted recordings as a canonical data directory (the PhysioNet pair and
    ``SOURCE.json``), atomically; every converter (K5, Yo-Yo, FIT) ends here."""
    report.emit()
    if not subjects:
        raise DataError("no session left to write (every session was skipped)")
    if report.warnings:
        provenance["warnings"] = report.warnings
    with atomic_dir(Path(out), force=force, kind="converted", inputs=inputs) as tmp:
        pd.DataFrame(subjects)[SUBJECT_COLUMNS].to_csv(tmp / SUBJECT_FILE, index=False)
        pd.concat(measures, ignore_index=True).to_csv(tmp / MEASURE_FILE, index=False)
        (tmp / SOURCE_MARKER).write_text(json.dumps(provenance, indent=2) + "\n")


def convert_yoyo(root: Path, out: Path, before_s: float = 60.0, after_s: float = 120.0,
                 force: bool = False) -> dict:
    """Write the Yo-Yo sessions as a canonical data directory.

    Each session keeps the Yo-Yo test period from ``before_s`` before its start to
    ``after_s`` after its end (K5 time base). Sessions without heart rate are reported and
    skipped. Returns {"written": [...], "skipped": {id_test: reason}, "warnings": [...]}.
    """
    report = DataReport()
    subjects, measures, written, skipped = [], [], [], {}
    for s in read_yoyo(root, report=report):
        t = s.breaths["time"]
        period = s.breaths[(t >= session_start(s) - before_s) & (t <= s.end_s + after_s)]
        if not s.has_hr:
            skipped[s.id_test] = "no heart rate (Heart Rate Included? = 0)"
            log.warning("%s: skipped, no heart rate recorded", s.id_test)
            continue
        if not (period["HR"].fillna(0) > 0).any():
            skipped[s.id_test] = ("no heart rate in the K5 file, although the metadata says "
                                  "Heart Rate Included? = 1")
            log.warning("%s: skipped, %s", s.id_test, skipped[s.id_test])
            continue
        measures.append(_canonical(period, s.person, s.id_test))
        subjects.append({"Age": s.age, "Weight": s.weight_kg, "Height": s.height_cm,
                         "Humidity": s.humidity, "Temperature": s.temperature, "Sex": s.sex,
                         "ID": s.person, "ID_test": s.id_test})
        written.append(s.id_test)
    write_canonical(out, subjects, measures, {
        "kind": "real: Oxford NIL Yo-Yo test recordings (COSMED K5, Polar H10, GPS)",
        "source": str(root), "window": f"test start - {before_s:g} s to end + {after_s:g} s",
        "written": written, "skipped": skipped}, force, report, [Path(root)])
    return {"written": written, "skipped": skipped, "warnings": report.warnings}


K5_SUBJECT_COLUMNS = ["File", "ID", "Age", "Weight", "Height", "Sex"]


def _read_k5_subjects(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The subjects table of ``convert_k5``, validated (file, line and column named)."""
    table = read_csv_table(path, unique=K5_SUBJECT_COLUMNS)
    raw, lines = table.frame, table.lines
    require_columns(raw, K5_SUBJECT_COLUMNS, path)
    if raw.empty:
        raise DataError(f"{path}: no rows (one row per K5 export is needed)")
    raw["File"] = require_text(raw, "File", path, lines=lines)
    require_text(raw, "ID", path, lines=lines)
    for col, (lo, hi) in SUBJECT_RANGES.items():
        check_range(to_number(raw, col, path, allow_missing=False, lines=lines), col, lo, hi,
                    path, lines=lines)
    sex_codes(raw, "Sex", path, lines=lines)
    dup = raw["File"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"{path}: line {lines[i]}, column 'File': {raw['File'].iloc[i]!r} is "
                        "listed more than once")
    return raw, lines


def convert_k5(files: list[Path], subjects_csv: Path, out: Path, force: bool = False) -> dict:
    """Write K5 exports as a canonical data directory.

    ``subjects_csv`` has one row per file: File (name of the export), ID, Age, Weight (kg),
    Height (cm), Sex (0/1 or M/F). Files whose HR is all zero or missing are skipped.
    """
    subjects_csv = Path(subjects_csv)
    if not files:
        raise DataError("no K5 export to convert (no .csv file given or found)")
    table, _ = _read_k5_subjects(subjects_csv)
    report = DataReport()
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
        breaths = read_k5_csv(f, report=report)
        if not (breaths["HR"].fillna(0) > 0).any():
            skipped[id_test] = f"{f.name}: no heart rate"
            log.warning("%s (%s): skipped, no heart rate recorded", f.name, id_test)
            continue
        measures.append(_canonical(breaths, person, id_test))
        subjects.append({"Age": row["Age"], "Weight": row["Weight"], "Height": row["Height"],
                         "Humidity": "", "Temperature": "", "Sex": row["Sex"],
                         "ID": person, "ID_test": id_test})
        written.append(id_test)
    write_canonical(out, subjects, measures, {
        "kind": "real: COSMED K5 exports", "files": [str(f) for f in files],
        "written": written, "skipped": skipped}, force, report,
                     [*map(Path, files), subjects_csv])
    return {"written": written, "skipped": skipped, "warnings": report.warnings}
