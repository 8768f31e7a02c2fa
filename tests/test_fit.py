"""``vo2spike convert --from fit``: Garmin FIT activity files -> a canonical data directory.

Every FIT file here is written in a tmp_path with the SDK's own Encoder; each test runs the
CLI's entry point and checks the written files, the exit code and the messages.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from garmin_fit_sdk import Encoder, Profile

from vo2spike.cli import main
from vo2spike.data.fit import _jumps
from vo2spike.data.read import MEASURE_COLUMNS, SUBJECT_COLUMNS, load_dataset

MESG = Profile["mesg_num"]
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
PROFILE = {"gender": "male", "age": 34, "height": 1.78, "weight": 72.5}


def graded_run(n: int = 1200) -> list[dict]:
    """``n`` s of a graded run at 1 Hz: speed 2.2 -> 5.0 m/s, HR 100 -> 190 bpm, RR 20 ->
    45 breaths/min (record fields as the Encoder takes them, plus ``t`` in s)."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        f = i / n
        out.append({"t": i, "enhanced_speed": round(2.2 + 2.8 * f + rng.normal(0, 0.03), 3),
                    "heart_rate": int(100 + 90 * f + rng.normal(0, 1)),
                    "enhanced_respiration_rate": round(20 + 25 * f, 2)})
    return out


def write_fit(path: Path, records: list[dict], *, profile: dict | None = PROFILE,
              sport: str = "running", events: tuple[tuple[int, str], ...] = ()) -> Path:
    """A FIT activity file: file_id, user_profile, timer start, ``records``, ``events``
    (t in s, timer event_type) at their times, timer stop, session."""
    enc = Encoder()
    enc.write_mesg({"mesg_num": MESG["FILE_ID"], "type": "activity", "manufacturer": "garmin",
                    "serial_number": 3912345678, "time_created": T0})
    if profile is not None:
        enc.write_mesg({"mesg_num": MESG["USER_PROFILE"], **profile})
    timer = sorted([(records[0]["t"], "start"), *events], key=lambda e: e[0])
    for r in records:
        while timer and timer[0][0] <= r["t"]:
            t, kind = timer.pop(0)
            enc.write_mesg({"mesg_num": MESG["EVENT"], "timestamp": T0 + timedelta(seconds=t),
                            "event": "timer", "event_type": kind})
        fields = {k: v for k, v in r.items() if k != "t" and v is not None}
        enc.write_mesg({"mesg_num": MESG["RECORD"],
                        "timestamp": T0 + timedelta(seconds=r["t"]), **fields})
    end = T0 + timedelta(seconds=records[-1]["t"])
    enc.write_mesg({"mesg_num": MESG["EVENT"], "timestamp": end, "event": "timer",
                    "event_type": "stop_all"})
    enc.write_mesg({"mesg_num": MESG["SESSION"], "timestamp": end, "start_time": T0,
                    "sport": sport})
    path.write_bytes(enc.close())
    return path


