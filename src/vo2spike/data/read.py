"""Read and validate a data directory in the PhysioNet treadmill format.

A data directory holds ``subject-info.csv`` (one row per test) and ``test_measure.csv``
(breath-by-breath rows). Structural problems raise :class:`DataError` naming file, line and
column (the CLI exits with code 2); physiological artefacts are left for
:mod:`vo2spike.data.clean`. Times are checked here: unsorted and repeated times and breaths
isolated far from their test are counted artefacts; times that cannot be seconds (e.g.
milliseconds) and tests over ``MAX_TEST_S`` are fatal.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from vo2spike.outputs import sha256_file

log = logging.getLogger("vo2spike")

SUBJECT_FILE = "subject-info.csv"
MEASURE_FILE = "test_measure.csv"
SIMULATION_MARKER = "SIMULATED.json"
SOURCE_MARKER = "SOURCE.json"  # written by ``vo2spike convert`` for real recordings

SUBJECT_COLUMNS = ["Age", "Weight", "Height", "Humidity", "Temperature", "Sex", "ID", "ID_test"]
SUBJECT_REQUIRED = ["Age", "Weight", "Height", "Sex", "ID", "ID_test"]
MEASURE_COLUMNS = ["time", "Speed", "HR", "VO2", "VCO2", "RR", "VE", "ID", "ID_test"]
#: Columns a recording must have to predict from it (VO2/VCO2 are only needed as labels;
#: RR and VE are optional: a watch has neither, or only a breathing-rate estimate).
MEASURE_INPUT_COLUMNS = ["time", "Speed", "HR", "ID_test"]
SIGNALS = ["Speed", "HR", "VO2", "VCO2", "RR", "VE"]

#: SHA256 of the official PhysioNet release 1.0.1 files.
PHYSIONET_SHA256 = {
    "LICENSE.txt": "92905d58fa4b1d55f2ad00ece3a8282073565d228ce888a18274ca6e556e7361",
    "subject-info.csv": "e9ca5ba20eb1272df56c11d3e584ec3997d5484454812bd94966e58082415f16",
    "test_measure.csv": "3b5ed5586dc7412ccdfb26f804e29c06482a2a1df2060399c2731ebc68d4613d",
}

#: Breath-by-breath rows: the median step between a test's breaths (s) must lie in this
#: range (breathing at 1 to 600 breaths/min); outside it the time column is not in seconds.
BREATH_STEP_S = (0.1, 60.0)
#: Breaths further than this (s) from the rest of their test, in a stretch shorter than
#: ``ISOLATED_MAX_SPAN_S`` (too short for any window), are timing artefacts and dropped.
ISOLATION_GAP_S = 600.0
ISOLATED_MAX_SPAN_S = 60.0
#: The longest test (s) accepted: 1 Hz resampling allocates one row per second of it.
MAX_TEST_S = 6 * 3600.0

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


@dataclass
class CsvTable:
    """A CSV file read as text: ``frame`` holds every cell as a string, ``lines`` the file
    line (1-based) of each of its rows, ``header_line`` the line of the column names.

    ``cut_off_line`` is the line of a last row that had fewer cells than the header and was
    dropped (``cut_off="drop"``); ``ends_with_newline`` says whether the file ends with a
    line break (if not, its last cell may be incomplete); ``encoding`` is the encoding used.
    """

    frame: pd.DataFrame
    lines: np.ndarray
    header_line: int
    cut_off_line: int | None
    ends_with_newline: bool
    encoding: str


def _read_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a CSV file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return path.read_bytes()
    except PermissionError as e:
        raise DataError(f"{path}: cannot be read (permission denied)") from e
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from e


def _decode(data: bytes, path: Path, encoding: str, fallback: str | None) -> tuple[str, str]:
    """Decode ``data``; undecodable bytes are an error naming their line (or, with
    ``fallback``, the file is decoded with that encoding instead)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path}: the file is UTF-16 encoded; save it as UTF-8")
    try:
        text = data.decode("utf-8-sig" if encoding.lower().replace("_", "-") in
                           ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as e:
        if fallback is None:
            line = data.count(b"\n", 0, e.start) + 1
            col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
            raise DataError(
                f"{path}: line {line}: byte 0x{data[e.start]:02x} (byte {col} of the line) "
                f"is not valid {encoding.upper()} text; save the file as UTF-8"
            ) from e
        text, encoding = data.decode(fallback), fallback
    nul = text.find("\x00")
    if nul >= 0:
        raise DataError(
            f"{path}: line {text.count(chr(10), 0, nul) + 1}: contains a NUL byte "
            "(a binary file, not a CSV text file?)"
        )
    return text, encoding


def read_csv_table(
    path: Path,
    *,
    encoding: str = "utf-8",
    fallback_encoding: str | None = None,
    unique: list[str] | None = None,
    cut_off: Literal["error", "drop"] = "error",
    skiprows: list[int] | None = None,
) -> CsvTable:
    """Read a CSV file with every cell as text, checking its structure.

    Fatal (``DataError`` naming file and line): a missing, unreadable or non-text file, bytes
    that are not ``encoding`` (unless ``fallback_encoding`` is given), a column name that
    appears twice (among ``unique``, or any when ``unique`` is None), a row with more
    non-blank cells than the header has columns, a row with fewer cells (the last row with
    ``cut_off="drop"`` is dropped instead and reported in ``cut_off_line``). Blank and
    whitespace-only lines are skipped; a UTF-8 byte-order mark is removed; blank cells past
    the last column are ignored.
    """
    path = Path(path)
    text, encoding = _decode(_read_bytes(path), path, encoding, fallback_encoding)
    ends_with_newline = text.endswith(("\n", "\r"))
    if not skiprows:
        fast = _read_plain(text, path, unique)
        if fast is not None:
            frame, lines, header_line = fast
            return CsvTable(frame, lines, header_line, None, ends_with_newline, encoding)
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    try:
        rows = list(reader)
    except csv.Error as e:
        raise DataError(f"{path}: line {reader.line_num}: not readable as CSV ({e})") from e
    if reader.line_num == len(rows):
        lines = np.arange(1, len(rows) + 1)
    else:  # a quoted cell spans several lines: count the lines row by row
        reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
        starts, start = [], 1
        for _ in reader:
            starts.append(start)
            start = reader.line_num + 1
        lines = np.asarray(starts)
    keep = [i for i, r in enumerate(rows)
            if (len(r) > 1 or (r and r[0].strip())) and (not skiprows or i not in skiprows)]
    if not keep:
        raise DataError(f"{path}: file is empty")
    header_line = int(lines[keep[0]])
    header = _header(rows[keep[0]], path, header_line, unique)
    n = len(header)
    body, body_lines = [rows[i] for i in keep[1:]], lines[keep[1:]]
    lens = np.fromiter((len(r) for r in body), dtype=int, count=len(body))
    cut_off_line = None
    if len(body) and lens[-1] < n and cut_off == "drop":
        cut_off_line = int(body_lines[-1])
        body, body_lines, lens = body[:-1], body_lines[:-1], lens[:-1]
    if np.any(lens != n):
        body = _fit_rows(body, lens, header, path, header_line, body_lines)
    frame = pd.DataFrame(body, columns=header, dtype=str) if body else \
        pd.DataFrame({c: pd.Series([], dtype=str) for c in header})
    return CsvTable(frame, body_lines, header_line, cut_off_line, ends_with_newline, encoding)


def _read_plain(text: str, path: Path, unique: list[str] | None
                ) -> tuple[pd.DataFrame, np.ndarray, int] | None:
    """Fast path for a well-formed file: no quotes, ``\\n`` or ``\\r\\n`` line ends, at least
    two columns, and every line empty or with as many cells as the header. Returns None
    when the file is not like that (the careful path then reads it and names the
    problem)."""
    if '"' in text:
        return None
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    ends = np.flatnonzero(data == ord("\n"))
    if len(data) and data[-1] != ord("\n"):
        ends = np.append(ends, len(data))
    starts = np.r_[0, ends[:-1] + 1]
    cr = (ends > starts) & (data[np.maximum(ends - 1, 0)] == ord("\r"))
    if int(np.count_nonzero(data == ord("\r"))) != int(cr.sum()):
        return None  # a lone carriage return ends a line too: the careful path
    commas = np.flatnonzero(data == ord(","))
    n_commas = np.searchsorted(commas, ends) - np.searchsorted(commas, starts)
    filled = np.flatnonzero(ends - starts - cr > 0)
    if len(filled) == 0 or n_commas[filled[0]] == 0:
        return None
    if (n_commas[filled] != n_commas[filled[0]]).any():
        return None  # whitespace-only lines or rows of another length: the careful path
    header_i = int(filled[0])
    header_text = text.split("\n", header_i + 1)[header_i].rstrip("\r")
    header = _header(next(csv.reader([header_text], skipinitialspace=True)), path,
                     header_i + 1, unique)
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                        skipinitialspace=True, index_col=False)
    if len(frame) != len(filled) - 1 or frame.shape[1] != len(header):
        return None
    frame.columns = header
    return frame, filled[1:] + 1, header_i + 1


