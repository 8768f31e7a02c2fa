"""Shared fixtures: a small simulated cohort and a quickly trained run (session-scoped)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from vo2spike.config import TrainConfig
from vo2spike.data.simulate import write_cohort
from vo2spike.data.windows import prepare_windows
from vo2spike.train import train_run

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
#: Tests that read the real data in ../shared/data: present in CI, absent in a user's clone.
needs_shared = pytest.mark.skipif(
    not all((SHARED / d).is_dir() for d in ("yoyo-k5", "physionet-treadmill-1.0.1")),
    reason=f"real data not found at {SHARED} (../shared/data beside the repository)")


#: Commands the tests of the browser demo, the C engine and the Cortex-M4 build use.
TOOLS = ("chromium", "gcc", "make", "arm-none-eabi-gcc", "qemu-system-arm", "valgrind")


def pytest_sessionstart(session) -> None:
    """With VO2SPIKE_REQUIRE_TOOLS=1 (CI) a missing tool or missing ../shared/data is an
    error, not a reason to skip tests."""
    if os.environ.get("VO2SPIKE_REQUIRE_TOOLS") != "1":
        return
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not (SHARED / "yoyo-k5").is_dir():
        missing.append(str(SHARED))
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if missing:
        raise pytest.UsageError("VO2SPIKE_REQUIRE_TOOLS=1 but missing: " + ", ".join(missing))


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


@pytest.fixture(scope="session")
def sim_windows(sim_dir):
    """The windows of ``sim_dir``."""
    return prepare_windows(sim_dir)[1]


@pytest.fixture(scope="session")
def int8_dir(run_dir, sim_dir, tmp_path_factory) -> Path:
    """A copy of ``run_dir`` with int8.* and int8_twin.* added (listed in config.json);
    tests read it and copy it before changing anything."""
    from vo2spike.compress.quantize import calibration_windows, quantize_folder

    out = tmp_path_factory.mktemp("int8") / "model"
    shutil.copytree(run_dir, out)
    quantize_folder(out, calibration_windows(run_dir, sim_dir))
    return out
