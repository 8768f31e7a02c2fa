"""VO2max the way a watch gets it: heart-rate extrapolation, the classic non-learned
estimators, and split-conformal intervals.

Everything here works per test on windows (``vo2spike.data.windows.Windows``: 60 s of 1 Hz
inputs each) and per-window VO2 estimates in mL/min:

- HRmax: the test's measured peak heart rate when the test reached it (at least
  ``REACHED_HRMAX`` of the age-predicted maximum), else the age-predicted one (Tanaka,
  Monahan & Seals 2001: 208 - 0.7 x age).
- HRrest: the lowest 60 s mean heart rate of the recording. A watch would use the morning
  resting HR; a test recording has only its quiet start, so this overestimates HRrest (and
  the Uth-Sorensen estimate underestimates VO2max) when the recording starts moving.
- Extrapolation: a least-squares line of window VO2 against window mean HR, evaluated at
  HRmax, over the windows from ``EXTRAPOLATION_MIN_HR_FRACTION`` of HRmax up (below it HR
  lags and VO2 is not linear in HR).
- Uth-Sorensen (Uth et al. 2004): VO2max (mL/kg/min) = 15.3 x HRmax / HRrest.
- ACSM running equation (level ground): VO2 (mL/kg/min) = 3.5 + 0.2 x speed (m/min); its
  VO2max is the HR-speed extrapolation of that VO2 to HRmax.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vo2spike.data.windows import CHANNELS, Windows

#: The measured peak HR is taken as HRmax when it reaches this fraction of the age-predicted.
REACHED_HRMAX = 0.95
#: The extrapolation uses windows whose mean HR is at least this fraction of HRmax.
EXTRAPOLATION_MIN_HR_FRACTION = 0.6
#: Fewest windows (and HR range, bpm) a line is fitted on; fewer: the highest window VO2.
MIN_EXTRAPOLATION_WINDOWS = 3
MIN_EXTRAPOLATION_HR_RANGE = 10.0
#: Coverage the VO2max intervals are built for.
INTERVAL_LEVEL = 0.9
#: VO2max estimators a model's output can be combined into (see :func:`combine`).
COMBINATIONS = ("head", "extrapolation", "mean")

_HR, _SPEED = CHANNELS.index("HR"), CHANNELS.index("Speed")
_AGE, _WEIGHT = CHANNELS.index("Age"), CHANNELS.index("Weight")


def tanaka_hrmax(age_years: np.ndarray | float) -> np.ndarray:
    """Age-predicted maximal heart rate (bpm): 208 - 0.7 x age."""
    return 208.0 - 0.7 * np.asarray(age_years, dtype=float)


def heart_rates(w: Windows) -> pd.DataFrame:
    """Per test (index ID_test, sorted): ``hr_peak`` (highest 1 Hz HR in its windows),
    ``hr_rest`` (lowest window mean HR), ``hr_age`` (Tanaka), ``hrmax`` (the one used:
    see the module docstring), ``weight`` (kg)."""
    hr = w.x[:, _HR, :]
    df = pd.DataFrame({"ID_test": w.id_test, "peak": hr.max(axis=1), "mean": hr.mean(axis=1),
                       "age": w.x[:, _AGE, 0], "weight": w.x[:, _WEIGHT, 0]})
    g = df.groupby("ID_test", sort=True)
    out = pd.DataFrame({"hr_peak": g["peak"].max(), "hr_rest": g["mean"].min(),
                        "hr_age": tanaka_hrmax(g["age"].first()), "weight": g["weight"].first()})
    reached = out["hr_peak"] >= REACHED_HRMAX * out["hr_age"]
    out["hrmax"] = np.where(reached, out["hr_peak"], out["hr_age"])
    return out


def _line_at(hr: np.ndarray, vo2: np.ndarray, at: float) -> float:
    """VO2 of the least-squares line of vo2 against hr at ``at`` (fallback: max vo2)."""
    if len(hr) < MIN_EXTRAPOLATION_WINDOWS or np.ptp(hr) < MIN_EXTRAPOLATION_HR_RANGE:
        return float(np.max(vo2))
    slope, intercept = np.polyfit(hr, vo2, 1)
    if slope <= 0:
        return float(np.max(vo2))
    return float(intercept + slope * at)


def extrapolate_vo2max(w: Windows, window_vo2: np.ndarray) -> pd.Series:
    """Per test (index ID_test): window VO2 (mL/min) against window mean HR, extrapolated to
    the test's HRmax (mL/min)."""
    rates = heart_rates(w)
    mean_hr = w.x[:, _HR, :].mean(axis=1)
    out = {}
    for test, rows in pd.Series(np.arange(len(w))).groupby(w.id_test, sort=True):
        idx = rows.to_numpy()
        hrmax = float(rates.loc[test, "hrmax"])
        keep = idx[mean_hr[idx] >= EXTRAPOLATION_MIN_HR_FRACTION * hrmax]
        if len(keep) < MIN_EXTRAPOLATION_WINDOWS:
            keep = idx
        out[test] = _line_at(mean_hr[keep], np.asarray(window_vo2)[keep], hrmax)
    return pd.Series(out, name="vo2max_extrapolated")


def acsm_window_vo2(w: Windows) -> np.ndarray:
    """ACSM running equation per window (mL/min): (3.5 + 0.2 x speed in m/min) x weight."""
    speed_m_min = w.x[:, _SPEED, :].mean(axis=1) * 1000.0 / 60.0
    return (3.5 + 0.2 * speed_m_min) * w.x[:, _WEIGHT, 0]