def _header(cells: list[str], path: Path, line: int, unique: list[str] | None) -> list[str]:
    """Column names, stripped; a repeated name is fatal when it must be unique (others are
    renamed ``name.1``, ``name.2`` as pandas does); blank names become ``Unnamed: i``."""
    names = [c.strip() or f"Unnamed: {i}" for i, c in enumerate(cells)]
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            if unique is None or name in unique:
                where = [j + 1 for j, x in enumerate(names) if x == name]
                raise DataError(
                    f"{path}: line {line}, column '{name}': the column name appears "
                    f"{len(where)} times (columns {', '.join(map(str, where))}); each column "
                    "must appear once"
                )
            seen[name] += 1
            out.append(f"{name}.{seen[name]}")
        else:
            seen[name] = 0
            out.append(name)
    return out


def _fit_rows(body: list[list[str]], lens: np.ndarray, header: list[str], path: Path,
              header_line: int, lines: np.ndarray) -> list[list[str]]:
    """Rows cut to the header's length: blank cells past the last column (a trailing comma)
    are dropped, cells under blank column names are padded; any other mismatch is fatal."""
    n = len(header)
    n_named = max((i + 1 for i, h in enumerate(header) if not h.startswith("Unnamed: ")),
                  default=0)
    out = []
    for row, k, line in zip(body, lens, lines, strict=True):
        if k > n and not any(c.strip() for c in row[n:]):
            row = row[:n]
        elif n_named <= k < n:
            row = row + [""] * (n - k)
        elif k != n:
            what = "values are missing (a cut-off row?)" if k < n else \
                "a value too many (a comma inside a number, or an unquoted text?)"
            raise DataError(
                f"{path}: line {int(line)}: {k} cells, but the header (line {header_line}) "
                f"has {n} columns: {what}"
            )
        out.append(row)
    return out


