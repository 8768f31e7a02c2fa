"""Physiological simulator: writes a cohort in the PhysioNet treadmill format.

Every equation and constant is documented, with sources, in ``docs/simulator.md``.
The pipeline per test: person physiology -> speed protocol (km/h, 1 Hz) -> VO2 demand
(ACSM running/walking equations) -> first-order VO2 kinetics with a slow component above
VT2, capped at VO2max -> VCO2 via RER -> VE via ventilatory equivalents -> RR -> HR with its
own kinetics and drift -> irregular breath-by-breath sampling with noise and artefacts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vo2spike import __version__
from vo2spike.data.read import (
    MEASURE_COLUMNS,
    MEASURE_FILE,
    SIMULATION_MARKER,
    SUBJECT_FILE,
    read_subject_info,
)
from vo2spike.outputs import atomic_dir

PROTOCOLS = ("ramp", "steady", "intervals", "yoyo", "mixed")
WALK_RUN_KMH = 7.0  # below this the treadmill pace is walked (ACSM walking equation)


@dataclass(frozen=True)
class Calibration:
    """Constants that were tuned against the real Yo-Yo recordings (docs/simulator.md, 5).

    ``foundation`` (the default) is the first version. ``k5-matched`` moves breath noise,
    ventilation and breathing rate towards the real K5 sessions' statistics; measured by
    leave-one-person-out, it did not make the simulation-trained model transfer better, so
    it is kept as an option, not the default.
    """

    name: str
    ve_vco2: tuple[float, float]  # range of VE/VCO2 below VT2
    rr_rest: tuple[float, float]  # range of resting RR, breaths/min
    rr_exponent: float  # RR rises as (VE / VE peak) ** rr_exponent
    rest_ve_vco2: float  # extra VE/VCO2 at rest (dead space)
    co2_overshoot: float  # RER rise per unit of (recent - current) intensity in recovery
    breath_cv: float  # breath-depth noise shared by VO2, VCO2, VE (fraction)
    own_cv: float  # independent noise of each gas signal (fraction)


FOUNDATION = Calibration("foundation", (25.0, 31.0), (12.0, 20.0), 1.6, 8.0, 0.0, 0.12, 0.04)
K5_MATCHED = Calibration("k5-matched", (28.0, 35.0), (14.0, 22.0), 1.0, 10.0, 0.4, 0.075, 0.03)
CALIBRATIONS = {c.name: c for c in (FOUNDATION, K5_MATCHED)}


@dataclass(frozen=True)
class Physiology:
    """Latent physiology of one person on one test day."""

    vo2max: float  # mL/min
    vo2_rest: float  # mL/min, standing
    hr_max: float  # bpm
    hr_rest: float  # bpm
    vt1: float  # fraction of VO2max
    vt2: float  # fraction of VO2max
    economy: float  # multiplier on the net O2 cost of running (1 = ACSM)
    tau_vo2: float  # s
    tau_hr: float  # s
    hr_drift: float  # bpm/min at maximal intensity
    rer_rest: float
    rer_max: float
    ve_vco2: float  # ventilatory equivalent for CO2 below VT2
    ve_vco2_rise: float  # added at VO2max
    rr_rest: float  # breaths/min
    rr_max: float  # breaths/min
    reserve: float  # demand above VO2max (fraction) tolerated before exhaustion


def sample_physiology(
    age: float, weight: float, height: float, sex: int, fitness: float,
    rng: np.random.Generator, cal: Calibration = FOUNDATION,
) -> Physiology:
    """Draw one person's physiology from demographics and a fitness random effect (z-score)."""
    bmi = weight / (height / 100.0) ** 2
    rel = (
        57.0
        - 0.30 * max(age - 25.0, 0.0)
        - 0.40 * max(16.0 - age, 0.0)
        - 8.0 * sex
        - 0.6 * (bmi - 22.0)
        + 6.0 * fitness
    )
    rel = float(np.clip(rel, 25.0, 85.0))  # mL/kg/min
    vt1 = float(np.clip(rng.normal(0.62, 0.05) + 0.02 * fitness, 0.48, 0.75))
    vt2 = float(np.clip(vt1 + rng.normal(0.22, 0.03), vt1 + 0.1, 0.93))
    return Physiology(
        vo2max=rel * weight,
        vo2_rest=4.0 * weight,
        hr_max=float(np.clip(208.0 - 0.7 * age + rng.normal(0, 7), 150, 225)),
        hr_rest=float(np.clip(62.0 - 2.5 * fitness + 0.1 * (age - 30) + rng.normal(0, 6), 40, 90)),
        vt1=vt1,
        vt2=vt2,
        economy=float(np.clip(rng.normal(1.0, 0.06) - 0.02 * fitness, 0.8, 1.2)),
        tau_vo2=float(np.clip(rng.normal(30.0, 5.0) - 3.0 * fitness, 18, 45)),
        tau_hr=float(rng.uniform(25, 50)),
        hr_drift=float(rng.uniform(0.5, 2.0)),
        rer_rest=float(rng.uniform(0.78, 0.88)),
        rer_max=float(rng.uniform(1.08, 1.22)),
        ve_vco2=float(rng.uniform(*cal.ve_vco2)),
        ve_vco2_rise=float(rng.uniform(6.0, 12.0)),
        rr_rest=float(rng.uniform(*cal.rr_rest)),
        rr_max=float(rng.uniform(50.0, 65.0)),
        reserve=float(rng.uniform(0.04, 0.16)),
    )


