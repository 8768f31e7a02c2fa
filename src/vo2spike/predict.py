"""Predict VO2 per window and VO2max per test for every test of a data directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vo2spike.config import load_config
from vo2spike.data.read import DataError
from vo2spike.data.windows import (
    INPUT_SETS,
    check_input_set,
    input_sets_of,
    prepare_windows,
)
from vo2spike.engines import engine_folder, load_engine
from vo2spike.inference import DEFAULT_MODEL
from vo2spike.outputs import atomic_dir, check_writable
from vo2spike.vo2max import vo2max_per_test

WINDOW_COLUMNS = ["ID_test", "t_start", "t_end", "vo2_pred", "vo2max_pred"]


def predict_dir(data_dir: Path, out: Path, model_dir: Path | None = None,
                force: bool = False, engine: str = "float",
                inputs: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write ``out/windows.csv`` (ID_test,t_start,t_end,vo2_pred,vo2max_pred; seconds in each
    test's own time base, mL/min: the model's window outputs) and ``out/tests.csv``
    (ID_test,input_set,vo2max_pred,vo2max_low,vo2max_high, mL/min: the test's VO2max as the
    model folder's config says for its input set, the head or its combination with the HR
    extrapolation, and the split-conformal interval; see ``vo2spike.vo2max``).

    VO2 and VCO2 columns are not needed: only the wearable's inputs are, and RR and VE
    only where measured: each test is predicted from the input set it has (speed,hr when
    it has neither RR nor VE, speed,hr,rr with RR alone, else every signal), or from
    ``inputs`` for every test (an input set of INPUT_SETS; a test lacking one of its
    signals is an error). The output, the model and the data are checked before any work
    is done.
    """
    model_dir = Path(model_dir) if model_dir else DEFAULT_MODEL
    data_dir = Path(data_dir)
    forced = None
    if inputs is not None:
        try:
            forced = check_input_set(inputs)
        except ValueError as e:
            raise DataError(f"--inputs: {e}") from None
    paths = [data_dir, model_dir]
    check_writable(Path(out), force, kind="predictions", inputs=paths)
    predictor = load_engine(model_dir, engine)
    record = load_config(engine_folder(model_dir, engine)).vo2max
    _, w = prepare_windows(data_dir, with_labels=False, input_set=forced)
    per_test = pd.Series(input_sets_of(w.x), index=w.id_test).groupby(level=0).first()
    if forced is not None:
        needed = set(INPUT_SETS[forced])
        lacking = {t: sorted(needed - set(INPUT_SETS[h])) for t, h in per_test.items()
                   if not needed <= set(INPUT_SETS[h])}
        if lacking:
            tests = ", ".join(map(str, list(lacking)[:5])) + (" ..." if len(lacking) > 5 else "")
            missing = sorted({s for v in lacking.values() for s in v})
            raise DataError(f"{data_dir}: --inputs {forced} needs {', '.join(missing)}, which "
                            f"{len(lacking)} test(s) do not have: {tests}")
    pred = predictor.predict(w.x)
    windows = pd.DataFrame({
        "ID_test": w.id_test, "t_start": w.t_start, "t_end": w.t_end,
        "vo2_pred": np.round(pred.vo2, 1), "vo2max_pred": np.round(pred.vo2max, 1),
    })[WINDOW_COLUMNS]
    tests = vo2max_per_test(w, pred.vo2, pred.vo2max, per_test, record).round(1)
    tests.insert(1, "input_set", tests["ID_test"].map(per_test))
    with atomic_dir(Path(out), force=force, kind="predictions", inputs=paths) as tmp:
        windows.to_csv(tmp / "windows.csv", index=False)
        tests.to_csv(tmp / "tests.csv", index=False)
    return windows, tests
