"""Reader for Garmin FIT activity files (a sport watch's recording) via Garmin's FIT SDK.

A watch measures heart rate (bpm), speed (GPS or foot pod, m/s in the file, km/h here) and,
on some models, breathing rate (breaths/min), one ``record`` message a second or so. It
measures no VO2, VCO2 or VE: those columns are written empty (NaN). The person comes from
the file's ``user_profile`` message, or from the command line.

Artefacts, counted in the :class:`DataReport` and in ``SOURCE.json``:

- pauses: records between a timer ``stop`` and the next ``start`` event are dropped; the
  pause stays a gap in ``time`` (never interpolated here; the windowing drops windows that
  touch a gap over ``windows.MAX_GAP_S``). Gaps between records longer than that are
  counted too.
- speed: a GPS jump (a stretch of at most ``JUMP_MAX_S`` that the speed enters and leaves
  with a change of more than ``MAX_ACCEL_M_S2``) or a value above ``clean.PLAUSIBLE`` is
  set to NaN; a record without speed (GPS drop-out) is NaN.
- heart rate: a record without it, or with 0 (no strap contact), is NaN.

Files that are valid but unusable (no heart rate, no speed, not an on-foot activity, no
records) are skipped with a reason; broken files (not FIT, truncated, CRC error) are fatal
(:class:`DataError` naming the file and the byte where decoding stopped).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from garmin_fit_sdk import Decoder, Stream

from vo2spike.data.clean import PLAUSIBLE
from vo2spike.data.k5 import write_canonical
from vo2spike.data.read import MEASURE_COLUMNS, SUBJECT_RANGES, DataError, DataReport
from vo2spike.data.windows import MAX_GAP_S

log = logging.getLogger("vo2spike")

#: The largest change of speed (m/s per second between two records) accepted as running:
#: above what a sprinter's start reaches; a larger step starts or ends a GPS jump.
MAX_ACCEL_M_S2 = 5.0
#: The longest stretch (s) between two such steps treated as a GPS jump (set to NaN); a
#: longer one is kept (a real change of pace the watch's smoothing made abrupt).
JUMP_MAX_S = 10.0
#: FIT ``sport`` values of on-foot activities (the model needs running or walking speed).
FOOT_SPORTS = ("running", "walking", "hiking", "generic")
#: Timer events that stop the recording (``start`` resumes it).
TIMER_STOPS = ("stop", "stop_all", "stop_disable", "stop_disable_all")
#: Sex as given on the command line -> the project's code (0 = male, 1 = female). Note the
#: FIT profile's own ``gender`` code is the other way round (0 = female, 1 = male): the
#: decoder's names (``male``/``female``) are used, never its numbers.
SEX_CODES = {"male": 0, "m": 0, "0": 0, "female": 1, "f": 1, "1": 1}
DEFAULT_PERSON = "P1"
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]+")
_SDK_ERROR = re.compile(r"^FIT Runtime Error(?: at byte: (\d+))?[ ,]*")
#: Units of the person values (the SUBJECT_RANGES columns).
PERSON_UNITS = {"Age": "years", "Weight": "kg", "Height": "cm"}


@dataclass
class FitActivity:
    """One FIT activity file: its records in canonical columns and what was found.

    ``records`` holds time (s from the first kept record), Speed (km/h), HR (bpm), RR
    (breaths/min). ``person`` holds the file's user_profile values (Age years, Weight kg,
    Height cm, Sex 0 = male / 1 = female) that are present. ``skip`` is a reason not to use
    the file, or None.
    """

    path: Path
    records: pd.DataFrame
    person: dict[str, float | int]
    sports: list[str]
    serial: int | None
    start_utc: str | None
    counts: dict[str, int] = field(default_factory=dict)
    skip: str | None = None


def _number(value: object) -> float:
    """A decoded field value as float (NaN when missing or not a number)."""
    if isinstance(value, list):
        value = next((v for v in value if v is not None), None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("nan")
    return float(value)


def _decode(path: Path) -> dict[str, list[dict]]:
    """The file's messages; a file that is not FIT, or is truncated or corrupt, is fatal."""
    try:
        data = bytearray(path.read_bytes())
    except FileNotFoundError as e:
        raise DataError(f"{path}: file not found") from e
    except IsADirectoryError as e:
        raise DataError(f"{path}: is a folder, expected a FIT file") from e
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from e
    if not data:
        raise DataError(f"{path}: file is empty, not a FIT file")
    if not Decoder(Stream.from_byte_array(data)).is_fit():
        raise DataError(f"{path}: not a FIT file (no FIT file header with '.FIT' at its "
                        "start)")
    header = Decoder(Stream.from_byte_array(data)).read_file_header(True)
    expected = header.header_size + header.data_size + 2
    stream = Stream.from_byte_array(data)
    messages, errors = Decoder(stream).read()
    n_records = len(messages.get("record_mesgs", []))
    if errors:
        text = str(errors[0])
        m = _SDK_ERROR.match(text)
        at = int(m.group(1)) if m and m.group(1) else stream.position()
        detail = text[m.end():] if m else text
        if detail == "CRC Error":
            detail = "the file's CRC does not match its contents (bytes changed)"
        truncated = (f"; the file is truncated: its header promises {expected:,} bytes, it "
                     f"has {len(data):,}") if len(data) < expected else ""
        raise DataError(
            f"{path}: corrupt FIT file: decoding failed at byte {at:,} of {len(data):,}, after "
            f"{n_records:,} record message(s): {detail}{truncated}. Copy the file from the "
            "watch again"
        )
    if not Decoder(Stream.from_byte_array(data)).check_integrity():
        raise DataError(f"{path}: corrupt FIT file: it fails the SDK's integrity check "
                        "(header CRC or size). Copy the file from the watch again")
    return messages


