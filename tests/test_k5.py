"""COSMED K5 / Yo-Yo readers on the real shared recordings, and realism statistics."""

import numpy as np
import pytest

from vo2spike.data.k5 import read_k5_csv, read_yoyo
from vo2spike.data.read import DataError
from vo2spike.data.realism import session_stats
from vo2spike.data.simulate import NoiseModel, simulate_cohort, synthetic_demographics

from .conftest import SHARED, needs_shared

YOYO = SHARED / "yoyo-k5"
D06 = YOYO / "FirstRound" / "D06" / "D06_COSMED_1.csv"


@needs_shared
def test_reads_real_k5_export():
    df = read_k5_csv(D06)
    assert list(df.columns) == ["time", "Speed", "HR", "VO2", "VCO2", "RR", "VE"]
    assert len(df) == 842  # 844 lines less the names and units lines
    assert df["time"].is_monotonic_increasing
    assert df["VO2"].max() > 1000 and df["HR"].max() > 150


@needs_shared
def test_reads_every_yoyo_session_with_metadata():
    sessions = read_yoyo(YOYO)
    assert len(sessions) == 22
    no_hr = {s.id_test for s in sessions if not s.has_hr}
    assert no_hr == {"D05_1", "D09_1", "D09_2"}
    for s in sessions:
        assert s.end_s > s.start_s
        assert len(s.test_period()) > 50
    d10 = next(s for s in sessions if s.id_test == "D10_1")
    assert "restarted" in d10.note and d10.sex == 0 and d10.weight_kg == 70


@needs_shared
def test_malformed_k5_names_line_and_column(tmp_path):
    lines = D06.read_text(encoding="utf-8").splitlines()
    cells = lines[10].split(",")
    cells[5] = "oops"  # the VO2 column
    lines[10] = ",".join(cells)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.csv: line 11, column 'VO2'"):
        read_k5_csv(bad)


def test_k5_without_required_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("t,VE,VO2\ns,L/min,mL/min\n0,10,300\n")
    with pytest.raises(DataError, match="missing required column.*Rf"):
        read_k5_csv(bad)


def test_realism_stats_recover_simulated_noise():
    demo = synthetic_demographics(4, np.random.default_rng(0))
    for cv in (0.05, 0.15):
        subj, meas, _ = simulate_cohort(demo, seed=1, noise=NoiseModel(breath_cv=cv))
        w = subj.set_index("ID_test")["Weight"]
        got = [session_stats(g, w[t])["breath_noise_cv"] for t, g in meas.groupby("ID_test")]
        total = np.hypot(cv, NoiseModel().own_cv)  # shared depth noise + the gas's own
        assert np.median(got) == pytest.approx(total, rel=0.25)
