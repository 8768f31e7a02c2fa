import numpy as np
import pandas as pd

from vo2spike.data.clean import clean_measures
from vo2spike.data.read import DataReport


def _test(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "ID_test": "1_1", "time": np.arange(n) * 2.0, "Speed": 10.0,
        "HR": 150 + rng.normal(0, 1, n), "VO2": 3000 * (1 + rng.normal(0, 0.1, n)),
        "VCO2": 2800 * (1 + rng.normal(0, 0.1, n)), "RR": 35 + rng.normal(0, 2, n),
        "VE": 90 * (1 + rng.normal(0, 0.1, n)),
    })


def test_artefacts_become_missing_and_are_counted():
    df = _test()
    df.loc[5, "HR"] = 0  # strap drop-out
    df.loc[10, "VO2"] = 25_000  # absurd breath
    df.loc[20, "VE"] = 400  # more than 10 s of breathing in one breath
    report = DataReport()
    out = clean_measures(df, report, required=("VO2", "VCO2", "VE", "HR"))
    assert report.counts["implausible_HR"] == 1
    assert report.counts["implausible_VO2"] == 1
    assert report.counts["implausible_VE"] == 1
    assert report.counts["rows_dropped_missing"] == len(df) - len(out)
    assert out["VO2"].max() < 10_000 and out["HR"].min() > 30


def test_rolling_median_catches_in_range_spikes_but_keeps_normal_noise():
    df = _test(n=200)
    df.loc[50, "VO2"] = 7900  # in range, but 2.6x its neighbours
    report = DataReport()
    out = clean_measures(df, report, required=("VO2",))
    assert 50 not in set(out.index[out["time"] == 100.0]) and (out["time"] != 100.0).all()
    assert report.counts.get("outlier_VO2", 0) <= 3  # 10% breath noise is not an artefact


def test_messages_name_the_file_and_first_line():
    df = _test()
    df["line"] = np.arange(2, len(df) + 2)
    df.loc[7, "HR"] = 0
    report = DataReport()
    clean_measures(df, report, required=("HR",), source="d/test_measure.csv")
    assert report.warnings[0] == ("d/test_measure.csv: 1 HR value(s) outside 30..230 treated "
                                  "as missing (artefacts; first at line 9)")
    assert report.warnings[-1].startswith("d/test_measure.csv: 1 of 60 breath rows dropped")
