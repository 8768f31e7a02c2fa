"""The demo's workouts: three simulated sessions and one real Yo-Yo recording.

Every workout goes through the CLI's own path: a PhysioNet-format data directory read and
validated by :func:`vo2spike.data.read.load_dataset`, then cleaned, resampled and windowed by
:func:`vo2spike.data.windows.make_windows`. The 1 Hz signals drawn on the page are made by
the same functions (``clean_measures``, ``resample_to_1hz``, ``smooth_speed``).
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vo2spike.data.clean import clean_measures
from vo2spike.data.k5 import convert_yoyo
from vo2spike.data.read import (
    MEASURE_COLUMNS,
    MEASURE_FILE,
    SIMULATION_MARKER,
    SUBJECT_FILE,
    DataError,
    DataReport,
    Dataset,
    load_dataset,
)
from vo2spike.data.simulate import simulate_cohort
from vo2spike.data.windows import Windows, make_windows, resample_to_1hz, smooth_speed

#: Plausible ranges of a person's inputs, as :func:`vo2spike.data.read.read_subject_info`
#: checks them: name -> (low, high, unit).
PERSON_RANGES = {"age": (5.0, 100.0, "years"), "weight": (20.0, 250.0, "kg"),
                 "height": (100.0, 230.0, "cm")}


@dataclass(frozen=True)
class Person:
    """Age (years), weight (kg), height (cm), sex (0 male, 1 female)."""

    age: float
    weight: float
    height: float
    sex: int

    def as_dict(self) -> dict:
        """JSON-ready dict."""
        return {"age": self.age, "weight": self.weight, "height": self.height, "sex": self.sex}


class ParamError(ValueError):
    """A request parameter is missing or out of range (shown to the user as is)."""


def parse_person(values: dict[str, str], default: Person) -> Person:
    """A Person from text fields (missing ones from ``default``); ParamError names the field."""
    out = default.as_dict()
    for name, (lo, hi, unit) in PERSON_RANGES.items():
        text = values.get(name)
        if text is None or str(text).strip() == "":
            continue
        try:
            v = float(text)
        except ValueError:
            raise ParamError(f"{name}: {text!r} is not a number") from None
        if not math.isfinite(v) or v < lo or v > hi:
            raise ParamError(f"{name}: {text} is outside the plausible range {lo:g}..{hi:g} "
                             f"{unit}")
        out[name] = round(v, 1)
    sex = values.get("sex")
    if sex is not None and str(sex).strip() != "":
        if str(sex).strip() not in ("0", "1"):
            raise ParamError(f"sex: {sex!r} is not a sex code (use 0 = male, 1 = female)")
        out["sex"] = int(str(sex).strip())
    return Person(**out)


@dataclass(frozen=True)
class WorkoutSpec:
    """A workout the page offers."""

    id: str
    label: str
    kind: str  # "simulated" or "real"
    description: str
    person: Person  # the workout's own person (defaults of the page's controls)
    protocol: str = ""  # simulator protocol (simulated workouts)
    seed: int = 0  # simulator seed (simulated workouts)
    id_test: str = ""  # session (real workout)


SIMULATED = [
    WorkoutSpec("incremental", "Incremental test", "simulated",
                "A graded treadmill test: 6 km/h, then +1 km/h every minute until near "
                "maximal effort, then walking recovery.",
                Person(28.0, 72.0, 178.0, 0), protocol="ramp", seed=2),
    WorkoutSpec("steady", "Steady pace", "simulated",
                "A warm-up, then a long run at one pace: the signals change slowly.",
                Person(35.0, 60.0, 166.0, 1), protocol="steady", seed=0),
    WorkoutSpec("intervals", "Intervals", "simulated",
                "Hard and easy segments alternate: heart rate and breathing jump quickly. "
                "This simulated session also has heart-rate strap drop-outs (HR 0) that the "
                "cleaning removes.",
                Person(24.0, 80.0, 184.0, 0), protocol="intervals", seed=0),
]
#: The real recording shown (a shared Yo-Yo session with heart rate).
REAL_SESSION = "D06_1"


def real_spec(person: Person) -> WorkoutSpec:
    """The real Yo-Yo workout (its person's demographics from the data set's metadata)."""
    return WorkoutSpec(
        "real-yoyo", f"Yo-Yo test, participant {REAL_SESSION.split('_')[0]}", "real",
        "A real COSMED K5 recording (Polar H10 heart rate, GPS speed) of a Yo-Yo "
        "intermittent recovery test: 20 m shuttles at rising speed with 10 s of recovery, "
        "until exhaustion. Oxford NIL Yo-Yo data set, session "
        f"{REAL_SESSION}, from 60 s before the test to 120 s after it.",
        person, id_test=REAL_SESSION)


@dataclass
class Workout:
    """A workout's data after validation, cleaning and windowing, as the CLI sees it."""

    spec: WorkoutSpec
    person: Person  # demographics the signals were simulated with (or the real person's)
    dataset: Dataset
    windows: Windows
    signals: pd.DataFrame  # 1 Hz: t (s), Speed (km/h, smoothed), HR, RR, VE, VO2, valid
    source: str  # where the data come from, in words