def _pauses(t_s: np.ndarray, events: list[dict]) -> np.ndarray:
    """True for records (at epoch seconds ``t_s``) inside a pause: after a timer stop,
    before the next start (a record at the stop's or the start's own second is kept)."""
    timer = sorted((e["timestamp"].timestamp(), str(e.get("event_type"))) for e in events
                   if e.get("event") == "timer" and hasattr(e.get("timestamp"), "timestamp")
                   and (e.get("event_type") == "start" or e.get("event_type") in TIMER_STOPS))
    if not timer:
        return np.zeros(len(t_s), dtype=bool)
    times = np.array([t for t, _ in timer])
    stop = np.array([kind in TIMER_STOPS for _, kind in timer])
    k = np.searchsorted(times, t_s, side="right") - 1
    before = k < 0
    k = np.maximum(k, 0)
    return np.where(before, (not stop[0]) & (t_s < times[0]), stop[k] & (t_s > times[k]))


def _person(messages: dict[str, list[dict]]) -> dict[str, float | int]:
    """The user_profile's values present, in the project's units and codes."""
    profiles = messages.get("user_profile_mesgs") or []
    if not profiles:
        return {}
    p, out = profiles[0], {}
    for key, col, scale in [("age", "Age", 1.0), ("weight", "Weight", 1.0),
                            ("height", "Height", 100.0)]:  # height in m in the file
        v = _number(p.get(key))
        if np.isfinite(v) and v > 0:
            out[col] = round(v * scale, 1)
    gender = p.get("gender")
    if gender in ("male", "female"):
        out["Sex"] = SEX_CODES[gender]
    return out


