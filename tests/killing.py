"""Kill a ``vo2spike`` command at a chosen moment and check what it leaves behind.

Used by tests/test_kill.py (a short seeded schedule) and bench/kill_safety.py (a long one).
The property, for every command that writes: after SIGINT or SIGTERM the exit code is 130
(or 0 when the command had already finished), there is no traceback, the inputs are
untouched, and the output path is absent, exactly the previous output, or a complete new
output; nothing else is left beside it (except ``train``'s resumable OUT.partial).

A command that finishes before its kill moment is run again, killed earlier (``kill_during``),
so that a fast machine still tests interruptions rather than finished commands.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from vo2spike.outputs import MARKER

EXE = Path(sys.executable).with_name("vo2spike")
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
#: The earliest kill moment (s). Before the interpreter reaches vo2spike's first line (about
#: 30 ms: ``__main__`` installs the handlers first) Python's default handling applies: no
#: exit code 130, but nothing is written yet either.
EARLIEST_S = 0.2


@dataclass
class Command:
    """A command to interrupt; ``{out}`` in ``args`` is replaced by the output path."""

    name: str
    args: list[str]
    kind: str  # the output's marker kind
    complete: set[str]  # names a finished output holds (besides the marker)
    window_s: float  # kill moments are drawn in [EARLIEST_S, window_s] s after the start
    inputs: list[Path] = field(default_factory=list)  # must be left untouched
    resumable: bool = False  # an interrupted OUT.partial is kept for --resume (train)


@dataclass
class Outcome:
    """What one interruption left."""

    command: str
    at_s: float
    signal: str
    previous: bool  # an earlier output was there (replaced with --force)
    code: int
    state: str  # absent | previous | complete | broken
    problems: list[str]
    seconds: float
    tries: int = 1  # runs it took to interrupt it (see kill_during)


def tree(path: Path) -> dict[str, str] | None:
    """Relative path -> SHA256 of every file under ``path`` (None if it does not exist)."""
    if not path.exists():
        return None
    if path.is_file():
        return {"": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def make_previous(out: Path, kind: str) -> dict[str, str]:
    """An earlier output of ``kind`` at ``out`` (``--force`` may replace it); its tree."""
    out.mkdir(parents=True)
    (out / MARKER).write_text(json.dumps({"kind": kind}) + "\n")
    (out / "previous.txt").write_text("the complete previous output\n")
    return tree(out)


def kill_once(cmd: Command, work: Path, at_s: float, sig: str, previous: bool,
              timeout_s: float = 300) -> Outcome:
    """Run ``cmd`` in the empty folder ``work``, send ``sig`` after ``at_s`` s, check."""
    out = work / "out"
    before = make_previous(out, cmd.kind) if previous else None
    inputs_before = {str(p): tree(p) for p in cmd.inputs}
    args = [a.replace("{out}", str(out)) for a in cmd.args] + (["--force"] if previous else [])
    t0 = time.monotonic()
    proc = subprocess.Popen([str(EXE), *args], cwd=work, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=at_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(SIGNALS[sig])
    err = proc.communicate(timeout=timeout_s)[1]
    seconds = time.monotonic() - t0
    problems = []
    if proc.returncode not in (0, 130):
        problems.append(f"exit code {proc.returncode}")
    if proc.returncode == 130 and "interrupted" not in err:
        problems.append("exit 130 without saying it was interrupted")
    if "Traceback" in err:
        problems.append("a traceback")
    after = tree(out)
    if after is None:
        state = "absent"
    elif after == before:
        state = "previous"
    elif out.is_dir() and _kind(out) == cmd.kind and cmd.complete <= {p.name for p in
                                                                     out.iterdir()}:
        state = "complete"
    else:
        state = "broken"
    if state == "broken" or (state == "absent" and previous):
        problems.append(f"output is {state}: {sorted(after or {})[:8]}")
    if proc.returncode == 0 and state != "complete":
        problems.append(f"exit 0 but the output is {state}")
    left = sorted(p.name for p in work.iterdir() if p.name != "out")
    partial = work / "out.partial"
    if cmd.resumable and left == ["out.partial"] and (partial / "config.json").is_file():
        left = []  # kept on purpose: `train --resume` continues it
    if left:
        problems.append(f"left behind: {left}")
    for p, t in inputs_before.items():
        if tree(Path(p)) != t:
            problems.append(f"input changed: {p}")
    return Outcome(cmd.name, round(at_s, 2), sig, previous, proc.returncode, state, problems,
                   round(seconds, 1))


def kill_during(cmd: Command, work: Path, at_s: float, sig: str, previous: bool,
                tries: int = 3) -> Outcome:
    """``kill_once`` in ``work``/1; if the command finished first, again in ``work``/2 at the
    same fraction of the time it took (its window is only an estimate of that), and so on.
    The last outcome, or the first one with a problem."""
    for n in range(1, tries + 1):
        folder = work / str(n)
        folder.mkdir(parents=True)
        outcome = kill_once(cmd, folder, at_s, sig, previous)
        outcome.tries = n
        if outcome.code != 0 or outcome.problems:
            break
        fraction = (at_s - EARLIEST_S) / max(cmd.window_s - EARLIEST_S, 1e-9)
        at_s = EARLIEST_S + fraction * max(0.8 * outcome.seconds - EARLIEST_S, 0.0)
    return outcome


def _kind(path: Path) -> str | None:
    try:
        return json.loads((path / MARKER).read_text()).get("kind")
    except (OSError, ValueError):
        return None


def schedule(commands: list[Command], per_command: int, seed: int
             ) -> list[tuple[Command, float, str, bool]]:
    """A seeded list of (command, moment in s, signal, previous output present)."""
    rng = random.Random(seed)
    return [(c, rng.uniform(EARLIEST_S, c.window_s), rng.choice(sorted(SIGNALS)),
             rng.random() < 0.5) for c in commands for _ in range(per_command)]


def standard_commands(sim: Path, run: Path, model: Path, yoyo: Path | None,
                      scale: float = 1.0) -> list[Command]:
    """Every writing command on small inputs: ``sim`` a simulated cohort, ``run`` a trained
    run on it, ``model`` a finished model folder with a compressed model (models/default),
    ``yoyo`` the Yo-Yo recordings (or None). ``scale`` stretches the kill windows.

    Each window is about 0.8 x the command's uninterrupted time on 2 idle cores (measured
    2026-12-06; export-onnx 10 of 17 s), so that most moments fall while it works; on a
    faster machine ``kill_during`` draws again within the time it took."""
    cohort = {"subject-info.csv", "test_measure.csv", "SIMULATED.json"}
    cmds = [
        Command("simulate", ["simulate", "--out", "{out}", "--n-tests", "40"], "cohort",
                cohort | {"truth.csv"}, 2.4),
        Command("train", ["train", "--data", str(sim), "--out", "{out}", "--epochs", "1"],
                "run", {"config.json", "metrics.json", "model.safetensors"}, 3.5, [sim],
                resumable=True),
        Command("evaluate", ["evaluate", "--model", str(model), "--data", str(sim), "--out",
                             "{out}"], "evaluation", {"report.md", "metrics.json"}, 2.7,
                [sim, model]),
        Command("predict", ["predict", "--model", str(model), "--data", str(sim), "--out",
                            "{out}"], "predictions", {"windows.csv", "tests.csv"}, 2.5,
                [sim, model]),
        Command("compress", ["compress", "--model", str(run), "--data", str(sim), "--out",
                             "{out}", "--finetune-epochs", "1", "--no-c"], "compressed",
                {"compression.json", "int8.safetensors"}, 4.8, [sim, run]),
        Command("export-c", ["export-c", "--model", str(model / "compressed"), "--out",
                             "{out}"], "c-export", {"vo2spike_model.h"}, 2.2, [model]),
        Command("export-onnx", ["export-onnx", "--model", str(model), "--out", "{out}"],
                "onnx", {"onnx_check.json"}, 10, [model]),
        Command("run", ["run", "--data", str(sim), "--no-real", "--quick", "--out", "{out}"],
                "run", {"config.json", "metrics.json", "compressed", "evaluation"}, 5.8, [sim]),
    ]
    if yoyo is not None:
        cmds.insert(1, Command("convert", ["convert", "--from", "yoyo", str(yoyo), "--out",
                                           "{out}"], "converted",
                               {"subject-info.csv", "test_measure.csv", "SOURCE.json"}, 2.5,
                               [yoyo]))
    for c in cmds:
        c.window_s *= scale
    return cmds
