"""Physiological invariants of the simulator."""

import numpy as np
import pandas as pd
import pytest

from vo2spike.data.read import load_dataset
from vo2spike.data.realism import session_stats
from vo2spike.data.simulate import (
    FOUNDATION,
    K5_MATCHED,
    YOYO_RECOVERY_KMH,
    demand_vo2,
    protocol_speed,
    sample_physiology,
    simulate_cohort,
    simulate_signals,
    synthetic_demographics,
    write_cohort,
    yoyo_course,
)
from vo2spike.outputs import OutputExistsError

from .conftest import SHARED, needs_shared


def _person(seed=0, fitness=0.0):
    rng = np.random.default_rng(seed)
    return sample_physiology(30, 70, 178, 0, fitness, rng), rng


@pytest.mark.parametrize("seed", range(5))
def test_ramp_test_physiology(seed):
    p, rng = _person(seed)
    speed = protocol_speed("ramp", p, 70, rng)
    s = simulate_signals(speed, p, 70, rng)
    assert np.all(s["VO2"] <= p.vo2max + 1e-6)
    assert s["VO2"].max() > 0.9 * p.vo2max  # a maximal test reaches VO2max
    assert np.all(s["HR"] <= p.hr_max + 1e-6)
    peak = np.argmax(s["VO2"])
    assert 45 <= s["RR"][peak] <= 70
    rer = s["VCO2"] / s["VO2"]
    f = s["VO2"] / p.vo2max
    assert rer[f > 0.97].mean() > 1.0 > rer[(f > 0.3) & (f < p.vt1 - 0.05)].mean()
    eq = s["VE"] * 1000 / s["VO2"]
    assert eq[f > 0.97].mean() > eq[(f > 0.4) & (f < p.vt2 - 0.05)].mean()  # VE/VO2 rises
    # Graded test: 6 km/h, +1 km/h per minute, then walking recovery.
    running = speed[speed > 0]
    assert running[0] == 6.0 and running[-1] == 5.0 and running.max() >= 10


def test_fitter_people_have_higher_vo2max_and_lower_hr_at_same_speed():
    fit, rng1 = _person(1, fitness=1.5)
    unfit, rng2 = _person(1, fitness=-1.5)
    assert fit.vo2max > unfit.vo2max
    speed = np.full(600, 10.0)
    hr_fit = simulate_signals(speed, fit, 70, rng1)["HR"][-60:].mean()
    hr_unfit = simulate_signals(speed, unfit, 70, rng2)["HR"][-60:].mean()
    assert hr_fit < hr_unfit


def test_demand_follows_acsm():
    p, _ = _person()
    d = demand_vo2(np.array([6.0, 12.0]), p, 70)
    assert np.isclose(d[0], (3.5 + 0.1 * 100) * 70)
    assert np.isclose(d[1], (3.5 + 0.2 * 200 * p.economy) * 70)


def test_protocols_have_their_shape():
    p, rng = _person(2)
    steady = protocol_speed("steady", p, 70, rng)
    assert len(np.unique(steady)) == 3  # warm-up, pace, cool-down
    intervals = protocol_speed("intervals", p, 70, rng)
    assert len(np.flatnonzero(np.diff(intervals))) >= 10


def test_cohort_is_reproducible_and_has_breath_rows():
    demo = synthetic_demographics(6, np.random.default_rng(0))
    a = simulate_cohort(demo, seed=4)[1]
    b = simulate_cohort(demo, seed=4)[1]
    c = simulate_cohort(demo, seed=5)[1]
    pd.testing.assert_frame_equal(a, b)
    assert not a["VO2"].equals(c["VO2"])
    dt = a.groupby("ID_test")["time"].diff().dropna()
    assert dt.std() > 0.3  # irregular breath timing