def _steep(v: np.ndarray, t: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """True where speed changes from record i to j by more than ``MAX_ACCEL_M_S2`` per
    second between them (at least 1 s)."""
    return np.abs(v[j] - v[i]) > MAX_ACCEL_M_S2 * np.maximum(np.abs(t[j] - t[i]), 1.0)


def _jumps(speed_m_s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """True for the records of a GPS jump: a stretch of at most ``JUMP_MAX_S`` entered and
    left by steep steps (:func:`_steep`), with the speeds just before and after it within
    ``MAX_ACCEL_M_S2`` x 1 s of each other (it comes back); repeated on the rest until none
    is left (a jump within a jump). ``speed_m_s`` and ``t`` hold only records with a speed."""
    out = np.zeros(len(speed_m_s), dtype=bool)
    while True:
        keep = np.flatnonzero(~out)
        v, tk = speed_m_s[keep], t[keep]
        idx = np.arange(len(v))
        starts = np.flatnonzero(_steep(v, tk, idx[:-1], idx[1:])) + 1  # after each step
        found = False
        for a, b in zip(starts[:-1], starts[1:], strict=True):  # the stretch a .. b-1
            if tk[b - 1] - tk[a] <= JUMP_MAX_S and abs(v[b] - v[a - 1]) <= MAX_ACCEL_M_S2:
                out[keep[a:b]] = found = True
        if not found:
            return out


def _clean_speed(speed_m_s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """Speed in km/h with GPS jumps (:func:`_jumps`) and values above ``clean.PLAUSIBLE``
    set to NaN; also the masks of the jumps and of the implausible values."""
    kmh = speed_m_s * 3.6
    implausible = np.isfinite(kmh) & (kmh > PLAUSIBLE["Speed"][1])
    ok = np.flatnonzero(np.isfinite(kmh) & ~implausible)
    jumps = np.zeros(len(kmh), dtype=bool)
    jumps[ok] = _jumps(speed_m_s[ok], t[ok])
    out = kmh.copy()
    out[implausible | jumps] = np.nan
    return np.round(out, 4), jumps, implausible


def read_fit(path: Path, report: DataReport) -> FitActivity:
    """Read one FIT activity file (counts and warnings go to ``report``); see the module
    docstring for the artefact rules and what is skipped or fatal."""
    path = Path(path)
    messages = _decode(path)
    file_id = (messages.get("file_id_mesgs") or [{}])[0]
    serial = file_id.get("serial_number")
    sports = [str(s.get("sport")) for s in messages.get("session_mesgs", [])
              if s.get("sport") is not None]
    if not sports:
        sports = [str(s.get("sport")) for s in messages.get("sport_mesgs", [])
                  if s.get("sport") is not None]
    person = _person(messages)
    raw = messages.get("record_mesgs") or []
    empty = pd.DataFrame(columns=["time", "Speed", "HR", "RR"], dtype=float)
    act = FitActivity(path, empty, person, sorted(set(sports)), serial if isinstance(
        serial, int) else None, None)
    kind = file_id.get("type")
    if kind is not None and kind != "activity":
        act.skip = f"a FIT {kind} file, not an activity"
        return act
    other = [s for s in act.sports if s not in FOOT_SPORTS]
    if other:
        act.skip = (f"sport {', '.join(other)} (session message): the model needs on-foot "
                    "(running or walking) speed")
        return act

    numbers = np.arange(1, len(raw) + 1)  # record message number in the file
    has_time = np.array([hasattr(r.get("timestamp"), "timestamp") for r in raw], dtype=bool)
    records = [r for r, ok in zip(raw, has_time, strict=True) if ok]
    numbers = numbers[has_time]
    _count(act, report, "fit_records_without_time", int((~has_time).sum()),
           f"{path}: {int((~has_time).sum())} record message(s) without a timestamp dropped")
    if not records:
        act.skip = "no record messages with a timestamp (no recorded samples)"
        return act
    epoch = np.array([r["timestamp"].timestamp() for r in records])
    paused = _pauses(epoch, messages.get("event_mesgs") or [])
    if paused.any():
        first = int(numbers[paused][0])
        _count(act, report, "fit_records_in_pauses", int(paused.sum()),
               f"{path}: {int(paused.sum())} record(s) inside timer pauses (between a timer "
               f"stop and the next start; first: record {first}) dropped; the pause is left "
               "as a gap")
    records = [r for r, p in zip(records, paused, strict=True) if not p]
    numbers, epoch = numbers[~paused], epoch[~paused]
    if not records:
        act.skip = "every record lies inside a timer pause"
        return act
    t0 = records[0]["timestamp"]
    t = epoch - epoch[0]
    back = np.r_[False, t[1:] <= np.maximum.accumulate(t)[:-1]]
    if back.any():
        _count(act, report, "fit_records_out_of_order", int(back.sum()),
               f"{path}: {int(back.sum())} record(s) not later than the record before (clock "
               f"set back or repeated; first: record {int(numbers[back][0])}) dropped")
        records = [r for r, b in zip(records, back, strict=True) if not b]
        t, numbers = t[~back], numbers[~back]
    act.start_utc = t0.isoformat()

    def column(*names: str) -> np.ndarray:
        out = np.full(len(records), np.nan)
        for name in names[::-1]:  # the first name wins where both are present
            v = np.array([_number(r.get(name)) for r in records])
            out = np.where(np.isfinite(v), v, out)
        return out

    speed_m_s = column("enhanced_speed", "speed")
    hr = column("heart_rate")
    rr = column("enhanced_respiration_rate", "respiration_rate")
    if not np.isfinite(speed_m_s).any():
        act.skip = "no speed in any record (indoor activity without a foot pod?)"
        return act
    hr[hr == 0] = np.nan  # 0: no strap contact; 255 (invalid) the SDK already leaves out
    if not np.isfinite(hr).any():
        act.skip = "no heart rate in any record"
        return act

    def first_at(mask: np.ndarray) -> str:
        i = int(np.flatnonzero(mask)[0])
        return f"first: record {int(numbers[i])}, t = {t[i]:g} s"

    no_hr = ~np.isfinite(hr)
    if no_hr.any():
        _count(act, report, "fit_hr_missing", int(no_hr.sum()),
               f"{path}: {int(no_hr.sum())} of {len(hr)} record(s) without heart rate (absent "
               f"or 0; {first_at(no_hr)}) left missing")
    no_speed = ~np.isfinite(speed_m_s)
    if no_speed.any():
        _count(act, report, "fit_speed_missing", int(no_speed.sum()),
               f"{path}: {int(no_speed.sum())} of {len(hr)} record(s) without speed (GPS "
               f"drop-out; {first_at(no_speed)}) left missing")
    speed, jumps, implausible = _clean_speed(speed_m_s, t)
    if jumps.any():
        _count(act, report, "fit_speed_jumps", int(jumps.sum()),
               f"{path}: {int(jumps.sum())} speed value(s) changing by over "
               f"{MAX_ACCEL_M_S2:g} m/s per second and back within {JUMP_MAX_S:g} s (GPS "
               f"jumps; {first_at(jumps)}) treated as missing")
    if implausible.any():
        _count(act, report, "fit_speed_implausible", int(implausible.sum()),
               f"{path}: {int(implausible.sum())} speed value(s) above "
               f"{PLAUSIBLE['Speed'][1]:g} km/h ({first_at(implausible)}) treated as missing")
    step = np.diff(t)
    gaps = step > MAX_GAP_S
    if gaps.any():
        i = int(np.flatnonzero(gaps)[0])
        _count(act, report, "fit_gaps", int(gaps.sum()),
               f"{path}: {int(gaps.sum())} gap(s) over {MAX_GAP_S:g} s between records "
               f"(longest {step.max():g} s; first after t = {t[i]:g} s) left as gaps: "
               "windows touching them are dropped")
    act.records = pd.DataFrame({"time": t, "Speed": speed, "HR": hr, "RR": rr})
    return act


def _count(act: FitActivity, report: DataReport, key: str, n: int, message: str) -> None:
    if n > 0:
        act.counts[key] = act.counts.get(key, 0) + n
        report.add(key, n, message)


def parse_sex(text: str) -> int:
    """``male``/``female``, ``m``/``f`` or the project's code (0 = male, 1 = female)."""
    code = SEX_CODES.get(str(text).strip().lower())
    if code is None:
        raise DataError(f"--sex {text!r}: not a sex (use male or female; m/f; or the "
                        "project's codes 0 = male, 1 = female)")
    return code


def fit_test_id(path: Path) -> str:
    """ID_test from the file name: its stem, characters other than letters, digits, '_',
    '.' and '-' replaced by '_'."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path).stem) or "fit"


def convert_fit(files: list[Path], out: Path, *, person: str = DEFAULT_PERSON,
                age: float | None = None, weight_kg: float | None = None,
                height_cm: float | None = None, sex: str | int | None = None,
                force: bool = False) -> dict:
    """Write FIT activity files of one person as a canonical data directory.

    One test per file (ID_test from the file name), all under ID ``person``. Age (years),
    weight (kg), height (cm) and sex come from each file's user_profile; a value given here
    replaces the file's for every file. A value missing from both is fatal. Returns
    {"written": [...], "skipped": {id_test: reason}, "warnings": [...]}.
    """
    if not files:
        raise DataError("no FIT file to convert (no .fit file given or found)")
    if not _SAFE_ID.fullmatch(person):
        raise DataError(f"--person {person!r}: use letters, digits, '_', '.' and '-' only")
    given: dict[str, float | int] = {}
    for col, value in [("Age", age), ("Weight", weight_kg), ("Height", height_cm)]:
        if value is None:
            continue
        lo, hi = SUBJECT_RANGES[col]
        if not lo <= value <= hi:
            raise DataError(f"--{col.lower()} {value:g}: outside the plausible range "
                            f"{lo:g}..{hi:g} {PERSON_UNITS[col]}")
        given[col] = float(value)
    if sex is not None:
        given["Sex"] = parse_sex(str(sex))
    files = [Path(f) for f in files]
    ids: dict[str, Path] = {}
    for f in files:
        other = ids.setdefault(fit_test_id(f), f)
        if other != f:
            raise DataError(f"{f}: gives the same test ID {fit_test_id(f)!r} as {other}; rename "
                            "one of them (ID_test comes from the file name)")
    report = DataReport()
    subjects, measures, written, skipped, tests = [], [], [], {}, {}
    sexes: dict[int, Path] = {}
    for f in files:
        id_test = fit_test_id(f)
        act = read_fit(f, report)
        if act.skip:
            skipped[id_test] = f"{f.name}: {act.skip}"
            log.warning("%s (%s): skipped, %s", f, id_test, act.skip)
            continue
        values, origin = {}, {}
        for col in ["Age", "Weight", "Height", "Sex"]:
            if col in given:
                values[col], origin[col] = given[col], "command line"
                if col in act.person and act.person[col] != given[col]:
                    origin[col] += f" (the file's user_profile says {act.person[col]:g})"
            elif col in act.person:
                values[col], origin[col] = act.person[col], "user_profile"
        missing = [c for c in ["Age", "Weight", "Height", "Sex"] if c not in values]
        if missing:
            where = ("has no user_profile message" if not act.person else
                     "its user_profile lacks " + ", ".join(c.lower() for c in missing))
            opts = " ".join(f"--{c.lower()} {'male|female' if c == 'Sex' else 'N'}"
                            for c in missing)
            raise DataError(f"{f}: {where}; give {opts} (age in years, weight in kg, height "
                            "in cm)")
        for col, (lo, hi) in SUBJECT_RANGES.items():
            if origin[col] == "user_profile" and not lo <= values[col] <= hi:
                raise DataError(f"{f}: user_profile {col.lower()} {values[col]:g} is outside "
                                f"the plausible range {lo:g}..{hi:g}; give --{col.lower()}")
        if "Sex" not in given:
            sexes.setdefault(int(values["Sex"]), f)
            first = sexes.get(1 - int(values["Sex"]))
            if first is not None:
                raise DataError(
                    f"{f}: its user_profile gives another sex than {first}'s: one run of "
                    "this command converts one person's files; convert each person's files "
                    "separately (with its own --person), or give --sex")
        m = act.records.assign(VO2=np.nan, VCO2=np.nan, VE=np.nan, ID=person, ID_test=id_test)
        measures.append(m[MEASURE_COLUMNS])
        subjects.append({**values, "Humidity": "", "Temperature": "", "ID": person,
                         "ID_test": id_test})
        written.append(id_test)
        tests[id_test] = {"file": str(f), "sport": act.sports or None, "serial": act.serial,
                          "start_utc": act.start_utc, "records": len(act.records),
                          "person": origin, "artefacts": act.counts}
    write_canonical(out, subjects, measures, {
        "kind": "real: Garmin FIT activity files (watch heart rate, speed, breathing rate; "
                "no VO2, VCO2 or VE)",
        "files": [str(f) for f in files], "person": person,
        "rules": {"pauses": "records between a timer stop and the next start dropped; gaps "
                            "left as gaps",
                  "speed_jump_m_s2": MAX_ACCEL_M_S2,
                  "speed_jump_max_s": JUMP_MAX_S, "speed_max_kmh": PLAUSIBLE["Speed"][1],
                  "hr_missing": "absent, 0 or 255 -> NaN"},
        "tests": tests, "written": written, "skipped": skipped}, force, report, files)
    return {"written": written, "skipped": skipped, "warnings": report.warnings}
