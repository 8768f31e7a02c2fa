"""Bring-your-own-test: a recording dropped on the page, read with the CLI's own code.

Three kinds of upload (multipart/form-data):

- ``kind=physionet``: files ``subject_info`` and ``test_measure`` (the PhysioNet-format
  pair), read by :func:`vo2spike.data.read.load_dataset` as ``vo2spike predict`` /
  ``evaluate`` read a data directory;
- ``kind=k5``: file ``k5`` (a COSMED K5 CSV export) with fields ``age``, ``weight``,
  ``height``, ``sex``, converted by :func:`vo2spike.data.k5.convert_k5` as
  ``vo2spike convert --from k5`` does, then read the same way;
- ``kind=fit``: file ``fit`` (a Garmin FIT activity file from a watch) with optional fields
  ``age``, ``weight``, ``height``, ``sex``: used where the file has no user_profile value,
  and replacing the file's values when given, as ``vo2spike convert --from fit`` does
  (:func:`vo2spike.data.fit.convert_fit`), then read the same way.

Each test of the answer carries the ``input_set`` it was predicted from (``speed,hr`` for
a watch, ``speed,hr,rr`` with a breathing-rate estimate, ``speed,hr,rr,ve`` for the lab).

Files are written only inside a :class:`tempfile.TemporaryDirectory` under fixed names
(never the client's file names), removed when the request ends. ``DataError`` messages are
passed on with the temporary paths replaced by the uploaded files' names.
"""

from __future__ import annotations

import email.parser
import email.policy
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vo2spike.data.fit import SEX_CODES, convert_fit, read_fit
from vo2spike.data.k5 import convert_k5
from vo2spike.data.read import (
    MEASURE_FILE,
    SUBJECT_FILE,
    SUBJECT_RANGES,
    DataError,
    DataReport,
    load_dataset,
)
from vo2spike.data.windows import input_sets_of, make_windows
from vo2spike.demo.workouts import ParamError, Person, parse_person
from vo2spike.inference import predict_windows
from vo2spike.metrics import regression_metrics
from vo2spike.vo2max import vo2max_per_test

