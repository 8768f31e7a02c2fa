"""Benchmark: every writing command killed (SIGINT or SIGTERM) at many seeded random moments.

The property tests/test_kill.py checks with one moment per command, here with ``--per-command``
moments each (default 12, about 20 minutes on 2 cores): exit 130 (or 0 if already finished),
no traceback, inputs untouched, the output absent, the previous one, or complete, and nothing
half-written beside it. Inputs: a small SIMULATED cohort and a short run on it, built in
bench/work/kill; models/default; the Yo-Yo recordings in ../shared/data when present.
Writes bench/results/kill_safety.{md,json}; exits 1 if any interruption broke the property.

    .venv/bin/python bench/kill_safety.py [--per-command 12] [--seed 1]
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.killing

from tests.killing import kill_during, schedule, standard_commands  # noqa: E402
from vo2spike.config import TrainConfig  # noqa: E402
from vo2spike.data.simulate import write_cohort  # noqa: E402
from vo2spike.pipeline import SHARED_YOYO  # noqa: E402
from vo2spike.train import train_run  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--per-command", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.5,
                    help="stretch the kill windows (s) of tests/killing.py")
    args = ap.parse_args()
    work = REPO / "bench" / "work" / "kill"
    shutil.rmtree(work, ignore_errors=True)
    sim = write_cohort(work / "sim", n_tests=40, seed=3)
    run = work / "run"
    train_run(sim, run, TrainConfig(epochs=2), seed=1)
    commands = standard_commands(sim, run, REPO / "models" / "default",
                                 SHARED_YOYO if SHARED_YOYO.is_dir() else None, args.scale)
    outcomes = []
    for i, (cmd, at_s, sig, previous) in enumerate(schedule(commands, args.per_command,
                                                            args.seed)):
        folder = work / "kills" / f"{i:03d}-{cmd.name}"
        folder.mkdir(parents=True)
        o = kill_during(cmd, folder, at_s, sig, previous)
        outcomes.append(o)
        print(f"{cmd.name:12s} {o.at_s:6.2f} s {sig:8s} previous={previous!s:5s} -> exit "
              f"{o.code}, {o.state}, {o.tries} tries"
              + (f"  PROBLEMS: {o.problems}" if o.problems else ""), flush=True)
        shutil.rmtree(folder)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "kill_safety.json").write_text(json.dumps(
        {"seed": args.seed, "per_command": args.per_command,
         "outcomes": [asdict(o) for o in outcomes]}, indent=1) + "\n")
    by_cmd: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for o in outcomes:
        by_cmd[o.command][o.state] += 1
        by_cmd[o.command]["exit 130"] += o.code == 130
        by_cmd[o.command]["problems"] += bool(o.problems)
    cols = ["exit 130", "absent", "previous", "complete", "broken", "problems"]
    lines = [f"# Kill safety (seed {args.seed}, {args.per_command} moments per command)", "",
             "Each command on small SIMULATED inputs, killed at a random moment "
             "(bench/kill_safety.py).", "", "| command | " + " | ".join(cols) + " |",
             "|---|" + "---:|" * len(cols)]
    lines += [f"| {c} | " + " | ".join(str(n[k]) for k in cols) + " |"
              for c, n in by_cmd.items()]
    (out / "kill_safety.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if any(o.problems for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
