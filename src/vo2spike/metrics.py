"""Metrics shared by evaluation and cross-validation, and the models' display labels.

Results are keyed by short model ids; :data:`MODEL_LABELS` says what each one is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from vo2spike import vo2max as vm
from vo2spike.data.windows import Windows

#: Model id -> label shown in tables and reports.
MODEL_LABELS = {
    "spiking": "spiking TCN+LIF",
    "twin": "ANN twin (same TCN, no spikes)",
    "ridge": "ridge on window means",
    "spiking_real": "spiking TCN+LIF (sim + real)",
    "twin_real": "ANN twin (sim + real)",
    "spiking_sim": "spiking, simulation only",
    "ridge_real": "ridge on window means (real)",
    "ve_linear_real": "VE-only linear (real)",
    "pruned": "spiking, pruned (float)",
    "pruned_int8": "spiking, pruned + int8 (NumPy integer engine)",
    "pruned_c": "spiking, pruned + int8 (C engine)",
    "twin_pruned_int8": "ANN twin, pruned + int8",
    "pruned_real": "spiking, pruned (float; sim + real)",
    "pruned_int8_real": "spiking, pruned + int8 (sim + real)",
    "twin_pruned_int8_real": "ANN twin, pruned + int8 (sim + real)",
    "spiking_extrapolated": "spiking, VO2 extrapolated to HRmax by HR",
    "acsm": "ACSM running equation (VO2max: HR extrapolation)",
    "uth_sorensen": "Uth-Sorensen 15.3 x HRmax/HRrest",
}


def label(model_id: str) -> str:
    """The display label of a model id (the id itself if it has none)."""
    return MODEL_LABELS.get(model_id, model_id)


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R², RMSE, MAE (in the units of y) and MAPE (%)."""
    y, pred = np.asarray(y), np.asarray(pred)
    return {
        "r2": float(r2_score(y, pred)),
        "rmse": float(np.sqrt(mean_squared_error(y, pred))),
        "mae": float(mean_absolute_error(y, pred)),
        "mape": float(np.mean(np.abs(pred - y) / np.abs(y)) * 100.0),
    }


def per_test_vo2max(id_test: np.ndarray, window_vo2max: np.ndarray) -> pd.DataFrame:
    """The per-test VO2max estimate (mL/min): the mean of the test's window estimates."""
    df = pd.DataFrame({"ID_test": id_test, "vo2max_pred": window_vo2max})
    return df.groupby("ID_test", as_index=False, sort=True)["vo2max_pred"].mean()


def score(w: Windows, vo2_pred: np.ndarray, window_vo2max: np.ndarray) -> tuple[dict,
                                                                                pd.DataFrame]:
    """Window VO2 metrics (mL/min) and per-test VO2max metrics (mL/min and mL/kg/min);
    also the per-test table (ID_test, ID, Weight, vo2max, vo2max_pred)."""
    tests = w.tests.merge(per_test_vo2max(w.id_test, window_vo2max), on="ID_test")
    rel_true = tests["vo2max"] / tests["Weight"]
    rel_pred = tests["vo2max_pred"] / tests["Weight"]
    return {
        "vo2_ml_min": regression_metrics(w.vo2, vo2_pred),
        "vo2max_ml_min": regression_metrics(tests["vo2max"].to_numpy(),
                                            tests["vo2max_pred"].to_numpy()),
        "vo2max_ml_kg_min": regression_metrics(rel_true.to_numpy(), rel_pred.to_numpy()),
        "n_windows": int(len(w)),
        "n_tests": int(len(tests)),
    }, tests