def one_hz_signals(dataset: Dataset, id_test: str) -> pd.DataFrame:
    """The 1 Hz signals of one test, made like :func:`make_windows` makes them (cleaning,
    linear resampling, 5 s trailing mean of speed); its own report, so counts are not
    doubled."""
    clean = clean_measures(dataset.measures, DataReport(), ("VO2", "VCO2", "VE", "HR"))
    test = clean[clean["ID_test"] == id_test]
    if len(test) < 2:
        raise DataError(f"test {id_test}: too few usable breaths after cleaning")
    hz = resample_to_1hz(test)
    hz["Speed"] = smooth_speed(hz["Speed"].to_numpy())
    return hz[["t", "Speed", "HR", "RR", "VE", "VO2", "valid"]]


def prepare(spec: WorkoutSpec, person: Person, dataset: Dataset, source: str) -> Workout:
    """Window a one-test dataset with the CLI's code and attach its 1 Hz signals."""
    windows = make_windows(dataset, with_labels=True)
    id_test = str(dataset.subjects["ID_test"].iloc[0])
    return Workout(spec, person, dataset, windows, one_hz_signals(dataset, id_test), source)


def simulate_workout(spec: WorkoutSpec, person: Person) -> Workout:
    """Simulate ``spec``'s protocol for ``person`` (seeded: reproducible), write it as a
    data directory in a temporary folder and read it back like ``vo2spike train`` does."""
    demo = pd.DataFrame([{"Age": person.age, "Weight": person.weight, "Height": person.height,
                          "Humidity": 50.0, "Temperature": 21.0, "Sex": person.sex,
                          "ID": "demo", "ID_test": "demo_1"}])
    subjects, measures, _ = simulate_cohort(demo, protocol=spec.protocol, seed=spec.seed)
    with tempfile.TemporaryDirectory(prefix="vo2spike-demo-") as tmp:
        d = Path(tmp)
        subjects.to_csv(d / SUBJECT_FILE, index=False)
        measures[MEASURE_COLUMNS].to_csv(d / MEASURE_FILE, index=False)
        (d / SIMULATION_MARKER).write_text(json.dumps(
            {"note": "SYNTHETIC DATA from the vo2spike physiological simulator",
             "protocol": spec.protocol, "seed": spec.seed}))
        dataset = load_dataset(d)
    return prepare(spec, person, dataset,
                   f"SIMULATED: vo2spike simulator, protocol {spec.protocol}, seed {spec.seed}")


class RealRecordings:
    """The shared Yo-Yo recordings converted once (``convert_yoyo``, as ``vo2spike run``
    does) into a temporary folder that lives as long as this object."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._dataset: Dataset | None = None

    def available(self) -> bool:
        """True if the Yo-Yo folder exists."""
        return (self.root / "FirstRound").is_dir()

    def dataset(self) -> Dataset:
        """The converted recordings (all sessions with heart rate)."""
        if self._dataset is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="vo2spike-demo-yoyo-")
            out = Path(self._tmp.name) / "yoyo"
            convert_yoyo(self.root, out)
            self._dataset = load_dataset(out)
        return self._dataset

    def session(self, id_test: str) -> tuple[Person, Dataset]:
        """One session as a one-test dataset, and its person."""
        ds = self.dataset()
        subj = ds.subjects[ds.subjects["ID_test"] == id_test].reset_index(drop=True)
        if subj.empty:
            raise DataError(f"{self.root}: session {id_test} not found (or it has no heart "
                            "rate)")
        meas = ds.measures[ds.measures["ID_test"] == id_test].reset_index(drop=True)
        row = subj.iloc[0]
        person = Person(float(row["Age"]), float(row["Weight"]), float(row["Height"]),
                        int(row["Sex"]))
        return person, Dataset(subj, meas, ds.source, DataReport())

    def close(self) -> None:
        """Remove the converted copy."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp, self._dataset = None, None


def with_person(w: Windows, person: Person) -> np.ndarray:
    """Windows' inputs with the static channels (age, weight, height, sex) set to
    ``person``'s: the same signals, as if they came from this person."""
    x = w.x.copy()
    x[:, 4:8, :] = np.array([person.age, person.weight, person.height, person.sex],
                            dtype=np.float32)[:, None]
    return x
