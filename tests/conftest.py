"""Shared fixtures: a small simulated cohort and a quickly trained run (session-scoped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vo2spike.config import TrainConfig
from vo2spike.data.simulate import write_cohort
from vo2spike.train import train_run

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
#: Tests that read the real data in ../shared/data: present in CI, absent in a user's clone.
needs_shared = pytest.mark.skipif(
    not all((SHARED / d).is_dir() for d in ("yoyo-k5", "physionet-treadmill-1.0.1")),
    reason=f"real data not found at {SHARED} (../shared/data beside the repository)")


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory) -> Path:
    """A 40-test simulated cohort (synthetic demographics, ramp protocol)."""
    return write_cohort(tmp_path_factory.mktemp("sim") / "cohort", n_tests=40, seed=3)


@pytest.fixture(scope="session")
def run_dir(sim_dir, tmp_path_factory) -> Path:
    """A spiking model + twin trained for a few epochs on ``sim_dir``."""
    out = tmp_path_factory.mktemp("run") / "run"
    train_run(sim_dir, out, TrainConfig(epochs=3), seed=1)
    return out