def uth_sorensen_vo2max(w: Windows) -> pd.Series:
    """Per test (index ID_test): 15.3 x HRmax / HRrest mL/kg/min x weight (mL/min)."""
    r = heart_rates(w)
    return (15.3 * r["hrmax"] / r["hr_rest"] * r["weight"]).rename("vo2max_uth")


def combine(method: str, head: pd.Series, extrapolated: pd.Series) -> pd.Series:
    """A test's VO2max from the model's head and its HR extrapolation (both mL/min, index
    ID_test): ``head``, ``extrapolation`` or their ``mean``."""
    if method == "head":
        return head
    if method == "extrapolation":
        return extrapolated.reindex(head.index)
    if method == "mean":
        return (head + extrapolated.reindex(head.index)) / 2
    raise ValueError(f"unknown VO2max combination {method!r}; choose from {COMBINATIONS}")


def mape(true: pd.Series, est: pd.Series) -> float:
    """Mean absolute percentage error (%) of per-test estimates, aligned on the index."""
    est = est.reindex(true.index)
    return float((np.abs(est - true) / true).mean() * 100)


def choose_combination(true: pd.Series, estimates: dict[str, pd.Series],
                       people: pd.Series) -> tuple[str, dict[str, float], float, pd.Series]:
    """Pick the VO2max estimator (a key of ``estimates``: held-out per-test values, mL/min)
    with the lowest MAPE against ``true``; the head unless another beats it.

    Returns the choice on all tests, each estimator's MAPE, the nested MAPE and the nested
    estimates: for each person (``people``: ID per test) the estimator chosen on the other
    people's tests gives theirs, so the figure is not tuned on the people it is measured
    on."""
    scores = {k: mape(true, v) for k, v in estimates.items()}
    best = min(scores, key=lambda k: (scores[k], k != "head"))
    nested = pd.Series(np.nan, index=true.index)
    for person in sorted(set(people)):
        mine = people.index[people == person]
        others = true.index.difference(mine)
        inner = {k: mape(true.loc[others], v.loc[others]) for k, v in estimates.items()}
        pick = min(inner, key=lambda k: (inner[k], k != "head"))
        nested.loc[mine] = estimates[pick].reindex(mine)
    return best, scores, mape(true, nested), nested


def conformal_half_width(true: np.ndarray, est: np.ndarray,
                         level: float = INTERVAL_LEVEL) -> float:
    """Split-conformal relative half-width q: the ceil((n + 1) x level)-th smallest of
    |true - est| / est over calibration tests held out from the model, so that
    [est (1 - q), est (1 + q)] covers a new test's true value with probability >= level
    (exchangeability). Infinite when there are too few calibration tests."""
    r = np.sort(np.abs(np.asarray(true, float) - np.asarray(est, float))
                / np.asarray(est, float))
    k = math.ceil((len(r) + 1) * level)
    return float(r[k - 1]) if 1 <= k <= len(r) else float("inf")


def interval(est: np.ndarray | pd.Series, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of a relative half-width around estimates (mL/min)."""
    est = np.asarray(est, dtype=float)
    return est * (1 - half_width), est * (1 + half_width)


def nested_coverage(true: pd.Series, est: pd.Series, people: pd.Series,
                    level: float = INTERVAL_LEVEL) -> dict[str, float]:
    """Coverage of conformal intervals measured person by person: each person's tests get
    the half-width calibrated on the other people's held-out residuals. Returns the
    fraction of tests covered and the mean half-width (a fraction of the estimate)."""
    covered, widths = [], []
    for person in sorted(set(people)):
        mine = people.index[people == person]
        others = true.index.difference(mine)
        q = conformal_half_width(true.loc[others], est.loc[others], level)
        lo, hi = interval(est.loc[mine], q)
        covered += list((true.loc[mine].to_numpy() >= lo) & (true.loc[mine].to_numpy() <= hi))
        widths += [q] * len(mine)
    return {"coverage": float(np.mean(covered)), "half_width": float(np.mean(widths)),
            "tests": len(covered), "level": level}


def vo2max_record(input_sets: dict, calibration: str) -> dict:
    """What a model folder's config records for ``predict`` (RunConfig.vo2max), from
    :func:`vo2spike.metrics.input_set_results`: per input set the combination and the
    conformal half-width, and what the residuals came from."""
    return {"level": INTERVAL_LEVEL, "calibration": calibration,
            "input_sets": {name: {"combination": r["vo2max"]["combination"],
                                  "half_width": r["vo2max"]["interval_half_width"]}
                           for name, r in input_sets.items()}}


def vo2max_per_test(w: Windows, window_vo2: np.ndarray, window_vo2max: np.ndarray,
                input_set: pd.Series, record: dict | None) -> pd.DataFrame:
    """Per test (sorted by ID_test): ``vo2max_pred`` (mL/min: the head, the mean of its
    window estimates, combined with the HR extrapolation as ``record`` says for the test's
    input set), ``vo2max_low``, ``vo2max_high`` (its interval; empty without a record)."""
    head = pd.Series(window_vo2max).groupby(w.id_test, sort=True).mean()
    ext = extrapolate_vo2max(w, window_vo2)
    options = {c: combine(c, head, ext) for c in COMBINATIONS}
    chosen = [(record or {}).get("input_sets", {}).get(input_set.loc[t], {})
              for t in head.index]
    est = np.array([options[r.get("combination", "head")].loc[t]
                    for t, r in zip(head.index, chosen, strict=True)], dtype=float)
    q = np.array([r.get("half_width", np.nan) for r in chosen], dtype=float)
    q[~np.isfinite(q)] = np.nan  # no record, or too few calibration tests: no interval
    low, high = interval(est, q)
    return pd.DataFrame({"ID_test": head.index, "vo2max_pred": est, "vo2max_low": low,
                         "vo2max_high": high})