def test_cohort_includes_artefacts_that_cleaning_removes(sim_dir):
    raw = pd.read_csv(sim_dir / "test_measure.csv")
    assert (raw["VO2"] > 10_000).any() and (raw["HR"] == 0).any()
    ds = load_dataset(sim_dir)
    assert ds.source["kind"] == "simulated"


def test_synthetic_demographics_look_like_malaga():
    d = synthetic_demographics(992, np.random.default_rng(1))
    assert len(d) == 992 and d["ID_test"].is_unique
    assert 0.10 < d["Sex"].mean() < 0.20
    assert d["Age"].between(10, 64).all()
    assert d["ID"].nunique() < len(d)  # some people were tested twice


@needs_shared
def test_real_demographics_are_kept(tmp_path):
    real = SHARED / "physionet-treadmill-1.0.1" / "subject-info.csv"
    out = write_cohort(tmp_path / "sim", n_tests=12, demographics_csv=real)
    got = pd.read_csv(out / "subject-info.csv")
    want = pd.read_csv(real).iloc[:12]
    pd.testing.assert_frame_equal(got[["Age", "Weight", "Height", "Sex", "ID_test"]],
                                  want[["Age", "Weight", "Height", "Sex", "ID_test"]])
    meas = pd.read_csv(out / "test_measure.csv")
    assert list(meas.columns) == ["time", "Speed", "HR", "VO2", "VCO2", "RR", "VE", "ID",
                                  "ID_test"]
    assert set(meas["ID_test"]) == set(want["ID_test"])


def test_write_refuses_to_overwrite(tmp_path):
    out = write_cohort(tmp_path / "sim", n_tests=2)
    before = (out / "test_measure.csv").read_bytes()
    with pytest.raises(OutputExistsError):
        write_cohort(out, n_tests=3, seed=9)
    assert (out / "test_measure.csv").read_bytes() == before
    write_cohort(out, n_tests=3, seed=9, force=True)
    assert (out / "test_measure.csv").read_bytes() != before


@pytest.mark.parametrize("seed", range(4))
def test_yoyo_course_shuttles_recoveries_and_gps(seed):
    p, rng = _person(seed)
    c = yoyo_course(p, 70, rng)
    running = c.speed >= 10
    assert running.any() and (c.speed == YOYO_RECOVERY_KMH).sum() >= 20  # 10 s recoveries
    assert np.all(c.cost[running] > 1.4)  # turns make shuttles costly
    assert np.all(c.cost[c.speed == YOYO_RECOVERY_KMH] == 1.0)  # recoveries cost as walking
    noise = c.measured_speed - c.speed
    assert 0.3 < noise.std() < 5 and c.measured_speed.min() >= 0  # GPS: lagged and noisy
    s = simulate_signals(c.speed, p, 70, rng, c.cost)
    assert s["VO2"].max() > 0.75 * p.vo2max  # an exhausting test


def test_k5_matched_calibration_moves_towards_the_real_recordings():
    demo = synthetic_demographics(8, np.random.default_rng(2))
    stats = {}
    for cal in (FOUNDATION, K5_MATCHED):
        subj, meas, _ = simulate_cohort(demo, seed=2, calibration=cal)
        w = subj.set_index("ID_test")["Weight"]
        stats[cal.name] = pd.DataFrame([session_stats(g, w[t])
                                        for t, g in meas.groupby("ID_test")]).median()
    # Real Yo-Yo medians (docs/realism.md): breath noise 0.078, VE/VO2 at 40-60% 29.
    assert abs(stats["k5-matched"]["breath_noise_cv"] - 0.078) < \
        abs(stats["foundation"]["breath_noise_cv"] - 0.078)
    assert stats["k5-matched"]["ve_vo2_sub"] > stats["foundation"]["ve_vo2_sub"]


