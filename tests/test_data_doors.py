"""Hostile input at the data layer's doors: every problem is a DataError naming the file,
line and column (exit code 2 from the CLI, no traceback) or a counted, reported artefact;
nothing is silently wrong."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vo2spike.cli import main
from vo2spike.data.k5 import convert_k5, convert_yoyo, read_k5_csv, read_yoyo
from vo2spike.data.read import (
    MEASURE_COLUMNS,
    DataError,
    DataReport,
    load_dataset,
    read_csv_table,
    read_test_measure,
)
from vo2spike.data.windows import make_windows, prepare_windows

from .conftest import SHARED, needs_shared

# --- canonical (PhysioNet-format) data directories ------------------------------------------


def _subjects(n_tests: int) -> pd.DataFrame:
    return pd.DataFrame({
        "Age": 30.0, "Weight": 70.0, "Height": 175.0, "Humidity": 40.0, "Temperature": 20.0,
        "Sex": [i % 2 for i in range(n_tests)], "ID": [f"P{i}" for i in range(n_tests)],
        "ID_test": [f"P{i}_1" for i in range(n_tests)],
    })


def _measures(n_tests: int = 3, n: int = 150, step: float = 2.0, seed: int = 0) -> pd.DataFrame:
    """``n_tests`` tests of ``n`` breaths ``step`` s apart (300 s: 9 windows each)."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n_tests):
        parts.append(pd.DataFrame({
            "time": np.arange(n) * step, "Speed": 8.0, "HR": 140 + rng.normal(0, 2, n),
            "VO2": 2500 * (1 + rng.normal(0, 0.05, n)), "VCO2": 2300 * (1 + rng.normal(0, 0.05, n)),
            "RR": 30 + rng.normal(0, 1, n), "VE": 70 * (1 + rng.normal(0, 0.05, n)),
            "ID": f"P{i}", "ID_test": f"P{i}_1",
        }))
    return pd.concat(parts, ignore_index=True)[MEASURE_COLUMNS]


def _write_dir(tmp_path: Path, measures: pd.DataFrame | None = None, n_tests: int = 3,
               name: str = "data") -> Path:
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    m = _measures(n_tests) if measures is None else measures
    _subjects(n_tests).to_csv(d / "subject-info.csv", index=False)
    m.to_csv(d / "test_measure.csv", index=False)
    return d


def _insert(m: pd.DataFrame, at: int, **values) -> pd.DataFrame:
    row = m.iloc[[at]].assign(**values)
    return pd.concat([m.iloc[:at], row, m.iloc[at:]], ignore_index=True)


# --- absurd times ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad_time", [1e9, 1e7, -1e9, 50_000.0])
def test_one_absurd_time_is_a_dropped_artefact(tmp_path, bad_time):
    clean = make_windows(load_dataset(_write_dir(tmp_path, name="clean")))
    d = _write_dir(tmp_path, _insert(_measures(), 40, time=bad_time))
    ds, w = prepare_windows(d)
    assert ds.report.counts["isolated_time_rows"] == 1
    warning = next(x for x in ds.report.warnings if "away from the rest" in x)
    assert "line 42" in warning and "P0_1" in warning
    np.testing.assert_array_equal(w.x, clean.x)  # bounded memory, same windows as without it


def test_times_in_milliseconds_are_rejected(tmp_path):
    m = _measures()
    m.loc[m.ID_test == "P1_1", "time"] *= 1000
    with pytest.raises(DataError, match=r"test_measure.csv: line 152, column 'time': test "
                       r"'P1_1': times look like milliseconds"):
        load_dataset(_write_dir(tmp_path, m))


def test_times_in_fractions_of_a_day_are_rejected(tmp_path):
    m = _measures()
    m["time"] /= 86400
    with pytest.raises(DataError, match=r"median step between breaths is 2.31e-05 s.*seconds"):
        load_dataset(_write_dir(tmp_path, m))