def convert(args: list, capsys) -> tuple[int, str, str]:
    code = main(["convert", "--from", "fit", *map(str, args)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def read_out(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return (pd.read_csv(out / "subject-info.csv"), pd.read_csv(out / "test_measure.csv"),
            json.loads((out / "SOURCE.json").read_text()))


def test_graded_run_converts_to_a_loadable_data_dir(tmp_path, capsys):
    fit = write_fit(tmp_path / "2026-03-01-08-00-00.fit", graded_run())
    code, out, _ = convert([fit, "--out", tmp_path / "out"], capsys)
    assert code == 0 and "wrote 1 session(s)" in out
    subjects, m, source = read_out(tmp_path / "out")
    assert list(subjects.columns) == SUBJECT_COLUMNS and list(m.columns) == MEASURE_COLUMNS
    s = subjects.iloc[0]
    assert (s["ID"], s["ID_test"]) == ("P1", "2026-03-01-08-00-00")
    assert (s["Age"], s["Weight"], s["Height"], s["Sex"]) == (34, 72.5, 178.0, 0)  # 0 = male
    assert m["time"].tolist() == list(range(1200))
    speed_m_s = np.array([r["enhanced_speed"] for r in graded_run()])
    np.testing.assert_allclose(m["Speed"], speed_m_s * 3.6, atol=1e-3)  # km/h
    assert m["HR"].between(95, 195).all() and m["RR"].iloc[-1] == pytest.approx(44.98)
    assert m[["VO2", "VCO2", "VE"]].isna().all().all()  # not measured: empty, not 0
    assert "Garmin FIT" in source["kind"] and source["written"] == ["2026-03-01-08-00-00"]
    assert source["tests"]["2026-03-01-08-00-00"]["artefacts"] == {}
    assert source["tests"]["2026-03-01-08-00-00"]["person"]["Age"] == "user_profile"
    ds = load_dataset(tmp_path / "out")
    assert len(ds.subjects) == 1 and len(ds.measures) == 1200
    assert "Garmin FIT" in ds.source["kind"]


def test_pause_rows_are_dropped_and_the_gap_kept(tmp_path, capsys):
    recs = graded_run()
    for r in recs[601:700]:  # the watch kept recording while stopped: standing, HR falling
        r["enhanced_speed"] = 0.0
    recs = recs[:900] + recs[960:]  # and 60 s with no record at all, no timer event
    fit = write_fit(tmp_path / "paused.fit", recs, events=((600, "stop"), (700, "start")))
    code, _, _ = convert([fit, "--out", tmp_path / "out"], capsys)
    assert code == 0
    _, m, source = read_out(tmp_path / "out")
    t = m["time"].to_numpy()
    assert not ((t > 600) & (t < 700)).any() and {600, 700} <= set(t)
    assert not ((t > 899) & (t < 960)).any()
    assert len(m) == 1200 - 99 - 60
    assert (m["Speed"] > 0).all()  # the standing records are gone, not kept as 0 km/h
    counts = source["tests"]["paused"]["artefacts"]
    assert counts == {"fit_records_in_pauses": 99, "fit_gaps": 2}  # 600->700 and 899->960
    assert any("inside timer pauses" in w for w in source["warnings"])


def test_speed_jumps_and_missing_heart_rate_become_empty_and_are_counted(tmp_path, capsys):
    recs = graded_run()
    recs[300]["enhanced_speed"] = recs[301]["enhanced_speed"] = 8.2  # GPS jump (from 2.9)
    recs[500]["enhanced_speed"] = None  # GPS drop-out
    recs[700]["enhanced_speed"] = 12.0  # 43 km/h
    recs[400]["heart_rate"] = 0  # strap lost contact
    recs[401]["heart_rate"] = None  # no HR in the record
    recs[402]["heart_rate"] = 255  # the FIT "invalid" value
    fit = write_fit(tmp_path / "artefacts.fit", recs)
    code, _, _ = convert([fit, "--out", tmp_path / "out"], capsys)
    assert code == 0
    _, m, source = read_out(tmp_path / "out")
    assert m["Speed"].isna().to_numpy().nonzero()[0].tolist() == [300, 301, 500, 700]
    assert m["HR"].isna().to_numpy().nonzero()[0].tolist() == [400, 401, 402]
    assert m.loc[302, "Speed"] == pytest.approx(recs[302]["enhanced_speed"] * 3.6, abs=1e-3)
    assert source["tests"]["artefacts"]["artefacts"] == {
        "fit_hr_missing": 3, "fit_speed_missing": 1, "fit_speed_jumps": 2,
        "fit_speed_implausible": 1}


def test_speed_only_in_the_old_field_is_used(tmp_path, capsys):
    recs = [{**r, "speed": r.pop("enhanced_speed")} for r in graded_run(300)]
    fit = write_fit(tmp_path / "old.fit", recs)
    assert convert([fit, "--out", tmp_path / "out"], capsys)[0] == 0
    _, m, _ = read_out(tmp_path / "out")
    np.testing.assert_allclose(m["Speed"], [r["speed"] * 3.6 for r in recs], atol=1e-3)


def test_files_without_heart_rate_or_running_speed_are_skipped(tmp_path, capsys):
    good = write_fit(tmp_path / "run.fit", graded_run(300))
    no_hr = write_fit(tmp_path / "nohr.fit", [{**r, "heart_rate": None}
                                              for r in graded_run(300)])
    ride = write_fit(tmp_path / "ride.fit", [{**r, "enhanced_speed": None}
                                             for r in graded_run(300)], sport="cycling")
    treadmill = write_fit(tmp_path / "treadmill.fit", [{**r, "enhanced_speed": None}
                                                       for r in graded_run(300)])
    code, out, _ = convert([good, no_hr, ride, treadmill, "--out", tmp_path / "out"], capsys)
    assert code == 0 and "wrote 1 session(s)" in out
    assert "skipped nohr: nohr.fit: no heart rate in any record" in out
    assert "skipped ride: ride.fit: sport cycling" in out and "on-foot" in out
    assert "skipped treadmill: treadmill.fit: no speed in any record" in out
    subjects, _, source = read_out(tmp_path / "out")
    assert subjects["ID_test"].tolist() == ["run"]
    assert set(source["skipped"]) == {"nohr", "ride", "treadmill"}
    code, _, err = convert([no_hr, "--out", tmp_path / "out2"], capsys)
    assert code == 2 and "no session left to write" in err
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize("damage, expected", [
    ("truncate", r"truncated: its header promises [\d,]+ bytes, it has [\d,]+"),
    ("flip", "CRC does not match"),
])
def test_damaged_file_is_refused_naming_file_and_byte(tmp_path, capsys, damage, expected):
    data = bytearray(write_fit(tmp_path / "run.fit", graded_run(600)).read_bytes())
    if damage == "truncate":
        data = data[:-700]
    else:
        data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.fit"
    bad.write_bytes(bytes(data))
    good = write_fit(tmp_path / "good.fit", graded_run(300))
    code, _, err = convert([good, bad, "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert f"{bad}: corrupt FIT file: decoding failed at byte " in err
    assert "record message(s)" in err
    assert pd.Series([err]).str.contains(expected).iloc[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_a_file_that_is_not_fit_is_refused(tmp_path, capsys):
    csv = tmp_path / "export.fit"
    csv.write_text("time,HR\n0,120\n")
    code, _, err = convert([csv, "--out", tmp_path / "out"], capsys)
    assert code == 2 and f"{csv}: not a FIT file" in err


def test_without_user_profile_the_person_comes_from_the_command_line(tmp_path, capsys):
    fit = write_fit(tmp_path / "anon.fit", graded_run(300), profile=None)
    code, _, err = convert([fit, "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert (f"{fit}: has no user_profile message; give --age N --weight N --height N "
            "--sex male|female") in err
    assert not (tmp_path / "out").exists()
    code, _, _ = convert([fit, "--age", 41, "--weight", 61, "--height", 166, "--sex", "female",
                          "--person", "anna", "--out", tmp_path / "out"], capsys)
    assert code == 0
    s = read_out(tmp_path / "out")[0].iloc[0]
    assert (s["ID"], s["Age"], s["Weight"], s["Height"], s["Sex"]) == ("anna", 41, 61, 166, 1)


def test_command_line_values_replace_the_files_and_are_recorded(tmp_path, capsys):
    fit = write_fit(tmp_path / "run.fit", graded_run(300), profile={"gender": "male",
                                                                    "age": 34})
    code, _, err = convert([fit, "--out", tmp_path / "out"], capsys)
    assert code == 2 and "its user_profile lacks weight, height; give --weight N --height N" \
        in err
    code, _, _ = convert([fit, "--age", 35, "--weight", 70, "--height", 180, "--out",
                          tmp_path / "out"], capsys)
    assert code == 0
    subjects, _, source = read_out(tmp_path / "out")
    assert subjects.loc[0, "Age"] == 35 and subjects.loc[0, "Sex"] == 0
    person = source["tests"]["run"]["person"]
    assert person["Age"] == "command line (the file's user_profile says 34)"
    assert person["Sex"] == "user_profile"
    code, _, err = convert([fit, "--sex", "x", "--age", 35, "--weight", 70, "--height", 180,
                            "--out", tmp_path / "o2"], capsys)
    assert code == 2 and "--sex 'x': not a sex" in err


def test_output_is_not_overwritten_without_force_and_options_are_checked(tmp_path, capsys):
    fit = write_fit(tmp_path / "run.fit", graded_run(300))
    assert convert([fit, "--out", tmp_path / "out"], capsys)[0] == 0
    code, _, err = convert([fit, "--out", tmp_path / "out"], capsys)
    assert code == 2 and "already exists; pass --force" in err
    assert convert([fit, "--out", tmp_path / "out", "--force"], capsys)[0] == 0
    (tmp_path / "f").mkdir()
    other = write_fit(tmp_path / "f" / "run.fit", graded_run(300))
    code, _, err = convert([fit, other, "--out", tmp_path / "o2"], capsys)
    assert code == 2 and "gives the same test ID 'run'" in err
    code = main(["convert", "--from", "yoyo", str(tmp_path), "--age", "30", "--out",
                 str(tmp_path / "o3")])
    assert code == 2 and "--age: only for --from fit" in capsys.readouterr().err
    code = main(["convert", "--from", "yoyo", str(tmp_path), str(fit), "--out",
                 str(tmp_path / "o3")])
    assert code == 2 and "--from yoyo takes one SRC, got 2" in capsys.readouterr().err


def test_a_folder_of_fit_files_converts_them_all(tmp_path, capsys):
    folder = tmp_path / "GARMIN" / "Activity"
    folder.mkdir(parents=True)
    write_fit(folder / "A1.FIT", graded_run(300))
    write_fit(folder / "A2.fit", graded_run(300))
    (folder / "notes.txt").write_text("not a FIT file")
    code, out, _ = convert([folder, "--out", tmp_path / "out"], capsys)
    assert code == 0 and "wrote 2 session(s)" in out
    assert read_out(tmp_path / "out")[0]["ID_test"].tolist() == ["A1", "A2"]
    before = sorted(p.name for p in folder.iterdir())
    code, _, err = convert([folder, "--out", folder, "--force"], capsys)
    assert code == 2 and "holds the input" in err
    assert sorted(p.name for p in folder.iterdir()) == before


def test_files_of_two_people_in_one_run_are_refused(tmp_path, capsys):
    a = write_fit(tmp_path / "a.fit", graded_run(300))
    b = write_fit(tmp_path / "b.fit", graded_run(300), profile={**PROFILE, "gender": "female"})
    code, _, err = convert([a, b, "--out", tmp_path / "out"], capsys)
    assert code == 2 and f"{b}: its user_profile gives another sex than {a}'s" in err
    assert convert([a, b, "--sex", "m", "--out", tmp_path / "out"], capsys)[0] == 0
    assert read_out(tmp_path / "out")[0]["Sex"].tolist() == [0, 0]


def test_only_short_stretches_between_steep_steps_are_gps_jumps():
    t = np.arange(80.0)
    v = np.full(80, 3.0)
    v[10:13] = 9.0  # 3 s away and back: a jump
    v[30:45] = 9.0  # 15 s: kept (longer than JUMP_MAX_S)
    v[60:] = 9.5  # a step that never comes back: kept
    assert np.flatnonzero(_jumps(v, t)).tolist() == [10, 11, 12]
    v[11] = 15.0  # up, further up, back: all of it
    assert np.flatnonzero(_jumps(v, t)).tolist() == [10, 11, 12]
    stairs = np.r_[np.full(20, 0.5), np.full(5, 6.0), np.full(20, 11.5)]  # up and up: kept
    assert not _jumps(stairs, np.arange(45.0)).any()
    assert not _jumps(np.linspace(0.0, 6.0, 80), t).any()  # 0.08 m/s per s: running


@pytest.mark.parametrize("with_rr", [True, False])
def test_a_watch_file_is_predicted_end_to_end(run_dir, tmp_path, capsys, with_rr):
    """FIT file -> convert -> predict with the input set the watch recorded."""
    records = graded_run()
    if not with_rr:
        for r in records:
            del r["enhanced_respiration_rate"]
    write_fit(tmp_path / "run.fit", records)
    data = tmp_path / "data"
    rc, _, err = convert([tmp_path / "run.fit", "--out", data], capsys)
    assert rc == 0, err
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(run_dir), "--data", str(data),
                 "--out", str(out)]) == 0
    used = "speed,hr,rr" if with_rr else "speed,hr"
    assert f"{used} for 1 test(s)" in capsys.readouterr().out
    tests = pd.read_csv(out / "tests.csv")
    assert list(tests["input_set"]) == [used] and tests["vo2max_pred"].between(500, 8000).all()
    windows = pd.read_csv(out / "windows.csv")
    assert len(windows) == (1200 - 60) // 30 + 1  # 1,200 s at 1 Hz: 39 windows of 60 s
    assert windows["vo2_pred"].notna().all()