def read_csv_as_text(path: Path, skiprows: list[int] | None = None) -> pd.DataFrame:
    """Read a CSV with every cell as text (for precise validation messages); see
    :func:`read_csv_table` for the structural checks."""
    return read_csv_table(path, skiprows=skiprows).frame


def require_columns(df: pd.DataFrame, required: list[str], path: Path) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(df.columns)})"
        )


def _line(i: int, first_line: int, lines: np.ndarray | None) -> int:
    return int(lines[i]) if lines is not None else i + first_line


def to_number(df: pd.DataFrame, col: str, path: Path, allow_missing: bool,
              first_line: int = 2, *, lines: np.ndarray | None = None) -> pd.Series:
    """Parse a text column as float; text that is not a number is a fatal error.

    ``lines`` holds the file line of each row (from :class:`CsvTable`); without it row i is
    at line ``i + first_line``."""
    text = df[col].str.strip()
    empty = text.isin(["", "NA", "NaN", "nan", "null"])
    values = pd.to_numeric(text.where(~empty), errors="coerce")
    bad = values.isna() & ~empty
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: line {_line(i, first_line, lines)}, column '{col}': "
            f"{df[col].iloc[i]!r} is not a number ({int(bad.sum())} such value(s) in this "
            "column)"
        )
    if not allow_missing and empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataError(
            f"{path}: line {_line(i, first_line, lines)}, column '{col}': value is missing"
        )
    inf = np.isinf(values.to_numpy(dtype=float))
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise DataError(
            f"{path}: line {_line(i, first_line, lines)}, column '{col}': value is infinite"
        )
    return values.astype(float)