def test_a_long_pause_is_kept_but_a_test_over_6_hours_is_rejected(tmp_path):
    m = _measures()
    later = m.ID_test.eq("P0_1") & (m.time >= 150)
    m.loc[later, "time"] += 900  # a 15 min pause: both parts are real data
    ds = load_dataset(_write_dir(tmp_path, m, name="pause"))
    assert "isolated_time_rows" not in ds.report.counts
    assert len(ds.measures) == len(m)
    m.loc[later, "time"] += 30_000
    with pytest.raises(DataError, match=r"lines 2\.\.151, column 'time': test 'P0_1' spans "
                       r"8\.7 h; tests longer than 6 h"):
        load_dataset(_write_dir(tmp_path, m, name="long"))


# --- errors that explain themselves ------------------------------------------------------------


def test_no_windows_error_names_file_and_main_reason_after_the_warnings(tmp_path, caplog):
    m = _measures()
    m["HR"] = 0.0  # no strap paired
    d = _write_dir(tmp_path, m)
    with caplog.at_level(logging.WARNING, logger="vo2spike"):
        with pytest.raises(DataError) as e:
            prepare_windows(d)
    msg = str(e.value)
    assert msg.startswith(f"{d / 'test_measure.csv'}: no usable windows: all 450 breath rows "
                          "lost: HR outside 30..230 in 450 row(s) (HR 0 in 450: no heart-rate "
                          "strap?)")
    assert any("HR value(s) outside 30..230" in r.getMessage() for r in caplog.records)


def test_no_windows_because_tests_are_too_short(tmp_path):
    with pytest.raises(DataError, match=r"every test is shorter than one 60 s window after "
                       r"cleaning \(the longest spans 38 s\)"):
        prepare_windows(_write_dir(tmp_path, _measures(n=20)))


def test_no_windows_because_of_gaps(tmp_path):
    with pytest.raises(DataError, match=r"all 39 windows span a gap of over 30 s.*median step "
                       r"40 s"):
        prepare_windows(_write_dir(tmp_path, _measures(n=12, step=40.0)))