def demand_vo2(speed_kmh: np.ndarray, p: Physiology, weight: float,
               cost: float | np.ndarray = 1.0) -> np.ndarray:
    """Steady-state O2 demand (mL/min) of level locomotion at ``speed_kmh``.

    ACSM: walking 3.5 + 0.1 v, running 3.5 + 0.2 v (mL/kg/min, v in m/min); standing uses
    the person's resting VO2. ``cost`` multiplies the net (above resting) running cost, e.g.
    for the turns of shuttle running.
    """
    v = speed_kmh * 1000.0 / 60.0
    net = np.where(speed_kmh < WALK_RUN_KMH, 0.1 * v, 0.2 * v * p.economy * cost)
    return np.where(speed_kmh <= 0.0, p.vo2_rest, 3.5 * weight + net * weight)


def speed_at_vo2max(p: Physiology, weight: float) -> float:
    """Running speed (km/h) whose ACSM demand equals VO2max."""
    v = (p.vo2max / weight - 3.5) / (0.2 * p.economy)
    return v * 60.0 / 1000.0


def protocol_speed(protocol: str, p: Physiology, weight: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Speed (km/h) at 1 Hz for one test."""
    if protocol == "ramp":
        # Malaga-like graded test: stand, 6 km/h then +1 km/h each minute to exhaustion.
        rest = np.zeros(int(rng.integers(20, 60)))
        stages = []
        speed = 6.0
        limit = p.vo2max * (1.0 + p.reserve)
        while True:
            if demand_vo2(np.array([speed]), p, weight)[0] > limit or speed > 26:
                stages.append(np.full(int(rng.integers(15, 60)), speed))
                break
            stages.append(np.full(60, speed))
            speed += 1.0
        recovery = np.full(int(rng.integers(60, 180)), 5.0)
        return np.concatenate([rest, *stages, recovery])
    vmax = speed_at_vo2max(p, weight)
    warm = np.full(int(rng.integers(180, 300)), float(np.clip(0.55 * vmax, 6.0, 10.0)))
    cool = np.full(int(rng.integers(120, 240)), 5.0)
    if protocol == "steady":
        pace = round(float(rng.uniform(0.60, 0.88)) * vmax, 1)
        main = np.full(int(rng.integers(600, 1500)), max(pace, 6.0))
        return np.concatenate([warm, main, cool])
    if protocol == "intervals":
        reps = []
        for _ in range(int(rng.integers(5, 10))):
            hard = round(float(rng.uniform(0.85, 1.05)) * vmax, 1)
            reps.append(np.full(int(rng.integers(60, 180)), hard))
            reps.append(np.full(int(rng.integers(60, 120)), round(max(0.45 * vmax, 6.0), 1)))
        return np.concatenate([warm, *reps, cool])
    raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")


#: Yo-Yo intermittent recovery test level 1: (speed km/h, number of 2 x 20 m bouts).
YOYO_LEVELS = [(10.0, 1), (12.0, 1), (13.0, 2), (13.5, 3), (14.0, 4)] + [
    (14.5 + 0.5 * i, 8) for i in range(14)]
YOYO_RECOVERY_KMH = 3.6  # 2 x 5 m in the 10 s between bouts


@dataclass
class Course:
    """What a protocol produces at 1 Hz: true speed (km/h), the cost multiplier of the
    running, and the speed a device measures (treadmill: exact; GPS: lagged and noisy)."""

    speed: np.ndarray
    cost: np.ndarray
    measured_speed: np.ndarray


def yoyo_course(p: Physiology, weight: float, rng: np.random.Generator) -> Course:
    """Yo-Yo IR1 to exhaustion: 2 x 20 m shuttles at rising speed, 10 s active recovery.

    Turns, accelerations and the 10 s recoveries make the mean O2 cost of a bout far above
    straight running at the same speed: a person-specific 1.5-1.9 x the net ACSM cost, so
    that the last levels come close to VO2max as measured Yo-Yo IR1 tests do (Bangsbo et al.
    2008, Sports Med 38:37). GPS speed: 3 s trailing mean (lag) plus N(0, 0.6) km/h noise.
    """
    shuttle_cost = float(rng.uniform(1.5, 1.9))
    limit = p.vo2max * (1.0 + p.reserve)
    speed = [np.zeros(int(rng.integers(45, 75)))]
    cost = [np.ones(len(speed[0]))]
    done = False
    for v, bouts in YOYO_LEVELS:
        bout_s = int(round(40.0 / (v / 3.6)))
        bout_demand = float(demand_vo2(np.array([v]), p, weight, shuttle_cost)[0])
        # Exhaustion (anaerobic, not aerobic, in an intermittent test): calibrated so that
        # end speeds match the real Yo-Yo sessions (about 14 km/h at 43, 18 km/h at 60
        # mL/kg/min).
        if bout_demand > 1.6 * limit:
            bouts, done = int(rng.integers(1, bouts + 1)), True
        for _ in range(bouts):
            bout = np.full(bout_s, v)
            bout[bout_s // 2] = 0.4 * v  # the turn at 20 m
            speed += [bout, np.full(10, YOYO_RECOVERY_KMH)]
            cost += [np.full(bout_s, shuttle_cost), np.ones(10)]
        if done:
            break
    tail = int(rng.integers(100, 160))
    speed.append(np.abs(rng.normal(1.0, 0.5, tail)))  # standing and walking about
    cost.append(np.ones(tail))
    true = np.concatenate(speed)
    lagged = np.convolve(true, np.ones(3) / 3, mode="full")[: len(true)]
    gps = np.round(np.clip(lagged + rng.normal(0, 0.6, len(true)), 0, None), 1)
    return Course(true, np.concatenate(cost), gps)


def protocol_course(protocol: str, p: Physiology, weight: float,
                    rng: np.random.Generator) -> Course:
    """The course of one test; treadmill protocols measure speed exactly."""
    if protocol == "yoyo":
        return yoyo_course(p, weight, rng)
    speed = protocol_speed(protocol, p, weight, rng)
    return Course(speed, np.ones(len(speed)), speed)


def first_order(x: np.ndarray, tau: float | np.ndarray, y0: float) -> np.ndarray:
    """Discrete first-order lag at 1 Hz: y' = (x - y) / tau (tau in s, scalar or per step)."""
    a = 1.0 - np.exp(-1.0 / np.broadcast_to(np.asarray(tau, dtype=float), x.shape))
    y = np.empty_like(x, dtype=float)
    prev = y0
    for i in range(len(x)):
        prev = prev + a[i] * (x[i] - prev)
        y[i] = prev
    return y


def simulate_signals(
    speed: np.ndarray, p: Physiology, weight: float, rng: np.random.Generator,
    cost: np.ndarray | float = 1.0, cal: Calibration = FOUNDATION,
) -> dict[str, np.ndarray]:
    """Noise-free-ish 1 Hz physiology for a speed profile: VO2, VCO2 (mL/min), VE (L/min),
    RR (breaths/min), HR (bpm)."""
    demand = demand_vo2(speed, p, weight, cost)
    # Off-kinetics (recovery) are a little slower than on-kinetics.
    falling = np.r_[False, np.diff(demand) < 0]
    tau = np.where(np.maximum.accumulate(falling), 1.2 * p.tau_vo2, p.tau_vo2)
    fast = first_order(demand, tau, p.vo2_rest)
    # Slow component: extra O2 cost developing over minutes above VT2.
    excess = np.maximum(demand - p.vt2 * p.vo2max, 0.0)
    slow = first_order(0.12 * excess, 150.0, 0.0)
    wobble = first_order(rng.normal(0, 0.02, len(speed)), 20.0, 0.0) * p.vo2max * 0.5
    vo2 = np.clip(fast + slow + wobble, 0.8 * p.vo2_rest, p.vo2max)
    f = vo2 / p.vo2max
    # After hard work, CO2 from bicarbonate buffering keeps RER and ventilation high while
    # VO2 falls: a 90 s lag of the intensity drives the recovery overshoot.
    recent = first_order(f, 90.0, f[0])
    overshoot = np.clip(recent - f, 0.0, None)
    rer = np.interp(f, [0.0, p.vt1, p.vt2, 1.0], [p.rer_rest, p.rer_rest, 1.0, p.rer_max])
    rer = rer + cal.co2_overshoot * overshoot
    vco2 = first_order(rer * vo2, 15.0, p.rer_rest * p.vo2_rest)
    drive = np.maximum(f, recent) if cal.co2_overshoot > 0 else f
    above_vt2 = np.clip((drive - p.vt2) / (1.0 - p.vt2), 0.0, 1.0) ** 1.5
    low_intensity = cal.rest_ve_vco2 * np.clip((0.3 - f) / 0.3, 0.0, 1.0)  # dead space
    eq = p.ve_vco2 + p.ve_vco2_rise * above_vt2 + low_intensity
    ve = first_order(vco2 / 1000.0 * eq, 8.0, p.rer_rest * p.vo2_rest / 1000.0 * eq[0])
    ve_peak = p.vo2max / 1000.0 * p.rer_max * (p.ve_vco2 + p.ve_vco2_rise)
    rr = p.rr_rest + (p.rr_max - p.rr_rest) * np.clip(ve / ve_peak, 0, 1) ** cal.rr_exponent
    # HR: %HR reserve tracks %VO2 reserve of the demand, lagged, plus cardiovascular drift.
    frac_d = np.clip((demand - p.vo2_rest) / (p.vo2max - p.vo2_rest), 0.0, 1.05)
    minutes_hard = np.cumsum(frac_d > 0.5) / 60.0
    hr_target = p.hr_rest + (p.hr_max - p.hr_rest) * frac_d + p.hr_drift * minutes_hard * frac_d
    hr = first_order(np.minimum(hr_target, p.hr_max), p.tau_hr, p.hr_rest)
    hr = np.minimum(hr + first_order(rng.normal(0, 1.5, len(speed)), 5.0, 0.0), p.hr_max)
    return {"VO2": vo2, "VCO2": vco2, "VE": ve, "RR": rr, "HR": hr}


@dataclass(frozen=True)
class NoiseModel:
    """Breath-by-breath measurement noise and artefact rates."""

    breath_cv: float = FOUNDATION.breath_cv  # shared breath-depth noise on VO2/VCO2/VE (fraction)
    own_cv: float = FOUNDATION.own_cv  # independent noise per gas signal (fraction)
    interval_sd: float = 0.18  # log-normal SD of breath intervals
    absurd_breath_rate: float = 0.002  # per breath: VO2 over 10,000 mL/min
    hr_dropout_prob: float = 0.3  # per test: 1-3 stretches of HR = 0
    gap_prob: float = 0.05  # per test: one 35-60 s stretch with no breaths (mask off)


def sample_breaths(
    signals: dict[str, np.ndarray],
    speed: np.ndarray,
    noise: NoiseModel,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Sample irregular breaths from 1 Hz signals, adding noise and artefacts."""
    n = len(speed)
    times = []
    t = float(rng.uniform(0.0, 2.0))
    while t < n - 1:
        times.append(t)
        rr_now = np.interp(t, np.arange(n), signals["RR"])
        t += 60.0 / rr_now * float(np.exp(rng.normal(0, noise.interval_sd)))
    times = np.asarray(times)
    grid = np.arange(n)
    at = {k: np.interp(times, grid, v) for k, v in signals.items()}
    k = len(times)
    depth = rng.normal(0, noise.breath_cv, k)
    rows = {
        "time": np.round(times, 1),
        "Speed": np.round(np.interp(times, grid, speed, ), 1),
        "HR": np.round(at["HR"]),
        "VO2": at["VO2"] * (1 + depth + rng.normal(0, noise.own_cv, k)),
        "VCO2": at["VCO2"] * (1 + depth + rng.normal(0, noise.own_cv, k)),
        "RR": 60.0 / np.diff(np.r_[times[0] - 60.0 / at["RR"][0], times]),
        "VE": at["VE"] * (1 + 0.8 * depth + rng.normal(0, noise.own_cv, k)),
    }
    df = pd.DataFrame(rows)
    absurd = rng.random(k) < noise.absurd_breath_rate
    df.loc[absurd, "VO2"] = rng.uniform(10_500, 30_000, int(absurd.sum()))
    df.loc[absurd, "VCO2"] = rng.uniform(10_500, 30_000, int(absurd.sum()))
    if rng.random() < noise.hr_dropout_prob:
        for _ in range(int(rng.integers(1, 4))):
            a = rng.uniform(0, n)
            df.loc[(df["time"] >= a) & (df["time"] < a + rng.uniform(5, 30)), "HR"] = 0
    if rng.random() < noise.gap_prob:
        a = rng.uniform(0.2 * n, 0.8 * n)
        df = df[(df["time"] < a) | (df["time"] >= a + rng.uniform(35, 60))]
    for col, nd in [("VO2", 1), ("VCO2", 1), ("VE", 2), ("RR", 1)]:
        df[col] = df[col].round(nd)
    return df.reset_index(drop=True)


def synthetic_demographics(n_tests: int, rng: np.random.Generator) -> pd.DataFrame:
    """Demographics shaped like the Malaga cohort: ages 10-63, 15% women, some repeat tests."""
    rows = []
    pid = 0
    while len(rows) < n_tests:
        pid += 1
        sex = int(rng.random() < 0.15)
        age = float(np.clip(rng.gamma(4.0, 4.6) + 10.5, 10.0, 63.0))  # mean 29, sd 9
        height = float(np.clip(rng.normal(164 if sex else 177, 6.5), 140, 205))
        if age < 16:
            height -= (16 - age) * 4.0
        bmi = float(np.clip(rng.normal(23.0, 2.5), 16.0, 35.0))
        n_rep = 1 + int(rng.random() < 0.135) + int(rng.random() < 0.02)  # 741/100/16 in Malaga
        for r in range(n_rep):
            if len(rows) == n_tests:
                break
            rows.append({
                "Age": round(min(age + r * rng.uniform(0.3, 2.0), 63.0), 1),
                "Weight": round(bmi * (height / 100) ** 2 + rng.normal(0, 1.0), 1),
                "Height": round(height),
                "Humidity": round(float(rng.uniform(30, 60))),
                "Temperature": round(float(rng.uniform(19, 26)), 1),
                "Sex": sex,
                "ID": str(pid),
                "ID_test": f"{pid}_{r + 1}",
            })
    return pd.DataFrame(rows)


def simulate_cohort(
    demographics: pd.DataFrame,
    protocol: str = "ramp",
    seed: int = 0,
    noise: NoiseModel | None = None,
    calibration: Calibration = FOUNDATION,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Simulate every test of ``demographics``.

    Returns (subject_info, test_measure, truth) where truth holds the latent physiology
    (true VO2max etc.) per test, for tests and documentation only.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    noise = noise or NoiseModel(calibration.breath_cv, calibration.own_cv)
    rng = np.random.default_rng(seed)
    people = sorted(demographics["ID"].astype(str).unique())
    fitness = dict(zip(people, rng.normal(0, 1, len(people)), strict=True))
    measures, truth = [], []
    for i, row in enumerate(demographics.itertuples(index=False)):
        trng = np.random.default_rng([seed, i])
        fit = fitness[str(row.ID)] + trng.normal(0, 0.15)  # day-to-day variation
        p = sample_physiology(row.Age, row.Weight, row.Height, int(row.Sex), fit, trng,
                              calibration)
        proto = protocol
        if protocol == "mixed":
            proto = str(trng.choice(["ramp", "steady", "intervals", "yoyo"],
                                    p=[0.4, 0.15, 0.15, 0.3]))
        course = protocol_course(proto, p, row.Weight, trng)
        signals = simulate_signals(course.speed, p, row.Weight, trng, course.cost, calibration)
        breaths = sample_breaths(signals, course.measured_speed, noise, trng)
        breaths["ID"] = row.ID
        breaths["ID_test"] = row.ID_test
        measures.append(breaths)
        truth.append({"ID_test": row.ID_test, "protocol": proto, **asdict(p)})
    cols = ["Age", "Weight", "Height", "Humidity", "Temperature", "Sex", "ID", "ID_test"]
    return demographics[cols].copy(), pd.concat(measures, ignore_index=True), pd.DataFrame(truth)


def write_cohort(
    out: Path,
    n_tests: int | None = None,
    demographics_csv: Path | None = None,
    protocol: str = "ramp",
    seed: int = 0,
    force: bool = False,
    calibration: str = "foundation",
) -> Path:
    """Simulate a cohort and write it (atomically) as a PhysioNet-format data directory."""
    cal = CALIBRATIONS[calibration]
    if demographics_csv is not None:
        demo = read_subject_info(Path(demographics_csv))
        demo["ID"] = demo["ID"].astype(str)
        if n_tests is not None:
            demo = demo.iloc[:n_tests]
    else:
        demo = synthetic_demographics(n_tests or 992, np.random.default_rng([seed, 10**6]))
    subjects, measures, truth = simulate_cohort(demo, protocol=protocol, seed=seed,
                                                calibration=cal)
    inputs = [Path(demographics_csv)] if demographics_csv is not None else []
    with atomic_dir(Path(out), force=force, kind="cohort", inputs=inputs) as tmp:
        subjects.to_csv(tmp / SUBJECT_FILE, index=False)
        measures[MEASURE_COLUMNS].to_csv(tmp / MEASURE_FILE, index=False)
        truth.to_csv(tmp / "truth.csv", index=False, float_format="%.4g")
        marker = {
            "generator": f"vo2spike {__version__} simulator",
            "note": "SYNTHETIC DATA from the vo2spike physiological simulator, not measurements",
            "protocol": protocol,
            "calibration": calibration,
            "seed": seed,
            "n_tests": int(len(subjects)),
            "n_people": int(subjects["ID"].nunique()),
            "demographics": str(demographics_csv) if demographics_csv else "synthetic",
        }
        (tmp / SIMULATION_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return Path(out)

