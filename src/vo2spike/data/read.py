"""Read and validate a data directory in the PhysioNet treadmill format.

A data directory holds ``subject-info.csv`` (one row per test) and ``test_measure.csv``
(breath-by-breath rows). Structural problems raise :class:`DataError` naming file, line and
column; physiological artefacts are left for :mod:`vo2spike.data.clean`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("vo2spike")

SUBJECT_FILE = "subject-info.csv"
MEASURE_FILE = "test_measure.csv"
SIMULATION_MARKER = "SIMULATED.json"
SOURCE_MARKER = "SOURCE.json"  # written by ``vo2spike convert`` for real recordings

SUBJECT_COLUMNS = ["Age", "Weight", "Height", "Humidity", "Temperature", "Sex", "ID", "ID_test"]
SUBJECT_REQUIRED = ["Age", "Weight", "Height", "Sex", "ID", "ID_test"]
MEASURE_COLUMNS = ["time", "Speed", "HR", "VO2", "VCO2", "RR", "VE", "ID", "ID_test"]
#: Columns a recording must have to predict from it (VO2/VCO2 are only needed as labels).
MEASURE_INPUT_COLUMNS = ["time", "Speed", "HR", "RR", "VE", "ID_test"]
SIGNALS = ["Speed", "HR", "VO2", "VCO2", "RR", "VE"]

#: SHA256 of the official PhysioNet release 1.0.1 files.
PHYSIONET_SHA256 = {
    "LICENSE.txt": "92905d58fa4b1d55f2ad00ece3a8282073565d228ce888a18274ca6e556e7361",
    "subject-info.csv": "e9ca5ba20eb1272df56c11d3e584ec3997d5484454812bd94966e58082415f16",
    "test_measure.csv": "3b5ed5586dc7412ccdfb26f804e29c06482a2a1df2060399c2731ebc68d4613d",
}

_SEX_CODES = {"0": 0, "1": 1, "m": 0, "male": 0, "f": 1, "female": 1, "0.0": 0, "1.0": 1}


class DataError(ValueError):
    """A structural problem in an input file (fatal): names file, line and column."""


@dataclass
class DataReport:
    """Non-fatal findings while reading and cleaning: counts and human-readable warnings."""

    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, key: str, n: int, message: str | None = None) -> None:
        """Count ``n`` occurrences of ``key`` and keep a warning message if n > 0."""
        if n <= 0:
            return
        self.counts[key] = self.counts.get(key, 0) + int(n)
        if message:
            self.warnings.append(message)

    def emit(self) -> None:
        """Log every warning."""
        for w in self.warnings:
            log.warning(w)


@dataclass
class Dataset:
    """Validated subject table (one row per test) and breath-by-breath measurements."""

    subjects: pd.DataFrame
    measures: pd.DataFrame
    source: dict
    report: DataReport


def read_csv_as_text(path: Path, skiprows: list[int] | None = None) -> pd.DataFrame:
    """Read a CSV with every cell as text (for precise validation messages)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                         skiprows=skiprows)
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{path}: file is empty") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV file ({e})") from e
    df.columns = [c.strip() for c in df.columns]
    return df


def require_columns(df: pd.DataFrame, required: list[str], path: Path) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(df.columns)})"
        )


def to_number(df: pd.DataFrame, col: str, path: Path, allow_missing: bool,
              first_line: int = 2) -> pd.Series:
    """Parse a text column as float; text that is not a number is a fatal error.

    ``first_line`` is the file line of the first data row (for messages)."""
    text = df[col].str.strip()
    empty = text.isin(["", "NA", "NaN", "nan", "null"])
    values = pd.to_numeric(text.where(~empty), errors="coerce")
    bad = values.isna() & ~empty
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: line {i + first_line}, column '{col}': {df[col].iloc[i]!r} is not a number"
            f" ({int(bad.sum())} such value(s) in this column)"
        )
    if not allow_missing and empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataError(f"{path}: line {i + first_line}, column '{col}': value is missing")
    inf = np.isinf(values.to_numpy(dtype=float))
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise DataError(f"{path}: line {i + first_line}, column '{col}': value is infinite")
    return values.astype(float)


def _require_text(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    text = df[col].str.strip()
    empty = text == ""
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataError(f"{path}: line {i + 2}, column '{col}': value is missing")
    return text


def read_subject_info(path: Path) -> pd.DataFrame:
    """Read ``subject-info.csv``: one row per test with age (y), weight (kg), height (cm), sex.

    Sex is encoded 0 = male, 1 = female (text such as ``M``/``female`` is accepted).
    """
    path = Path(path)
    raw = read_csv_as_text(path)
    require_columns(raw, SUBJECT_REQUIRED, path)
    if raw.empty:
        raise DataError(f"{path}: no rows")
    out = pd.DataFrame({"ID_test": _require_text(raw, "ID_test", path)})
    out["ID"] = _require_text(raw, "ID", path)
    for col in ["Age", "Weight", "Height"]:
        out[col] = to_number(raw, col, path, allow_missing=False)
    for col in ["Humidity", "Temperature"]:
        out[col] = to_number(raw, col, path, allow_missing=True) if col in raw else np.nan
    sex_text = _require_text(raw, "Sex", path).str.lower()
    sex = sex_text.map(_SEX_CODES)
    if sex.isna().any():
        i = int(np.flatnonzero(sex.isna().to_numpy())[0])
        raise DataError(
            f"{path}: line {i + 2}, column 'Sex': {raw['Sex'].iloc[i]!r} is not a sex code "
            "(use 0 = male, 1 = female)"
        )
    out["Sex"] = sex.astype(int)
    for col, lo, hi in [("Age", 5, 100), ("Weight", 20, 250), ("Height", 100, 230)]:
        bad = (out[col] < lo) | (out[col] > hi)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: line {i + 2}, column '{col}': {out[col].iloc[i]:g} is outside the "
                f"plausible range {lo}..{hi}"
            )
    dup = out["ID_test"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"{path}: line {i + 2}, column 'ID_test': test {out['ID_test'].iloc[i]!r} "
            "appears more than once"
        )
    return out