def test_cli_train_with_one_person_exits_2(tmp_path, capsys):
    d = _write_dir(tmp_path, _measures(n_tests=1), n_tests=1)
    code = main(["train", "--data", str(d), "--out", str(tmp_path / "run"), "--quick"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "1 person(s) with usable windows found (P0)" in err


def test_cli_predict_with_times_in_milliseconds_exits_2(tmp_path, capsys):
    m = _measures()
    m["time"] *= 1000
    d = _write_dir(tmp_path, m.drop(columns=["VO2", "VCO2"]))
    code = main(["predict", "--data", str(d), "--out", str(tmp_path / "pred")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "line 2, column 'time': test 'P0_1': times look like milliseconds" in err


# --- CSV structure -----------------------------------------------------------------------------

HEADER = ",".join(MEASURE_COLUMNS)
ROW = "{t},8,140,2500,2300,30,70,P0,P0_1"


def _measure_file(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / "test_measure.csv"
    p.write_bytes(text.encode(encoding))
    return p


def _rows(n: int = 5, sep: str = "\n") -> str:
    return sep.join(ROW.format(t=2 * i) for i in range(n)) + sep


def test_non_utf8_bytes_name_the_line(tmp_path):
    text = HEADER + "\n" + _rows(3) + ROW.format(t=9).replace("P0,", "Pé,") + "\n"
    p = _measure_file(tmp_path, text, encoding="latin-1")
    with pytest.raises(DataError, match=r"test_measure.csv: line 5: byte 0xe9 \(byte 26 "
                       r"of the line\) is not valid UTF-8 text; save the file as UTF-8"):
        read_test_measure(p)


def test_utf16_and_binary_files_are_rejected(tmp_path):
    p = _measure_file(tmp_path, HEADER + "\n" + _rows(), encoding="utf-16")
    with pytest.raises(DataError, match="UTF-16"):
        read_test_measure(p)
    p.write_bytes(b"time,HR\n1,2\n\x00\x01\x02\n")
    with pytest.raises(DataError, match=r"line 3: contains a NUL byte"):
        read_test_measure(p)


def test_byte_order_mark_and_windows_line_endings_read_like_plain_files(tmp_path):
    plain = read_test_measure(_measure_file(tmp_path, HEADER + "\n" + _rows()))
    for text in ["\ufeff" + HEADER + "\n" + _rows(), HEADER + "\r\n" + _rows(sep="\r\n"),
                 HEADER + "\r" + _rows(sep="\r")]:
        pd.testing.assert_frame_equal(read_test_measure(_measure_file(tmp_path, text)), plain)


def test_quoted_file_reads_like_the_plain_one(tmp_path):
    """The fast reader (no quotes) and the careful one give the same table."""
    plain = read_csv_table(_measure_file(tmp_path, HEADER + "\n" + _rows()))
    quoted = read_csv_table(_measure_file(
        tmp_path, HEADER.replace("VO2", '"VO2"') + "\n" + _rows()))
    pd.testing.assert_frame_equal(plain.frame, quoted.frame)
    np.testing.assert_array_equal(plain.lines, quoted.lines)


def test_duplicate_column_is_rejected(tmp_path):
    p = _measure_file(tmp_path, HEADER + ",HR\n" + _rows().replace("\n", ",150\n"))
    with pytest.raises(DataError, match=r"test_measure.csv: line 1, column 'HR': the column "
                       r"name appears 2 times \(columns 3, 10\)"):
        read_test_measure(p)
    p = _measure_file(tmp_path, HEADER + ", HR \n" + _rows().replace("\n", ",150\n"))
    with pytest.raises(DataError, match=r"line 1, column 'HR': the column name appears 2"):
        read_test_measure(p)


def test_row_with_an_extra_cell_names_the_line(tmp_path):
    rows = _rows(5).splitlines()
    rows[2] += ",99"
    p = _measure_file(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"test_measure.csv: line 4: 10 cells, but the header "
                       r"\(line 1\) has 9 columns: a value too many"):
        read_test_measure(p)


def test_trailing_commas_do_not_shift_the_columns(tmp_path):
    """pandas would make the first column the index and shift every value by one."""
    plain = read_test_measure(_measure_file(tmp_path, HEADER + "\n" + _rows()))
    commas = read_test_measure(_measure_file(tmp_path, HEADER + "\n" + _rows().replace(
        "\n", ",\n")))
    pd.testing.assert_frame_equal(commas, plain)


def test_row_with_missing_cells_names_the_line(tmp_path):
    rows = _rows(5).splitlines()
    rows[1] = rows[1].rsplit(",", 3)[0]
    p = _measure_file(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"line 3: 6 cells, but the header \(line 1\) has 9 "
                       r"columns: values are missing"):
        read_test_measure(p)
    p = _measure_file(tmp_path, HEADER + "\n" + _rows(4) + ROW.format(t=99)[:12])
    with pytest.raises(DataError, match=r"line 6: 4 cells.*cut-off row"):
        read_test_measure(p)


def test_blank_and_whitespace_lines_are_skipped_and_lines_stay_right(tmp_path):
    rows = _rows(5).splitlines()
    rows[3] = rows[3].replace("140", "abc")
    text = HEADER + "\n   \n\t\n" + "\n".join(rows[:2]) + "\n\n" + "\n".join(rows[2:]) + "\n"
    with pytest.raises(DataError, match=r"line 8, column 'HR': 'abc' is not a number"):
        read_test_measure(_measure_file(tmp_path, text))
    m = read_test_measure(_measure_file(tmp_path, text.replace("abc", "140")))
    assert m["line"].tolist() == [4, 5, 7, 8, 9]


def test_quoted_cell_over_two_lines_keeps_line_numbers_right(tmp_path):
    rows = _rows(4).splitlines()
    rows[0] = rows[0].replace(",P0,", ',"P\n0",')
    rows[2] = rows[2].replace("140", "abc")
    with pytest.raises(DataError, match=r"line 5, column 'HR': 'abc' is not a number"):
        read_test_measure(_measure_file(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n"))


def test_empty_id_test_names_the_line(tmp_path):
    p = _measure_file(tmp_path, HEADER + "\n" + _rows(3) + ROW.format(t=9)[:-4] + "\n")
    with pytest.raises(DataError, match=r"line 5, column 'ID_test': value is missing"):
        read_test_measure(p)


def test_directory_unreadable_file_and_missing_data_dir(tmp_path, monkeypatch):
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match=r"dir.csv: is a directory, expected a CSV file"):
        read_test_measure(tmp_path / "dir.csv")
    p = _measure_file(tmp_path, HEADER + "\n" + _rows())
    real = Path.read_bytes

    def deny(self):
        if self == p:
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(DataError, match=r"test_measure.csv: cannot be read \(permission denied\)"):
        read_test_measure(p)
    with pytest.raises(DataError, match=r"nowhere: not found; expected a data directory"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"test_measure.csv: is a file; expected a data directory"):
        load_dataset(p)


def test_broken_source_marker_is_a_data_error(tmp_path):
    d = _write_dir(tmp_path)
    (d / "SOURCE.json").write_text("{not json")
    with pytest.raises(DataError, match=r"SOURCE.json: line 1: not valid JSON"):
        load_dataset(d)


PIECES = [b",", b"\n", b"\r\n", b'"', b" ", b"-", b"1e9", b"nan", b"inf", b"\xff", b"\x00",
          b"abc", b":", b"\t", b"1e308", b"P0_1", b""]


@given(edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 3), st.sampled_from(PIECES)),
                      min_size=1, max_size=4),
       which=st.sampled_from(["test_measure.csv", "subject-info.csv", "k5"]))
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_damaged_files_give_a_result_or_a_data_error(tmp_path, edits, which):
    """Cut, inserted or deleted bytes never end in anything but a DataError."""
    d = _write_dir(tmp_path, _measures(n=60))
    target = _k5(tmp_path, rows=_k5_rows(60)) if which == "k5" else d / which
    data = bytearray(target.read_bytes())
    for where, n_deleted, piece in edits:
        i = int(where * len(data))
        data[i:i + n_deleted] = piece
    target.write_bytes(bytes(data))
    try:
        read_k5_csv(target) if which == "k5" else prepare_windows(d)
    except DataError:
        pass


# --- COSMED K5 exports -------------------------------------------------------------------------

K5_HEADER = ["t", "Rf", "VT", "VE", "VO2", "VCO2", "HR", "Amb. Temp.", "GPS Speed", "PaCO2_e"]
K5_UNITS = ["s", "1/min", "L(btps)", "L/min", "mL/min", "mL/min", "bpm", "°C", "km/h", "mmHg"]


def _k5_rows(n: int = 200, step: float = 2.5) -> list[list[str]]:
    rng = np.random.default_rng(1)
    return [[f"{i * step:.1f}", "30.1", "2.3", f"{69 + rng.normal():.3f}",
             f"{2500 + 50 * rng.normal():.4f}", f"{2300 + 50 * rng.normal():.4f}", "150", "18.2",
             "9.8", "40"] for i in range(n)]


def _k5(tmp_path: Path, units: list[str] | None = K5_UNITS, rows=None, name: str = "k5.csv",
        header: list[str] = K5_HEADER, end: str = "\n", encoding: str = "utf-8") -> Path:
    lines = [",".join(header)] + ([",".join(units)] if units is not None else [])
    lines += [",".join(r) for r in (_k5_rows() if rows is None else rows)]
    p = tmp_path / name
    p.write_bytes(("\n".join(lines) + end).encode(encoding))
    return p


def test_k5_units_are_read_and_converted(tmp_path):
    base = read_k5_csv(_k5(tmp_path, name="base.csv"))
    assert len(base) == 200 and base["VO2"].between(2300, 2700).all()
    units = ["hh:mm:ss", " 1/MIN", "L", "l / min", "L/min", "L/min", "BPM", "C", "m/s", "x"]
    rows = [[f"0:{int(float(r[0])) // 60:02d}:{float(r[0]) % 60:04.1f}", r[1], r[2], r[3],
             f"{float(r[4]) / 1000:.7f}", f"{float(r[5]) / 1000:.7f}", r[6], r[7],
             f"{float(r[8]) / 3.6:.9f}", r[9]] for r in _k5_rows()]
    other = read_k5_csv(_k5(tmp_path, units, rows, name="other.csv"))
    pd.testing.assert_frame_equal(other, base, rtol=1e-6)


@pytest.mark.parametrize(("column", "unit"), [("VO2", "mL/kg/min"), ("GPS Speed", "knots"),
                                              ("HR", ""), ("t", "days")])
def test_k5_unknown_unit_is_rejected(tmp_path, column, unit):
    units = list(K5_UNITS)
    units[K5_HEADER.index(column)] = unit
    found = repr(unit) if unit else "no unit"
    with pytest.raises(DataError, match=rf"k5.csv: line 2, column '{column}': {found} is not a "
                       rf"unit this reader knows for {column} \(accepted, in any case: "):
        read_k5_csv(_k5(tmp_path, units))


def test_k5_missing_unit_line_is_rejected(tmp_path):
    with pytest.raises(DataError, match=r"k5.csv: line 2: the unit line is missing: line 2 "
                       r"holds numbers \(t = '0.0', Rf = '30.1', VE = '69"):
        read_k5_csv(_k5(tmp_path, units=None))


def test_k5_header_lines_only(tmp_path):
    with pytest.raises(DataError, match=r"k5.csv: line 2: the unit line is missing, and there "
                       r"are no breath rows"):
        read_k5_csv(_k5(tmp_path, units=None, rows=[]))
    with pytest.raises(DataError, match=r"k5.csv: no breath rows after the two header lines"):
        read_k5_csv(_k5(tmp_path, rows=[]))


def test_k5_cut_off_last_row_is_dropped_with_a_warning(tmp_path):
    full = _k5(tmp_path, name="full.csv")
    cut = tmp_path / "cut.csv"
    text = full.read_text()
    cut.write_text(text[:text.rindex("\n", 0, len(text) - 1) + 20])  # inside the last row
    report = DataReport()
    got = read_k5_csv(cut, report=report)
    pd.testing.assert_frame_equal(got, read_k5_csv(full).iloc[:-1])
    assert report.counts == {"k5_rows_cut_off": 1}
    assert "cut.csv: line 202: the last row is cut off" in report.warnings[0]
    # Complete last row without a final line break: its last (unused) cell cannot matter.
    whole = _k5(tmp_path, name="no-newline.csv", end="")
    report = DataReport()
    pd.testing.assert_frame_equal(read_k5_csv(whole, report=report), read_k5_csv(full))
    assert report.counts == {}


def test_k5_cut_inside_a_used_last_column_is_dropped(tmp_path):
    header = K5_HEADER[:-1]
    rows = [r[:-1] for r in _k5_rows()]
    rows[-1][-1] = "9."  # cut off inside the last number
    report = DataReport()
    got = read_k5_csv(_k5(tmp_path, K5_UNITS[:-1], rows, header=header, end=""), report=report)
    assert len(got) == 199 and report.counts == {"k5_rows_cut_off": 1}


def test_k5_duplicate_used_column_is_rejected(tmp_path):
    header = [*K5_HEADER[:-1], "HR"]
    with pytest.raises(DataError, match=r"k5.csv: line 1, column 'HR': the column name appears "
                       r"2 times \(columns 7, 10\)"):
        read_k5_csv(_k5(tmp_path, header=header))


def test_k5_latin1_export_is_read_with_a_warning(tmp_path):
    report = DataReport()
    got = read_k5_csv(_k5(tmp_path, encoding="latin-1"), report=report)
    pd.testing.assert_frame_equal(got, read_k5_csv(_k5(tmp_path, name="utf8.csv")))
    assert report.counts == {"k5_files_not_utf8": 1}


def test_k5_bad_clock_time_names_the_line(tmp_path):
    rows = _k5_rows()
    for r in rows:
        r[0] = f"00:00:{float(r[0]):.1f}"
    rows[7][0] = "00:0x:17"
    with pytest.raises(DataError, match=r"k5.csv: line 10, column 't': '00:0x:17' is not a time"):
        read_k5_csv(_k5(tmp_path, ["hh:mm:ss", *K5_UNITS[1:]], rows))


def test_convert_k5_cli_reports_bad_unit_with_exit_2(tmp_path, capsys):
    units = list(K5_UNITS)
    units[K5_HEADER.index("VO2")] = "mL/kg/min"
    k5 = _k5(tmp_path, units)
    subjects = tmp_path / "subjects.csv"
    subjects.write_text("File,ID,Age,Weight,Height,Sex\nk5.csv,P1,30,70,175,M\n")
    code = main(["convert", "--from", "k5", str(k5), "--subjects", str(subjects),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "line 2, column 'VO2': 'mL/kg/min' is not a unit" in err and "Traceback" not in err


def test_convert_k5_subjects_table_is_validated(tmp_path):
    k5 = _k5(tmp_path)
    subjects = tmp_path / "subjects.csv"
    subjects.write_text("File,ID,Age,Weight,Height,Sex\nk5.csv,P1,30,seventy,175,M\n")
    with pytest.raises(DataError, match=r"subjects.csv: line 2, column 'Weight': 'seventy'"):
        convert_k5([k5], subjects, tmp_path / "out")
    subjects.write_text("File,ID,Age,Weight,Height,Sex\nk5.csv,P1,30,70,175,M\n"
                        "k5.csv,P2,30,70,175,M\n")
    with pytest.raises(DataError, match=r"line 3, column 'File': 'k5.csv' is listed more"):
        convert_k5([k5], subjects, tmp_path / "out")
    with pytest.raises(DataError, match="no K5 export to convert"):
        convert_k5([], subjects, tmp_path / "out")


# --- Yo-Yo metadata ----------------------------------------------------------------------------

META_HEADER = ("ID,Gender,Age,Height (cm),Weight (kg),Barometric Pressure (mmHg),"
               "Ambient Temperature (°C),Ambient Relative Humidity (%),COSMED File Name,"
               "Heart Rate Included?,YoYo Test Start Time,YoYo Test Start Index,"
               "YoYo Test End Time,YoYo Test End Index,Note")


def _yoyo(tmp_path: Path, edit=None) -> Path:
    """A two-round Yo-Yo tree of three people; ``edit(rnd, rows)`` may change the metadata
    rows (lists of cells) before they are written (latin-1, as the real files)."""
    root = tmp_path / "yoyo"
    for rnd, folder in [(1, "FirstRound"), (2, "SecondRound")]:
        rows = []
        for i, person in enumerate(["D01", "D02", "D03"]):
            (root / folder / person).mkdir(parents=True, exist_ok=True)
            _k5(root / folder / person, name=f"{person}_COSMED_{rnd}.csv")
            rows.append([person, "Female" if i % 2 else "Male", "24", "170", "70", "764", "18",
                         "44", f"{person}_COSMED_{rnd}.csv", "1", "100", "40", "400", "160", ""])
        if edit:
            edit(rnd, rows)
        text = "\n".join([META_HEADER] + [",".join(r) for r in rows]) + "\n"
        (root / folder / f"Metadata_{rnd}.csv").write_bytes(text.encode("latin-1"))
    return root


def test_yoyo_fake_tree_converts(tmp_path):
    r = convert_yoyo(_yoyo(tmp_path), tmp_path / "out")
    assert r["written"] == ["D01_1", "D02_1", "D03_1", "D01_2", "D02_2", "D03_2"]
    assert r["warnings"] == []


def test_yoyo_session_without_hr_in_its_k5_file_is_skipped(tmp_path):
    root = _yoyo(tmp_path)
    k5 = root / "FirstRound" / "D02" / "D02_COSMED_1.csv"
    lines = k5.read_text().splitlines()
    k5.write_text("\n".join(lines[:2] + [x.replace(",150,", ",0,") for x in lines[2:]]) + "\n")
    r = convert_yoyo(root, tmp_path / "out")
    assert "D02_1" not in r["written"] and "Heart Rate Included? = 1" in r["skipped"]["D02_1"]


@pytest.mark.parametrize(("col", "value", "message"), [
    (2, "abc", r"line 3, column 'Age': 'abc' is not a number"),
    (4, "", r"line 3, column 'Weight \(kg\)': value is missing"),
    (3, "1.7", r"line 3, column 'Height \(cm\)': 1.7 is outside the plausible range 100..230"),
    (1, "X", r"line 3, column 'Gender': 'X' is not a gender \(use Male or Female\)"),
    (9, "yes", r"line 3, column 'Heart Rate Included\?': 'yes' is not a number"),
    (9, "2", r"line 3, column 'Heart Rate Included\?': '2' is not 0 or 1"),
    (12, "50", r"line 3, column 'YoYo Test End Time': 50 s is not after the start time"),
    (7, "4 4", r"line 3, column 'Ambient Relative Humidity \(%\)': '4 4' is not a number"),
    (0, "D01", r"line 3, column 'ID': 'D01' is listed more than once"),
])
def test_bad_yoyo_metadata_cell_names_file_line_and_column(tmp_path, col, value, message):
    def edit(rnd, rows):
        if rnd == 2:
            rows[1][col] = value

    with pytest.raises(DataError, match=r"SecondRound/Metadata_2.csv: " + message):
        read_yoyo(_yoyo(tmp_path, edit))


def test_yoyo_missing_k5_file_names_the_metadata_line(tmp_path):
    def edit(rnd, rows):
        if rnd == 1:
            rows[2][8] = "D03_COSMED_9.csv"

    with pytest.raises(DataError, match=r"FirstRound/Metadata_1.csv: line 4, column 'COSMED "
                       r"File Name': .*FirstRound/D03/D03_COSMED_9.csv not found"):
        read_yoyo(_yoyo(tmp_path, edit))


def test_yoyo_test_period_outside_the_recording(tmp_path):
    def edit(rnd, rows):
        if rnd == 1:
            rows[0][10], rows[0][12] = "5000", "6000"

    with pytest.raises(DataError, match=r"Metadata_1.csv: line 2, columns 'YoYo Test Start "
                       r"Time'/'End Time': no breath of .* lies between 5000 and 6000 s"):
        read_yoyo(_yoyo(tmp_path, edit))


# --- real data: nothing changes ----------------------------------------------------------------

#: SHA256 of the canonical files that the code before the input checks (commit dc83456)
#: wrote from the shared Yo-Yo recordings: the checks must not change real data.
YOYO_CANONICAL_SHA256 = {
    "subject-info.csv": "90e6c37caf07404f54f9083dd74a90b182db6fa3c3c13661dfce49b8cff980a3",
    "test_measure.csv": "4d58c41aa70da1d518a8e37b6a41861d793b3bbc8c01fe25bcf6adc7807acaba",
}


@needs_shared
def test_real_yoyo_conversion_is_byte_identical(tmp_path):
    r = convert_yoyo(SHARED / "yoyo-k5", tmp_path / "out")
    assert r["warnings"] == []
    for name, sha in YOYO_CANONICAL_SHA256.items():
        assert hashlib.sha256((tmp_path / "out" / name).read_bytes()).hexdigest() == sha, name
    ds, w = prepare_windows(tmp_path / "out")
    assert "isolated_time_rows" not in ds.report.counts and len(w) == 285