#: SHA-256 of small foundation cohorts (measures and the latent physiology as float64 bytes),
#: recorded before the Malaga calibration was added: ``--calibration foundation`` must keep
#: reproducing them (truth.csv has gained columns since; the original ones are hashed).
TRUTH_COLUMNS = ["vo2max", "vo2_rest", "hr_max", "hr_rest", "vt1", "vt2", "economy", "tau_vo2",
                 "tau_hr", "hr_drift", "rer_rest", "rer_max", "ve_vco2", "ve_vco2_rise",
                 "rr_rest", "rr_max", "reserve"]
FOUNDATION_HASHES = {
    "ramp": "bca7d3e518860aa93cbdcf636e366035b27806346e40ea27dcc3845fcddcf07d",
    "steady": "a1d1afc8dca0581c5f01ab502c956d8055b62d90dd98f53d519c5cf73426fb11",
    "intervals": "d2b75f8923a6d67538cdf7b739ca0db24f97f0787189224733fb920c2c778cbf",
    "yoyo": "fced05c1f2b497ac8014bc548d83b72bbc7950cc2611ad6cb7203bb5b863f5dd",
}


@pytest.mark.parametrize("protocol", sorted(FOUNDATION_HASHES))
def test_foundation_calibration_reproduces_the_old_cohort_bit_for_bit(protocol):
    import hashlib

    demo = synthetic_demographics(8, np.random.default_rng(21))
    _, measures, truth = simulate_cohort(demo, protocol=protocol, seed=21,
                                         calibration=FOUNDATION)
    h = hashlib.sha256(measures.drop(columns=["ID", "ID_test"]).to_numpy(float).tobytes())
    h.update(truth[TRUTH_COLUMNS].to_numpy(float).tobytes())
    assert h.hexdigest() == FOUNDATION_HASHES[protocol]


def test_malaga_person_walking_and_exhaustion():
    from vo2spike.data.simulate import MALAGA, critical_speed, malaga_ramp

    rng = np.random.default_rng(5)
    adult = sample_physiology(28, 70, 178, 0, 0.0, rng, MALAGA)
    rng = np.random.default_rng(5)
    child = sample_physiology(12, 40, 150, 0, 0.0, rng, MALAGA)
    rng = np.random.default_rng(5)
    woman = sample_physiology(28, 60, 165, 1, 0.0, rng, MALAGA)
    assert child.economy > 1.2 * adult.economy  # children run less economically
    assert woman.d_prime < adult.d_prime and child.d_prime < adult.d_prime
    assert woman.vo2max / 60 < adult.vo2max / 70 - 10  # sex gap of the FRIEND norms
    # Walking cost per kg is higher for a shorter person (Ludlow & Weyand); 5 km/h ~ 14-16.
    walk = [demand_vo2(np.array([5.0]), p, w)[0] / w for p, w in ((adult, 70), (child, 40))]
    assert 13 < walk[0] < walk[1] < 18
    # The graded test ends once D' has been run above critical speed.
    speed = malaga_ramp(adult, 70, np.random.default_rng(1))
    top = speed.max()
    expected = critical_speed(adult, 70) + np.sqrt(432 * adult.d_prime) / 60
    assert abs(top - expected) < 0.3
    assert (speed[: np.argmax(speed > 5)] <= 5).all() and (speed == 5).sum() >= 60


def test_malaga_vo2_ends_below_vo2max_and_hr_near_hrmax():
    from vo2spike.data.simulate import MALAGA, malaga_ramp

    rng = np.random.default_rng(3)
    p = sample_physiology(25, 70, 178, 0, 0.0, rng, MALAGA)
    speed = malaga_ramp(p, 70, rng)
    s = simulate_signals(speed, p, 70, rng, cal=MALAGA)
    end = int(np.argmax(speed)) + int((speed == speed.max()).sum()) - 1
    assert s["VO2"][end] < p.vo2max  # slow kinetics above VT1: the ramp ends first
    assert s["VO2"][end] > 0.85 * p.vo2max
    assert 0.9 * p.hr_max < s["HR"][end] <= p.hr_max