def input_set_results(w: Windows, preds: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
                      *, choose: bool, combination: dict[str, str] | None = None) -> dict:
    """Per input set, every estimator's VO2 (per window) and VO2max (per test) metrics, the
    VO2max combination and the conformal interval's coverage.

    ``preds[input_set][model_id]`` = (window VO2, window VO2max), mL/min, held out from
    the model (``spiking`` must be among them). Added per set: the HR extrapolation of the
    spiking model's window VO2 (``spiking_extrapolated``); for ``speed,hr``, the classic
    non-learned estimators (``acsm``, ``uth_sorensen``: they use nothing else). With
    ``choose``, the combination of head and extrapolation is chosen person-nested
    (:func:`vo2spike.vo2max.choose_combination`) and kept only if that nested choice beats
    the head's MAPE (else the head); else ``combination[input_set]`` (default:
    the head) is used. Intervals: split-conformal, each person's half-width calibrated on
    the other people's residuals (:func:`vo2spike.vo2max.nested_coverage`)."""
    tests = w.tests.set_index("ID_test").sort_index()
    true, people = tests["vo2max"], tests["ID"].astype(str)

    def row(vo2: np.ndarray | None, est: pd.Series) -> dict:
        est = est.reindex(true.index)
        return {"vo2_ml_min": None if vo2 is None else regression_metrics(w.vo2, vo2),
                "vo2max_ml_min": regression_metrics(true.to_numpy(), est.to_numpy()),
                "vo2max_mape": vm.mape(true, est)}

    out: dict = {}
    for name, models in preds.items():
        rows = {}
        for model_id, (vo2, window_vo2max) in models.items():
            head = per_test_vo2max(w.id_test, window_vo2max).set_index("ID_test")["vo2max_pred"]
            rows[model_id] = row(vo2, head)
            if model_id == "spiking":
                spiking_head, spiking_vo2 = head, vo2
        ext = vm.extrapolate_vo2max(w, spiking_vo2)
        rows["spiking_extrapolated"] = row(None, ext)
        estimates = {c: vm.combine(c, spiking_head, ext) for c in vm.COMBINATIONS}
        if choose:
            best, scores, nested_mape, nested = vm.choose_combination(true, estimates, people)
            if nested_mape >= scores["head"]:  # choosing does not beat the head honestly
                best, nested_mape, nested = "head", scores["head"], estimates["head"]
        else:
            best = (combination or {}).get(name, "head")
            scores = {c: vm.mape(true, e) for c, e in estimates.items()}
            nested_mape, nested = scores[best], estimates[best]
        chosen = estimates[best]
        if name == "speed,hr":
            acsm = vm.acsm_window_vo2(w)
            rows["acsm"] = row(acsm, vm.extrapolate_vo2max(w, acsm))
            rows["uth_sorensen"] = row(None, vm.uth_sorensen_vo2max(w))
        out[name] = {
            "models": rows,
            "vo2max": {"combination": best, "mape_by_combination": scores,
                       "chosen_mape_nested": nested_mape,
                       "interval_half_width": vm.conformal_half_width(true, chosen),
                       "coverage": vm.nested_coverage(true, nested, people)},
        }
    return out


def input_set_table(results: dict) -> str:
    """Markdown: per input set and estimator, VO2 R² and RMSE, VO2max R² and MAPE."""
    lines = ["| inputs | estimator | VO2 R² | VO2 RMSE (mL/min) | VO2max R² | VO2max MAPE |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        for model_id, m in r["models"].items():
            v, x = m["vo2_ml_min"], m["vo2max_ml_min"]
            vo2 = f"{v['r2']:.3f} | {v['rmse']:.0f}" if v else "– | –"
            lines.append(f"| {name} | {label(model_id)} | {vo2} | {x['r2']:.3f} | "
                         f"{m['vo2max_mape']:.1f}% |")
    return "\n".join(lines)


def interval_table(results: dict) -> str:
    """Markdown: per input set, the VO2max combination and its interval's coverage."""
    lines = ["| inputs | VO2max from | MAPE (person-nested) | interval (± % of estimate) | "
             "coverage (tests) |", "|---|---|---|---|---|"]
    for name, r in results.items():
        v, c = r["vo2max"], r["vo2max"]["coverage"]
        lines.append(f"| {name} | {v['combination']} | {v['chosen_mape_nested']:.1f}% | "
                     f"±{100 * c['half_width']:.1f}% | {100 * c['coverage']:.0f}% of "
                     f"{c['tests']} (target {100 * c['level']:.0f}%) |")
    return "\n".join(lines)
