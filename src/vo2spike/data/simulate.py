"""Physiological simulator: writes a cohort in the PhysioNet treadmill format.

Every equation and constant is documented, with sources, in ``docs/simulator.md``.
The pipeline per test: person physiology -> speed protocol (km/h, 1 Hz) -> VO2 demand
(running and walking cost equations) -> first-order VO2 kinetics with a slow component above
VT2, capped at VO2max -> VCO2 via RER -> VE via ventilatory equivalents -> RR -> HR with its
own kinetics and drift -> irregular breath-by-breath sampling with noise and artefacts.
``Calibration`` holds the constants that differ between the foundation, k5-matched and
malaga versions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
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
ACSM_RUNNING_COST = 0.2  # net O2 cost of level running, mL/kg per m (ACSM)
HR_AFTER_VO2_TAU = 10.0  # s: extra lag of HR behind the O2 uptake when it follows it


@dataclass(frozen=True)
class Calibration:
    """Simulator constants calibrated against real data (docs/simulator.md, sections 5-6).

    ``foundation`` (the first version) and ``k5-matched`` (breath noise, ventilation and
    breathing rate moved towards the real Yo-Yo K5 sessions; measured by leave-one-person-out
    it did not make the simulation-trained model transfer better) share the person and the
    graded protocol below. ``malaga`` calibrates the person (VO2max model, walking and running
    cost, VO2 kinetics above VT1, heart rate, breathing rate), the exhaustion model of the
    graded test (critical speed and D') and the graded protocol itself to the real Malaga
    cohort's aggregate curves. The fields after ``own_cv`` default to the foundation values,
    so the foundation cohort is reproduced bit for bit; each is documented, with its source,
    in docs/simulator.md.
    """

    name: str
    ve_vco2: tuple[float, float]  # range of VE/VCO2 below VT2
    rr_rest: tuple[float, float]  # range of resting RR, breaths/min
    rr_exponent: float  # RR rises as (VE / VE peak) ** rr_exponent
    rest_ve_vco2: float  # extra VE/VCO2 at rest (dead space)
    co2_overshoot: float  # RER rise per unit of (recent - current) intensity in recovery
    breath_cv: float  # breath-depth noise shared by VO2, VCO2, VE (fraction)
    own_cv: float  # independent noise of each gas signal (fraction)
    # VO2max (mL/kg/min) = vo2max_ref - vo2max_age_decline * max(age - 25, 0)
    #   - vo2max_youth * max(vo2max_youth_age - age, 0) - vo2max_female * female
    #   - vo2max_bmi * (BMI - 22) [from vo2max_bmi_from_age] + vo2max_sd * z
    vo2max_ref: float = 57.0  # mL/kg/min: 25 years, male, BMI 22, fitness z = 0
    vo2max_age_decline: float = 0.30  # mL/kg/min per year over 25
    vo2max_youth: float = 0.40  # mL/kg/min per year under vo2max_youth_age
    vo2max_youth_age: float = 16.0  # years
    vo2max_female: float = 8.0  # mL/kg/min
    vo2max_bmi: float = 0.6  # mL/kg/min per kg/m2 of BMI over 22
    vo2max_bmi_from_age: float = 0.0  # years: the BMI term applies from this age on
    vo2max_sd: float = 6.0  # mL/kg/min per unit of the fitness z-score
    running_cost: float = ACSM_RUNNING_COST  # net O2 cost of level running, mL/kg per m
    economy_sd: float = 0.06  # between-person SD of the running cost (fraction)
    economy_fitness: float = -0.02  # change of the running cost per unit of fitness z
    child_running_cost: float = 0.0  # extra net running cost per year of age under 18 (fraction)
    walking: str = "acsm"  # "acsm" (3.5 + 0.1 v) or "stature" (Ludlow & Weyand 2016)
    reserve: tuple[float, float] = (0.04, 0.16)  # demand above VO2max still started (fraction)
    hr_upright: tuple[float, float] = (0.0, 0.0)  # bpm over resting HR standing on the belt
    rr_max: tuple[float, float] = (50.0, 65.0)  # range of RR at the VE peak, breaths/min
    vo2_tau_heavy: float = 1.0  # VO2 time constant above VT1, multiple of tau VO2
    hr_follows_vo2: bool = False  # HR tracks the O2 uptake (True) or the demand (False)
    hr_max_fitness: float = 0.0  # bpm of HRmax per unit of fitness z
    hr_deflection: float = 0.0  # k of %HRR = x + k x (1 - x), x = %VO2 reserve (0: linear)
    ramp: str = "stages"  # "stages": 6 km/h, +1 km/h per 60 s stage; "malaga": see docs
    d_prime: tuple[float, float] = (0.0, 0.0)  # m run above critical speed ("malaga" ramp)
    d_prime_female: float = 1.0  # multiplier of D' for women
    d_prime_youth: float = 0.0  # D' lower by this fraction per year of age under 18
    cp_fraction: tuple[float, float] = (0.84, 0.0)  # critical power / VO2max: mean, SD


FOUNDATION = Calibration("foundation", (25.0, 31.0), (12.0, 20.0), 1.6, 8.0, 0.0, 0.12, 0.04)
K5_MATCHED = Calibration("k5-matched", (28.0, 35.0), (14.0, 22.0), 1.0, 10.0, 0.4, 0.075, 0.03)
MALAGA = Calibration(
    "malaga", FOUNDATION.ve_vco2, FOUNDATION.rr_rest, K5_MATCHED.rr_exponent,
    FOUNDATION.rest_ve_vco2, FOUNDATION.co2_overshoot, FOUNDATION.breath_cv, FOUNDATION.own_cv,
    vo2max_ref=58.5, vo2max_age_decline=0.5, vo2max_youth=1.0, vo2max_youth_age=18.0,
    vo2max_female=14.0, vo2max_bmi=0.754, vo2max_bmi_from_age=18.0, vo2max_sd=3.75,
    running_cost=0.19, economy_sd=0.035, economy_fitness=-0.04, child_running_cost=0.05,
    walking="stature", hr_upright=(10.0, 25.0), ramp="malaga", d_prime=(110.0, 150.0),
    d_prime_female=0.75, d_prime_youth=0.05, cp_fraction=(0.84, 0.025), rr_max=(60.0, 72.0),
    vo2_tau_heavy=4.5, hr_follows_vo2=True, hr_max_fitness=-2.0, hr_deflection=0.15)
CALIBRATIONS = {c.name: c for c in (FOUNDATION, K5_MATCHED, MALAGA)}
#: The calibration of cohorts written by ``write_cohort`` (``vo2spike run``) unless another
#: is named: malaga, since it transfers better to the real Yo-Yo recordings (docs/simulator.md,
#: section 6). The lower-level functions keep FOUNDATION as their default.
DEFAULT_CALIBRATION = MALAGA.name


@dataclass(frozen=True)
class Physiology:
    """Latent physiology of one person on one test day."""

    vo2max: float  # mL/min
    vo2_rest: float  # mL/min, standing
    hr_max: float  # bpm
    hr_rest: float  # bpm
    vt1: float  # fraction of VO2max
    vt2: float  # fraction of VO2max
    economy: float  # multiplier on the net O2 cost of running (1 = running_cost)
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
    running_cost: float = ACSM_RUNNING_COST  # net cost of level running, mL/kg/m (x economy)
    walking: str = "acsm"  # walking O2 cost equation: "acsm" or "stature"
    height_m: float = 1.75  # stature (m), for the "stature" walking equation
    d_prime: float = 0.0  # m that can be run above critical speed ("malaga" ramp)
    cp_fraction: float = 0.84  # critical power (speed) demand as a fraction of VO2max


def sample_physiology(
    age: float, weight: float, height: float, sex: int, fitness: float,
    rng: np.random.Generator, cal: Calibration = FOUNDATION,
) -> Physiology:
    """Draw one person's physiology from demographics and a fitness random effect (z-score)."""
    bmi = weight / (height / 100.0) ** 2
    rel = (
        cal.vo2max_ref
        - cal.vo2max_age_decline * max(age - 25.0, 0.0)
        - cal.vo2max_youth * max(cal.vo2max_youth_age - age, 0.0)
        - cal.vo2max_female * sex
        - (cal.vo2max_bmi * (bmi - 22.0) if age >= cal.vo2max_bmi_from_age else 0.0)
        + cal.vo2max_sd * fitness
    )
    rel = float(np.clip(rel, 25.0, 85.0))  # mL/kg/min
    vt1 = float(np.clip(rng.normal(0.62, 0.05) + 0.02 * fitness, 0.48, 0.75))
    vt2 = float(np.clip(vt1 + rng.normal(0.22, 0.03), vt1 + 0.1, 0.93))
    p = Physiology(
        vo2max=rel * weight,
        vo2_rest=4.0 * weight,
        hr_max=float(np.clip(208.0 - 0.7 * age + cal.hr_max_fitness * fitness + rng.normal(0, 7),
                             150, 225)),
        hr_rest=float(np.clip(62.0 - 2.5 * fitness + 0.1 * (age - 30) + rng.normal(0, 6), 40, 90)),
        vt1=vt1,
        vt2=vt2,
        economy=float(np.clip(rng.normal(1.0, cal.economy_sd) + cal.economy_fitness * fitness,
                                0.8, 1.2)),
        tau_vo2=float(np.clip(rng.normal(30.0, 5.0) - 3.0 * fitness, 18, 45)),
        tau_hr=float(rng.uniform(25, 50)),
        hr_drift=float(rng.uniform(0.5, 2.0)),
        rer_rest=float(rng.uniform(0.78, 0.88)),
        rer_max=float(rng.uniform(1.08, 1.22)),
        ve_vco2=float(rng.uniform(*cal.ve_vco2)),
        ve_vco2_rise=float(rng.uniform(6.0, 12.0)),
        rr_rest=float(rng.uniform(*cal.rr_rest)),
        rr_max=float(rng.uniform(*cal.rr_max)),
        reserve=float(rng.uniform(*cal.reserve)),
        running_cost=cal.running_cost,
        walking=cal.walking,
        height_m=height / 100.0,
    )
    if cal.hr_upright != (0.0, 0.0):
        # Standing on the treadmill before a maximal test: orthostatic and anticipatory rise
        # over the (seated) resting heart rate. Drawn last: earlier draws stay unchanged.
        p = replace(p, hr_rest=min(p.hr_rest + float(rng.uniform(*cal.hr_upright)), 110.0))
    if cal.d_prime != (0.0, 0.0):
        scale = (cal.d_prime_female if sex else 1.0) * (
            1.0 - cal.d_prime_youth * max(18.0 - age, 0.0))
        p = replace(p, d_prime=float(rng.uniform(*cal.d_prime)) * scale,
                    cp_fraction=float(np.clip(rng.normal(*cal.cp_fraction), 0.7, 0.92)))
    if cal.child_running_cost:
        # Children run less economically than adults (Krahenbuhl & Williams 1992).
        extra = 1.0 + cal.child_running_cost * max(18.0 - age, 0.0)
        p = replace(p, economy=p.economy * extra)
    return p


def demand_vo2(speed_kmh: np.ndarray, p: Physiology, weight: float,
               cost: float | np.ndarray = 1.0) -> np.ndarray:
    """Steady-state O2 demand (mL/min) of level locomotion at ``speed_kmh``.

    Running: 3.5 + running_cost x v x economy (mL/kg/min, v in m/min; ACSM: running_cost
    0.2). Walking (below 7 km/h): ACSM 3.5 + 0.1 v, or with ``walking == "stature"`` the
    standing VO2 + 3.85 + 5.97 u^2 / height (u in m/s, height in m; Ludlow & Weyand 2016). Standing
    uses the person's resting VO2. ``cost`` multiplies the net (above resting) running cost,
    e.g. for the turns of shuttle running.
    """
    v = speed_kmh * 1000.0 / 60.0
    if p.walking == "stature":  # gross = standing rest + 3.85 + 5.97 u^2 / height
        walk = p.vo2_rest / weight - 3.5 + 3.85 + 5.97 * (v / 60.0) ** 2 / p.height_m
    else:
        walk = 0.1 * v
    net = np.where(speed_kmh < WALK_RUN_KMH, walk, p.running_cost * v * p.economy * cost)
    return np.where(speed_kmh <= 0.0, p.vo2_rest, 3.5 * weight + net * weight)


def speed_at_vo2max(p: Physiology, weight: float) -> float:
    """Running speed (km/h) whose running demand equals VO2max."""
    v = (p.vo2max / weight - 3.5) / (p.running_cost * p.economy)
    return v * 60.0 / 1000.0


def critical_speed(p: Physiology, weight: float) -> float:
    """Critical speed (km/h): the running speed whose demand is cp_fraction x VO2max."""
    v = (p.cp_fraction * p.vo2max / weight - 3.5) / (p.running_cost * p.economy)
    return v * 60.0 / 1000.0


def malaga_ramp(p: Physiology, weight: float, rng: np.random.Generator) -> np.ndarray:
    """The Malaga graded test (km/h at 1 Hz): 20-60 s standing, a 60-180 s walking warm-up at
    5 km/h, then the speed rises from 5 km/h by 1 km/h per minute (0.1 km/h every 6 s) until the
    distance run above critical speed reaches the person's D' (exhaustion in the critical
    power model); then 60-180 s walking recovery at 5 km/h."""
    rest = np.zeros(int(rng.integers(20, 60)))
    warm = np.full(int(rng.integers(60, 180)), 5.0)
    ramp = 5.0 + (np.arange(0, 25 * 60) // 6) / 10.0  # +0.1 km/h every 6 s, up to 30 km/h
    above = np.cumsum(np.clip(ramp - critical_speed(p, weight), 0.0, None) / 3.6)  # m
    over = above >= p.d_prime
    end = int(np.argmax(over)) if over.any() else len(ramp) - 1
    recovery = np.full(int(rng.integers(60, 180)), 5.0)
    return np.concatenate([rest, warm, ramp[: end + 1], recovery])


def protocol_speed(protocol: str, p: Physiology, weight: float,
                   rng: np.random.Generator, cal: Calibration = FOUNDATION) -> np.ndarray:
    """Speed (km/h) at 1 Hz for one test (``cal.ramp`` picks the graded protocol)."""
    if protocol == "ramp" and cal.ramp == "malaga":
        return malaga_ramp(p, weight, rng)
    if protocol == "ramp":
        # Graded test: stand, 6 km/h then +1 km/h each minute to exhaustion.
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
    # Relative to the ACSM cost (0.2 mL/kg/m), as calibrated, whatever the calibration's
    # treadmill running cost (which differs by no more than the shuttle spread).
    shuttle_cost = float(rng.uniform(1.5, 1.9)) * ACSM_RUNNING_COST / p.running_cost
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
                    rng: np.random.Generator, cal: Calibration = FOUNDATION) -> Course:
    """The course of one test; treadmill protocols measure speed exactly."""
    if protocol == "yoyo":
        return yoyo_course(p, weight, rng)
    speed = protocol_speed(protocol, p, weight, rng, cal)
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
    if cal.vo2_tau_heavy == 1.0:
        fast = first_order(demand, tau, p.vo2_rest)
    else:
        # Above VT1 the VO2 response is slower (heavy and severe domains): the demand above
        # VT1 follows a longer time constant, so in a ramp VO2 falls further behind it.
        low = np.minimum(demand, p.vt1 * p.vo2max)
        fast = (first_order(low, tau, p.vo2_rest)
                + first_order(demand - low, cal.vo2_tau_heavy * tau, 0.0))
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
    # With ``hr_follows_vo2`` it tracks the %VO2 reserve of the O2 uptake itself (already
    # lagged), with a short extra lag: in a ramp HR then ends below HRmax when VO2 does.
    drive = vo2 if cal.hr_follows_vo2 else demand
    frac_d = np.clip((drive - p.vo2_rest) / (p.vo2max - p.vo2_rest), 0.0, 1.05)
    minutes_hard = np.cumsum(frac_d > 0.5) / 60.0
    frac_hr = frac_d
    if cal.hr_deflection:  # HR rises faster than VO2 at low, slower at high intensity
        x = np.minimum(frac_d, 1.0)
        frac_hr = frac_d + cal.hr_deflection * x * (1.0 - x)
    hr_target = p.hr_rest + (p.hr_max - p.hr_rest) * frac_hr + p.hr_drift * minutes_hard * frac_d
    tau_hr = HR_AFTER_VO2_TAU if cal.hr_follows_vo2 else p.tau_hr
    hr = first_order(np.minimum(hr_target, p.hr_max), tau_hr, p.hr_rest)
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
        course = protocol_course(proto, p, row.Weight, trng, calibration)
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
    calibration: str = DEFAULT_CALIBRATION,
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

