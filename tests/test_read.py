"""Validators against malformed files: fatal structural errors name file, line and column;
artefacts and ordering problems are warnings."""

import re

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vo2spike.data.read import (
    MEASURE_COLUMNS,
    DataError,
    load_dataset,
    read_subject_info,
    read_test_measure,
)

SUBJECTS = pd.DataFrame({
    "Age": [25.0, 31.5], "Weight": [70.0, 60.2], "Height": [178, 165], "Humidity": [40, ""],
    "Temperature": [21.0, 22.0], "Sex": [0, 1], "ID": [1, 2], "ID_test": ["1_1", "2_1"],
})


def _measures(n: int = 8) -> pd.DataFrame:
    rows = []
    for tid, pid in [("1_1", 1), ("2_1", 2)]:
        for i in range(n):
            rows.append({"time": 3.0 * i, "Speed": 6.0, "HR": 100 + i, "VO2": 1500.0,
                         "VCO2": 1300.0, "RR": 25.0, "VE": 40.0, "ID": pid, "ID_test": tid})
    return pd.DataFrame(rows)[MEASURE_COLUMNS]


def _write(tmp_path, subjects=SUBJECTS, measures=None):
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    subjects.to_csv(d / "subject-info.csv", index=False)
    (_measures() if measures is None else measures).to_csv(d / "test_measure.csv", index=False)
    return d


def test_valid_directory_loads(tmp_path):
    ds = load_dataset(_write(tmp_path))
    assert len(ds.subjects) == 2 and len(ds.measures) == 16
    assert ds.subjects["Sex"].tolist() == [0, 1]
    assert ds.report.warnings == []
    assert ds.source["kind"].startswith("user data")


@pytest.mark.parametrize("column", ["time", "VO2", "HR", "ID_test"])
def test_missing_measure_column_is_fatal(tmp_path, column):
    d = _write(tmp_path, measures=_measures().drop(columns=[column]))
    with pytest.raises(DataError, match=rf"test_measure.csv: missing required column.*{column}"):
        load_dataset(d)


def test_missing_subject_column_is_fatal(tmp_path):
    d = _write(tmp_path, subjects=SUBJECTS.drop(columns=["Weight"]))
    with pytest.raises(DataError, match="subject-info.csv: missing required column.*Weight"):
        load_dataset(d)


@given(row=st.integers(0, 15), column=st.sampled_from(["time", "Speed", "HR", "VO2", "VE"]),
       text=st.sampled_from(["abc", "12,5", "1.2.3", "--"]))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_text_in_number_column_names_line_and_column(tmp_path, row, column, text):
    m = _measures().astype({column: object})
    m.loc[row, column] = text
    d = _write(tmp_path, measures=m)
    with pytest.raises(DataError) as e:
        load_dataset(d)
    msg = str(e.value)
    assert "test_measure.csv" in msg and f"line {row + 2}" in msg and f"'{column}'" in msg


def test_bad_sex_code_names_line(tmp_path):
    s = SUBJECTS.copy().astype({"Sex": object})
    s.loc[1, "Sex"] = "x"
    with pytest.raises(DataError, match=r"line 3, column 'Sex'"):
        read_subject_info(_write(tmp_path, subjects=s) / "subject-info.csv")


def test_text_sex_codes_are_encoded(tmp_path):
    s = SUBJECTS.copy().astype({"Sex": object})
    s["Sex"] = ["M", "female"]
    assert read_subject_info(_write(tmp_path, subjects=s) / "subject-info.csv")["Sex"].tolist() \
        == [0, 1]


def test_implausible_subject_value_is_fatal(tmp_path):
    s = SUBJECTS.copy()
    s.loc[0, "Weight"] = 7000
    with pytest.raises(DataError, match=r"line 2, column 'Weight'.*plausible"):
        read_subject_info(_write(tmp_path, subjects=s) / "subject-info.csv")


def test_empty_and_header_only_files_are_fatal(tmp_path):
    d = _write(tmp_path)
    (d / "test_measure.csv").write_text(",".join(MEASURE_COLUMNS) + "\n")
    with pytest.raises(DataError, match="no data rows"):
        load_dataset(d)
    (d / "test_measure.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        load_dataset(d)


def test_missing_file_is_fatal(tmp_path):
    d = _write(tmp_path)
    (d / "test_measure.csv").unlink()
    with pytest.raises(DataError, match="test_measure.csv: file not found"):
        load_dataset(d)


def test_no_matching_tests_is_fatal(tmp_path):
    m = _measures()
    m["ID_test"] = "9_9"
    with pytest.raises(DataError, match="no test appears in both"):
        load_dataset(_write(tmp_path, measures=m))


def test_unsorted_and_duplicate_times_are_warnings(tmp_path):
    m = _measures()
    m = pd.concat([m.iloc[[3]], m, m.iloc[[5]]], ignore_index=True)  # out of order + repeat
    ds = load_dataset(_write(tmp_path, measures=m))
    assert ds.report.counts["tests_with_unsorted_times"] == 1
    assert ds.report.counts["duplicate_time_rows"] == 2
    for _, g in ds.measures.groupby("ID_test"):
        assert g["time"].is_monotonic_increasing and g["time"].is_unique


def test_tests_in_one_file_only_are_skipped_with_warning(tmp_path):
    m = _measures()
    extra = m[m.ID_test == "1_1"].assign(ID_test="3_1", ID=3)
    s = pd.concat([SUBJECTS, SUBJECTS.iloc[[0]].assign(ID_test="4_1", ID=4)])
    ds = load_dataset(_write(tmp_path, subjects=s, measures=pd.concat([m, extra])))
    assert set(ds.subjects["ID_test"]) == {"1_1", "2_1"}
    assert ds.report.counts["tests_without_subject_info"] == 1
    assert ds.report.counts["tests_without_measurements"] == 1
    assert any("3_1" in w for w in ds.report.warnings)
    assert any("4_1" in w for w in ds.report.warnings)


def test_missing_values_are_not_fatal(tmp_path):
    m = _measures().astype({"HR": object})
    m.loc[2, "HR"] = ""
    ds = load_dataset(_write(tmp_path, measures=m))
    assert ds.measures["HR"].isna().sum() == 1


def test_labels_optional_for_prediction(tmp_path):
    d = _write(tmp_path, measures=_measures().drop(columns=["VO2", "VCO2"]))
    m = read_test_measure(d / "test_measure.csv", require_labels=False)
    assert m["VO2"].isna().all()
    with pytest.raises(DataError, match=re.escape("VO2, VCO2")):
        read_test_measure(d / "test_measure.csv")