def require_text(df: pd.DataFrame, col: str, path: Path, *,
                 lines: np.ndarray | None = None) -> pd.Series:
    """A text column, stripped; an empty cell is a fatal error naming its line."""
    text = df[col].str.strip()
    empty = text == ""
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataError(f"{path}: line {_line(i, 2, lines)}, column '{col}': value is missing")
    return text


def check_range(values: pd.Series, col: str, lo: float, hi: float, path: Path, *,
                lines: np.ndarray | None = None) -> None:
    """A value outside ``lo..hi`` is a fatal error naming its line."""
    bad = (values < lo) | (values > hi)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: line {_line(i, 2, lines)}, column '{col}': {values.iloc[i]:g} is outside "
            f"the plausible range {lo:g}..{hi:g}"
        )


#: Plausible subject values: (low, high) for age (years), weight (kg), height (cm).
SUBJECT_RANGES = {"Age": (5, 100), "Weight": (20, 250), "Height": (100, 230)}


def read_subject_info(path: Path) -> pd.DataFrame:
    """Read ``subject-info.csv``: one row per test with age (y), weight (kg), height (cm), sex.

    Sex is encoded 0 = male, 1 = female (text such as ``M``/``female`` is accepted).
    """
    path = Path(path)
    table = read_csv_table(path, unique=SUBJECT_COLUMNS)
    raw, lines = table.frame, table.lines
    require_columns(raw, SUBJECT_REQUIRED, path)
    if raw.empty:
        raise DataError(f"{path}: no rows")
    out = pd.DataFrame({"ID_test": require_text(raw, "ID_test", path, lines=lines)})
    out["ID"] = require_text(raw, "ID", path, lines=lines)
    for col in ["Age", "Weight", "Height"]:
        out[col] = to_number(raw, col, path, allow_missing=False, lines=lines)
    for col in ["Humidity", "Temperature"]:
        out[col] = to_number(raw, col, path, allow_missing=True, lines=lines) if col in raw \
            else np.nan
    out["Sex"] = sex_codes(raw, "Sex", path, lines=lines)
    for col, (lo, hi) in SUBJECT_RANGES.items():
        check_range(out[col], col, lo, hi, path, lines=lines)
    dup = out["ID_test"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"{path}: line {lines[i]}, column 'ID_test': test {out['ID_test'].iloc[i]!r} "
            "appears more than once"
        )
    return out


def sex_codes(raw: pd.DataFrame, col: str, path: Path, *,
              lines: np.ndarray | None = None) -> pd.Series:
    """A sex column encoded 0 = male, 1 = female (``0``/``1``, ``M``/``F``, ``male``/...)."""
    sex = require_text(raw, col, path, lines=lines).str.lower().map(_SEX_CODES)
    if sex.isna().any():
        i = int(np.flatnonzero(sex.isna().to_numpy())[0])
        raise DataError(
            f"{path}: line {_line(i, 2, lines)}, column '{col}': {raw[col].iloc[i]!r} is not a "
            "sex code (use 0 = male, 1 = female)"
        )
    return sex.astype(int)


