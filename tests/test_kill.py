"""Interruptions never leave a half-written output: the deferral of signals in the critical
sections (deterministic), then every writing command killed at seeded random moments.

bench/kill_safety.py runs the same property with many more moments per command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO, SHARED
from tests.killing import kill_during, schedule, standard_commands
from vo2spike import interrupts, outputs


@pytest.fixture
def handled():
    """This process's SIGINT/SIGTERM handled as the CLI does it (raising mode)."""
    previous = interrupts.install()
    with interrupts.raising():
        yield
    interrupts.restore(previous)
    interrupts.cleanup()


def _kill_self():
    os.kill(os.getpid(), signal.SIGTERM)


def test_a_signal_inside_a_deferred_section_waits_for_its_end(handled):
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            _kill_self()
            with interrupts.deferred():  # nested: still deferred
                reached.append("inner")
            reached.append("end of section")
    assert reached == ["inner", "end of section"]


def test_a_signal_outside_deferred_sections_interrupts_at_once(handled):
    with pytest.raises(KeyboardInterrupt):
        _kill_self()
        for _ in range(10**6):
            pass
        pytest.fail("not interrupted")


def test_a_kill_while_the_partial_folder_is_made_leaves_nothing(handled, tmp_path,
                                                               monkeypatch):
    real_mark = outputs._mark

    def mark_then_killed(path, kind):
        _kill_self()  # between mkdir and the marker: the window of the old flaky test
        real_mark(path, kind)

    monkeypatch.setattr(outputs, "_mark", mark_then_killed)
    with pytest.raises(KeyboardInterrupt):
        with outputs.atomic_dir(tmp_path / "out", kind="cohort"):
            pytest.fail("the block must not start once interrupted")
    assert list(tmp_path.iterdir()) == []


def test_a_kill_between_the_two_renames_of_the_commit_keeps_a_complete_output(
        handled, tmp_path, monkeypatch):
    out = tmp_path / "out"
    with outputs.atomic_dir(out, kind="cohort") as tmp:
        (tmp / "data.csv").write_text("old\n")
    real_replace, calls = os.replace, []

    def replace_then_killed(src, dst):
        real_replace(src, dst)
        calls.append(dst)
        if len(calls) == 1:  # OUT moved aside, the new one not yet in place
            _kill_self()

    monkeypatch.setattr(outputs.os, "replace", replace_then_killed)
    with pytest.raises(KeyboardInterrupt):
        with outputs.atomic_dir(out, force=True, kind="cohort") as tmp:
            (tmp / "data.csv").write_text("new\n")
    assert len(calls) == 2  # the commit finished before the interruption took effect
    assert (out / "data.csv").read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_kill_during_the_block_removes_the_partial_folder(handled, tmp_path):
    out = tmp_path / "out"
    with outputs.atomic_dir(out, kind="cohort") as tmp:
        (tmp / "data.csv").write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        with outputs.atomic_dir(out, force=True, kind="cohort") as tmp:
            (tmp / "data.csv").write_text("half")
            _kill_self()
            for _ in range(10**6):
                pass
    assert (out / "data.csv").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_cleanup_removes_what_is_registered_and_may_run_twice(tmp_path):
    (tmp_path / "a.partial").mkdir()
    (tmp_path / "b.tmp").write_text("x")
    interrupts.remove_on_interrupt(tmp_path / "a.partial")
    interrupts.remove_on_interrupt(tmp_path / "b.tmp")
    interrupts.cleanup()
    interrupts.cleanup()
    assert list(tmp_path.iterdir()) == []


def test_a_kill_while_the_command_still_loads_exits_130_without_a_traceback():
    code = ("import os, signal, time\nfrom vo2spike import interrupts\ninterrupts.install()\n"
            "os.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(30)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in proc.stderr and "Traceback" not in proc.stderr


#: The seeded schedule of make test: one random moment per command, about 40 s in all.
SEED = 0


def test_every_writing_command_killed_at_a_random_moment(sim_dir, run_dir, tmp_path):
    yoyo = SHARED / "yoyo-k5"
    commands = standard_commands(sim_dir, run_dir, REPO / "models" / "default",
                                 yoyo if yoyo.is_dir() else None)
    outcomes = []
    for i, (cmd, at_s, sig, previous) in enumerate(schedule(commands, 1, SEED)):
        work = tmp_path / f"{i}-{cmd.name}"
        work.mkdir()
        outcomes.append(kill_during(cmd, work, at_s, sig, previous))
    failed = [o for o in outcomes if o.problems]
    assert not failed, "\n".join(f"{o.command} at {o.at_s} s ({o.signal}, previous output: "
                                 f"{o.previous}): {'; '.join(o.problems)}" for o in failed)
    # The schedule really interrupts work in progress (not only finished commands): a command
    # that finished first was run again and killed earlier, so nearly all end in exit 130.
    finished = [f"{o.command} (finished in {o.seconds} s, {o.tries} tries)" for o in outcomes
                if o.code == 0]
    assert len(finished) <= len(outcomes) // 4, finished