#: Largest accepted request body (bytes).
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: The fixed name an uploaded FIT file is written under (its stem is the test's ID).
FIT_FILE = "activity.fit"
#: The person fields of a FIT upload -> :func:`convert_fit`'s keyword and SUBJECT_RANGES column.
FIT_PERSON = {"age": ("age", "Age"), "weight": ("weight_kg", "Weight"),
              "height": ("height_cm", "Height")}


@dataclass
class Part:
    """One multipart field: its client file name (None for plain fields) and content."""

    filename: str | None
    data: bytes


def parse_multipart(content_type: str, body: bytes) -> dict[str, Part]:
    """Fields of a multipart/form-data body by name; ParamError when it is not one."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise ParamError("the upload must be sent as multipart/form-data")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise ParamError("the upload is not a readable multipart/form-data body")
    parts: dict[str, Part] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        data = part.get_payload(decode=True) or b""
        parts[str(name)] = Part(part.get_filename(), data)
    return parts


def _text(parts: dict[str, Part], name: str) -> str:
    p = parts.get(name)
    return p.data.decode("utf-8", "replace").strip() if p else ""


def _file(parts: dict[str, Part], name: str, what: str) -> Part:
    p = parts.get(name)
    if p is None or p.filename is None or not p.data:
        raise ParamError(f"no {what} file was sent (or it is empty)")
    return p


def _display_name(part: Part, fallback: str) -> str:
    """The uploaded file's base name, for messages only (never used as a path)."""
    name = (part.filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:120] or fallback


def _scrub(message: str, tmp: Path, names: dict[Path, str]) -> str:
    """A DataError message with temporary paths replaced by the uploaded files' names."""
    for path, shown in sorted(names.items(), key=lambda kv: -len(str(kv[0]))):
        message = message.replace(str(path), shown)
    message = message.replace(str(tmp) + "/", "").replace(str(tmp), "upload")
    return " ".join(message.split())  # parser messages may end in a newline


def predict_upload(content_type: str, body: bytes, model, norm,
                   vo2max_record: dict | None = None) -> dict:
    """Read, validate, clean and window an uploaded recording and predict it with the
    model. Returns per-test predictions against the measured VO2 (when the recording has
    VO2), with R² and RMSE (mL/min), and the VO2max with its interval as ``vo2spike
    predict`` gives it (``vo2max_record``: the model's ``config.vo2max``). Raises
    ParamError / DataError with clear messages."""
    parts = parse_multipart(content_type, body)
    kind = _text(parts, "kind") or "physionet"
    with tempfile.TemporaryDirectory(prefix="vo2spike-upload-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        names: dict[Path, str] = {}
        converted: list[str] = []  # the converter's own artefact warnings (pauses, GPS)
        if kind == "physionet":
            data_dir.mkdir()
            for field, fixed in [("subject_info", SUBJECT_FILE), ("test_measure", MEASURE_FILE)]:
                part = _file(parts, field, fixed)
                (data_dir / fixed).write_bytes(part.data)
                names[data_dir / fixed] = _display_name(part, fixed)
        elif kind == "k5":
            part = _file(parts, "k5", "COSMED K5 export")
            person = _person(parts)
            k5_path = tmp / "export.csv"
            k5_path.write_bytes(part.data)
            names[k5_path] = _display_name(part, "K5 export")
            subjects = tmp / "subjects.csv"
            subjects.write_text("File,ID,Age,Weight,Height,Sex\n"
                                f"export.csv,upload,{person.age:g},{person.weight:g},"
                                f"{person.height:g},{person.sex}\n")
            try:
                result = convert_k5([k5_path], subjects, data_dir)
            except DataError as e:
                raise DataError(_scrub(str(e), tmp, names)) from None
            if not result["written"]:
                raise DataError(f"{names[k5_path]}: no heart rate in this export (HR is all "
                                "0 or missing): the model needs heart rate")
            names[data_dir / SUBJECT_FILE] = "the typed age/weight/height/sex"
            names[data_dir / MEASURE_FILE] = f"{names[k5_path]} (converted)"
        elif kind == "fit":
            part = _file(parts, "fit", "FIT activity")
            given = _fit_person(parts)
            fit_path = tmp / FIT_FILE
            fit_path.write_bytes(part.data)
            names[fit_path] = _display_name(part, "FIT file")
            try:
                converted = convert_fit([fit_path], data_dir, **given)["warnings"]
            except DataError as e:
                raise _fit_error(e, fit_path, given, tmp, names) from None
            names[data_dir / SUBJECT_FILE] = f"{names[fit_path]} (person)"
            names[data_dir / MEASURE_FILE] = f"{names[fit_path]} (converted)"
        else:
            raise ParamError(f"kind: {kind!r} is not an upload kind (physionet, k5 or fit)")
        try:
            dataset = load_dataset(data_dir, require_labels=False)
            labels = bool(dataset.measures["VO2"].notna().any()
                          and dataset.measures["VCO2"].notna().any())
            windows = make_windows(dataset, with_labels=labels)
        except DataError as e:
            raise DataError(_scrub(str(e), tmp, names)) from None
        warnings = [_scrub(w, tmp, names) for w in converted + dataset.report.warnings]
    pred = predict_windows(model, norm, windows.x)
    input_sets = input_sets_of(windows.x)
    sets = pd.Series(input_sets, index=windows.id_test).groupby(level=0).first()
    per_test = vo2max_per_test(windows, pred.vo2, pred.vo2max, sets,
                               vo2max_record).set_index("ID_test")
    tests = []
    for row in windows.tests.itertuples(index=False):
        m = windows.id_test == row.ID_test
        est = float(per_test.loc[row.ID_test, "vo2max_pred"])
        entry = {
            "id_test": str(row.ID_test), "weight": float(row.Weight),
            "t_start": windows.t_start[m].tolist(), "t_end": windows.t_end[m].tolist(),
            "vo2_pred": _rounded(pred.vo2[m]), "vo2_measured": _rounded(windows.vo2[m]),
            "vo2max_pred": round(est, 1), "vo2max_pred_ml_kg_min": round(est / row.Weight, 2),
            "vo2max_low": _num(per_test.loc[row.ID_test, "vo2max_low"]),
            "vo2max_high": _num(per_test.loc[row.ID_test, "vo2max_high"]),
            "vo2max_measured": _num(row.vo2max), "metrics": None,
            # one set per test: make_windows decides RR/VE presence test by test
            "input_set": str(input_sets[m][0]),
        }
        if labels and m.sum() >= 2:
            entry["metrics"] = _metrics(windows.vo2[m], pred.vo2[m])
        tests.append(entry)
    overall = _metrics(windows.vo2, pred.vo2) if labels and len(windows) >= 2 else None
    return {"kind": kind, "labels": labels, "n_windows": int(len(windows)),
            "tests": tests, "overall": overall, "warnings": warnings,
            "spike_rates": pred.spike_rates}


def _person(parts: dict[str, Part]) -> Person:
    values = {k: _text(parts, k) for k in ("age", "weight", "height", "sex")}
    missing = [k for k, v in values.items() if not v]
    if missing:
        raise ParamError(f"a K5 export needs the person's {', '.join(missing)} "
                         "(age years, weight kg, height cm, sex 0 = male / 1 = female)")
    return parse_person(values, Person(30.0, 70.0, 175.0, 0))


def _fit_person(parts: dict[str, Part]) -> dict:
    """:func:`convert_fit`'s person keywords from the optional typed fields (None where the
    field is empty: the watch file's user_profile gives it); ParamError names a bad field."""
    typed = {k: v for k in ("age", "weight", "height", "sex") if (v := _text(parts, k))}
    sex = typed.pop("sex", None)
    person = parse_person(typed, Person(30.0, 70.0, 175.0, 0))  # checks the typed numbers
    out: dict = {key: (getattr(person, field) if field in typed else None)
                 for field, (key, _) in FIT_PERSON.items()}
    out["sex"] = None
    if sex is not None:
        if sex.lower() not in SEX_CODES:
            raise ParamError(f"sex: {sex!r} is not a sex (use 0 = male, 1 = female)")
        out["sex"] = SEX_CODES[sex.lower()]
    return out


def _fit_error(error: DataError, path: Path, given: dict, tmp: Path,
               names: dict[Path, str]) -> Exception:
    """The error to show for a FIT upload that :func:`convert_fit` refused, worded for the
    page: a skipped file (no heart rate, cycling, ...) with the reason; a missing or
    implausible user_profile value as the field(s) to type; else the converter's message
    with the temporary paths scrubbed."""
    shown = names[path]
    try:
        act = read_fit(path, DataReport())
    except DataError:  # broken file: the converter's message says where decoding stopped
        return DataError(_scrub(str(error), tmp, names))
    if act.skip:
        need = "" if "the model needs" in act.skip else (
            ": the model needs an on-foot activity (running or walking) with heart rate and "
            "speed")
        return DataError(f"{shown}: this watch file cannot be used: {act.skip}{need}")
    typed = {"age": given["age"], "weight": given["weight_kg"], "height": given["height_cm"],
             "sex": given["sex"]}
    column = {field: col for field, (_, col) in FIT_PERSON.items()} | {"sex": "Sex"}
    missing = [f for f, v in typed.items() if v is None and column[f] not in act.person]
    if missing:
        listed = (", ".join(missing[:-1]) + " and " + missing[-1] if len(missing) > 1
                  else missing[0])
        where = ("has no user profile (no user_profile message)" if not act.person else
                 f"has a user profile without the person's {listed}")
        return ParamError(f"{shown}: the watch file {where}; type the person's {listed} "
                          "in the form")
    for field, (_, col) in FIT_PERSON.items():
        lo, hi = SUBJECT_RANGES[col]
        v = act.person.get(col)
        if typed[field] is None and v is not None and not lo <= v <= hi:
            return ParamError(f"{shown}: the watch file's user profile gives {field} {v:g}, "
                              f"outside the plausible range {lo:g}..{hi:g}: type the "
                              f"person's {field}")
    return DataError(_scrub(str(error), tmp, names))


def _num(v: float) -> float | None:
    v = float(v)
    return round(v, 1) if np.isfinite(v) else None


def _rounded(a: np.ndarray) -> list[float | None]:
    return [_num(v) for v in np.asarray(a, dtype=float)]


def _metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    m = regression_metrics(y, pred)
    return {"r2": round(m["r2"], 4), "rmse": round(m["rmse"], 1), "mae": round(m["mae"], 1),
            "n_windows": int(len(y))}