def read_test_measure(path: Path, require_labels: bool = True) -> pd.DataFrame:
    """Read ``test_measure.csv``: breath rows with time (s), Speed (km/h), HR (bpm),
    VO2 and VCO2 (mL/min), RR (breaths/min), VE (L/min), ID and ID_test.

    Missing values in signal columns are allowed (they are artefacts, handled later);
    text where a number belongs is fatal. With ``require_labels=False`` the VO2 and VCO2
    columns may be absent (prediction from a wearable's inputs alone), and so may RR and VE
    (read as empty). The ``line`` column
    holds each row's line in the file.
    """
    path = Path(path)
    table = read_csv_table(path, unique=MEASURE_COLUMNS)
    raw, lines = table.frame, table.lines
    require_columns(raw, MEASURE_COLUMNS if require_labels else MEASURE_INPUT_COLUMNS, path)
    if raw.empty:
        raise DataError(f"{path}: no data rows")
    out = pd.DataFrame({"ID_test": require_text(raw, "ID_test", path, lines=lines)})
    out["time"] = to_number(raw, "time", path, allow_missing=False, lines=lines)
    for col in SIGNALS:
        out[col] = to_number(raw, col, path, allow_missing=True, lines=lines) if col in raw \
            else np.nan
    out["line"] = lines
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


def _check_times(measures: pd.DataFrame, path: Path, report: DataReport) -> pd.DataFrame:
    """Times that cannot be seconds of a breath-by-breath test (``measures`` sorted by test
    and time, without repeated times).

    A test whose median step between breaths is outside ``BREATH_STEP_S`` is fatal (e.g.
    times in milliseconds). Breaths more than ``ISOLATION_GAP_S`` away from the rest of their
    test, in a stretch shorter than ``ISOLATED_MAX_SPAN_S``, are timing artefacts: dropped
    and counted. A test that still spans more than ``MAX_TEST_S`` is fatal.
    """
    tid = measures["ID_test"].to_numpy()
    t = measures["time"].to_numpy(dtype=float)
    first = np.r_[True, tid[1:] != tid[:-1]]
    step = np.diff(t, prepend=np.nan)
    step[first] = np.nan
    steps = pd.Series(step).groupby(tid, sort=False)
    med, n_steps = steps.median(), steps.count()
    lo, hi = BREATH_STEP_S
    odd = med[(n_steps >= 10) & ((med < lo) | (med > hi))]
    if len(odd):
        test, m = odd.index[0], float(odd.iloc[0])
        line = int(measures["line"].to_numpy()[np.flatnonzero(tid == test)[0]])
        if lo <= m / 1000 <= hi:
            why = f"times look like milliseconds (median step between breaths {m:,.0f})"
        else:
            why = f"the median step between breaths is {m:.3g} s"
        more = f"; {len(odd)} tests like this" if len(odd) > 1 else ""
        raise DataError(
            f"{path}: line {line}, column 'time': test {test!r}: {why}, expected "
            f"{lo:g}..{hi:g} s for breath-by-breath rows{more}; give time in seconds"
        )
    gap = step > ISOLATION_GAP_S
    if gap.any():
        seg = np.cumsum(first | gap)
        segs = pd.DataFrame({"test": tid, "seg": seg, "t": t}).groupby("seg", sort=False)
        info = segs.agg(test=("test", "first"), n=("t", "size"), t0=("t", "min"),
                        t1=("t", "max"))
        main = info.groupby("test", sort=False)["n"].idxmax()
        isolated = info.index[~info.index.isin(main.to_numpy())
                              & (info["t1"] - info["t0"] < ISOLATED_MAX_SPAN_S)]
        drop = np.isin(seg, isolated)
        if drop.any():
            i = int(np.flatnonzero(drop)[0])
            n_tests = len(set(tid[drop]))
            report.add(
                "isolated_time_rows",
                int(drop.sum()),
                f"{path}: {int(drop.sum())} row(s) of {n_tests} test(s) lie over "
                f"{ISOLATION_GAP_S / 60:g} min away from the rest of their test (first at line "
                f"{int(measures['line'].iloc[i])}, test {tid[i]}, time {t[i]:g} s); dropped "
                "as timing artefacts",
            )
            measures = measures.loc[~drop].reset_index(drop=True)
    span = measures.groupby("ID_test", sort=False)["time"].agg(["min", "max"])
    long = span[span["max"] - span["min"] > MAX_TEST_S]
    if len(long):
        test = long.index[0]
        rows = measures.loc[measures["ID_test"] == test, "line"]
        raise DataError(
            f"{path}: lines {int(rows.min())}..{int(rows.max())}, column 'time': test "
            f"{test!r} spans {(long['max'].iloc[0] - long['min'].iloc[0]) / 3600:,.1f} h; "
            f"tests longer than {MAX_TEST_S / 3600:g} h are not supported (two recordings "
            "under one ID_test, or times not in seconds?)"
        )
    return measures