def read_test_measure(path: Path, require_labels: bool = True) -> pd.DataFrame:
    """Read ``test_measure.csv``: breath rows with time (s), Speed (km/h), HR (bpm),
    VO2 and VCO2 (mL/min), RR (breaths/min), VE (L/min), ID and ID_test.

    Missing values in signal columns are allowed (they are artefacts, handled later);
    text where a number belongs is fatal. With ``require_labels=False`` the VO2 and VCO2
    columns may be absent (prediction from a wearable's inputs alone).
    """
    path = Path(path)
    raw = read_csv_as_text(path)
    require_columns(raw, MEASURE_COLUMNS if require_labels else MEASURE_INPUT_COLUMNS, path)
    if raw.empty:
        raise DataError(f"{path}: no data rows")
    out = pd.DataFrame({"ID_test": _require_text(raw, "ID_test", path)})
    out["time"] = to_number(raw, "time", path, allow_missing=False)
    for col in SIGNALS:
        out[col] = to_number(raw, col, path, allow_missing=True) if col in raw else np.nan
    out["line"] = np.arange(2, len(raw) + 2)
    return out


def _sort_and_dedupe(measures: pd.DataFrame, path: Path, report: DataReport) -> pd.DataFrame:
    order = measures.groupby("ID_test", sort=False)["time"].transform(
        lambda t: t.diff().lt(0).any()
    )
    n_unsorted = measures.loc[order.astype(bool), "ID_test"].nunique()
    report.add(
        "tests_with_unsorted_times",
        n_unsorted,
        f"{path}: {n_unsorted} test(s) have times out of order; rows were sorted by time",
    )
    measures = measures.sort_values(["ID_test", "time"], kind="stable")
    dup = measures.duplicated(["ID_test", "time"], keep=False)
    if dup.any():
        n_rows = int(measures.duplicated(["ID_test", "time"]).sum())
        first = measures.loc[dup].iloc[0]
        report.add(
            "duplicate_time_rows",
            n_rows,
            f"{path}: {n_rows} row(s) repeat a time already seen in the same test (first at "
            f"line {int(first['line'])}, test {first['ID_test']}, time {first['time']:g} s); "
            "rows with the same time were averaged",
        )
        agg = {c: "mean" for c in SIGNALS}
        agg["line"] = "min"
        measures = measures.groupby(["ID_test", "time"], as_index=False, sort=False).agg(agg)
    return measures.reset_index(drop=True)


def file_sha256(path: Path) -> str:
    """Hex SHA256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe_source(data_dir: Path) -> dict:
    """Say where a data directory comes from: simulated, the real release, or user data."""
    data_dir = Path(data_dir)
    hashes = {
        name: file_sha256(data_dir / name) for name in (SUBJECT_FILE, MEASURE_FILE)
        if (data_dir / name).is_file()
    }
    source = {"path": str(data_dir), "sha256": hashes}
    marker = data_dir / SIMULATION_MARKER
    if marker.is_file():
        source["kind"] = "simulated"
        source["simulation"] = json.loads(marker.read_text())
    elif (data_dir / SOURCE_MARKER).is_file():
        source["kind"] = json.loads((data_dir / SOURCE_MARKER).read_text())["kind"]
    elif all(hashes.get(k) == PHYSIONET_SHA256[k] for k in (SUBJECT_FILE, MEASURE_FILE)):
        source["kind"] = "real: PhysioNet treadmill 1.0.1 (checksums verified)"
    else:
        source["kind"] = "user data (not the verified PhysioNet release, not simulated)"
    return source


def load_dataset(data_dir: Path, require_labels: bool = True) -> Dataset:
    """Read, validate and join a data directory; tests missing from either file are skipped
    with a warning. Raises DataError when nothing usable remains."""
    data_dir = Path(data_dir)
    subj_path, meas_path = data_dir / SUBJECT_FILE, data_dir / MEASURE_FILE
    subjects = read_subject_info(subj_path)
    measures = read_test_measure(meas_path, require_labels=require_labels)
    report = DataReport()
    measures = _sort_and_dedupe(measures, meas_path, report)

    in_meas = set(measures["ID_test"].unique())
    in_subj = set(subjects["ID_test"])
    only_meas = sorted(in_meas - in_subj)
    only_subj = sorted(in_subj - in_meas)
    report.add(
        "tests_without_subject_info",
        len(only_meas),
        f"{meas_path}: {len(only_meas)} test(s) have no row in {SUBJECT_FILE} and were "
        f"skipped: {', '.join(only_meas[:5])}{' ...' if len(only_meas) > 5 else ''}",
    )
    report.add(
        "tests_without_measurements",
        len(only_subj),
        f"{subj_path}: {len(only_subj)} test(s) have no rows in {MEASURE_FILE} and were "
        f"skipped: {', '.join(only_subj[:5])}{' ...' if len(only_subj) > 5 else ''}",
    )
    keep = sorted(in_meas & in_subj)
    if not keep:
        raise DataError(
            f"{data_dir}: no test appears in both {SUBJECT_FILE} and {MEASURE_FILE} "
            "(ID_test values do not match)"
        )
    measures = measures[measures["ID_test"].isin(keep)].reset_index(drop=True)
    subjects = subjects[subjects["ID_test"].isin(keep)].reset_index(drop=True)
    return Dataset(subjects, measures, describe_source(data_dir), report)