def _read_marker(path: Path, *required: str) -> dict:
    """A JSON marker file (``SIMULATED.json``, ``SOURCE.json``) as a dict."""
    try:
        info = json.loads(_decode(_read_bytes(path), path, "utf-8", None)[0])
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from e
    if not isinstance(info, dict) or any(k not in info for k in required):
        raise DataError(f"{path}: expected a JSON object with key(s) {', '.join(required)}")
    return info


def describe_source(data_dir: Path) -> dict:
    """Say where a data directory comes from: simulated, the real release, or user data."""
    data_dir = Path(data_dir)
    hashes = {
        name: sha256_file(data_dir / name) for name in (SUBJECT_FILE, MEASURE_FILE)
        if (data_dir / name).is_file()
    }
    source = {"path": str(data_dir), "sha256": hashes}
    marker = data_dir / SIMULATION_MARKER
    if marker.is_file():
        source["kind"] = "simulated"
        source["simulation"] = _read_marker(marker)
    elif (data_dir / SOURCE_MARKER).is_file():
        source["kind"] = str(_read_marker(data_dir / SOURCE_MARKER, "kind")["kind"])
    elif all(hashes.get(k) == PHYSIONET_SHA256[k] for k in (SUBJECT_FILE, MEASURE_FILE)):
        source["kind"] = "real: PhysioNet treadmill 1.0.1 (checksums verified)"
    else:
        source["kind"] = "user data (not the verified PhysioNet release, not simulated)"
    return source


def load_dataset(data_dir: Path, require_labels: bool = True) -> Dataset:
    """Read, validate and join a data directory; tests missing from either file are skipped
    with a warning. Raises DataError when nothing usable remains (after logging the
    warnings so far, which may explain it)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        what = "is a file" if data_dir.exists() else "not found"
        raise DataError(f"{data_dir}: {what}; expected a data directory holding {SUBJECT_FILE} "
                        f"and {MEASURE_FILE}")
    subj_path, meas_path = data_dir / SUBJECT_FILE, data_dir / MEASURE_FILE
    subjects = read_subject_info(subj_path)
    measures = read_test_measure(meas_path, require_labels=require_labels)
    report = DataReport()
    try:
        return _join(data_dir, subjects, measures, report)
    except DataError:
        report.emit()  # the warnings so far may explain the error
        raise


def _join(data_dir: Path, subjects: pd.DataFrame, measures: pd.DataFrame,
          report: DataReport) -> Dataset:
    subj_path, meas_path = data_dir / SUBJECT_FILE, data_dir / MEASURE_FILE
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
    measures = _check_times(measures, meas_path, report)
    subjects = subjects[subjects["ID_test"].isin(keep)].reset_index(drop=True)
    return Dataset(subjects, measures, describe_source(data_dir), report)
