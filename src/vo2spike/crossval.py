"""Leave-one-person-out (LOPO) cross-validation on real recordings.

For each real person: fine-tune the simulation-trained spiking model and its ANN twin on
the other people's real windows (mixed with simulated training windows), and fit the
ridge and VE-only baselines on the same real windows; predict the held-out person. The
simulation-only model is applied unchanged (the sim-to-real gap).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from vo2spike.baselines import linear_baseline, ridge_for  # noqa: E402
from vo2spike.config import FineTuneConfig  # noqa: E402
from vo2spike.data.read import DataError  # noqa: E402
from vo2spike.data.windows import (  # noqa: E402
    FULL_INPUT_SET,
    INPUT_SETS,
    Windows,
    with_input_set,
)
from vo2spike.inference import load_model, predict_windows  # noqa: E402
from vo2spike.metrics import (  # noqa: E402
    input_set_results,
    input_set_table,
    interval_table,
    label,
    regression_metrics,
)
from vo2spike.outputs import atomic_dir, write_json  # noqa: E402
from vo2spike.train import fine_tune, sim_train_windows  # noqa: E402
from vo2spike.vo2max import INTERVAL_LEVEL  # noqa: E402

log = logging.getLogger("vo2spike")

#: The models compared, by id (labels in vo2spike.metrics.MODEL_LABELS).
MODELS = ["spiking_real", "twin_real", "spiking_sim", "ridge_real", "ve_linear_real"]


def set_column(model_id: str, input_set: str) -> str:
    """The predictions' column prefix of ``model_id`` given ``input_set`` (the full set:
    ``model_id`` itself)."""
    return model_id if input_set == FULL_INPUT_SET else \
        f"{model_id}_{input_set.replace(',', '_')}"


def leave_one_person_out(run_dir: Path, real: Windows, sim: Windows,
                         cfg: FineTuneConfig | None = None) -> pd.DataFrame:
    """Held-out predictions (mL/min) of every model for every real window: columns
    ``<model id>_vo2`` and ``<model id>_vo2max``."""
    cfg = cfg or FineTuneConfig()
    snn, norm, config = load_model(run_dir, sim_only=True)
    twin, twin_norm, _ = load_model(run_dir, twin=True, sim_only=True)
    sim_train = sim_train_windows(config, sim)
    people = sorted({str(p) for p in real.person})
    if len(people) < 2:
        raise DataError(f"leave-one-person-out needs real recordings of at least 2 people, "
                        f"found {len(people)}")
    person = np.array([str(p) for p in real.person])
    out = pd.DataFrame({"ID_test": real.id_test, "ID": person, "t_start": real.t_start,
                        "vo2": real.vo2, "vo2max": real.vo2max})
    for m in MODELS:
        out[f"{m}_vo2"], out[f"{m}_vo2max"] = np.nan, np.nan

    def put(model_id: str, rows: np.ndarray, vo2: np.ndarray, vo2max: np.ndarray) -> None:
        out.loc[rows, f"{model_id}_vo2"], out.loc[rows, f"{model_id}_vo2max"] = vo2, vo2max

    for held_out in tqdm(people, desc="leave-one-person-out", leave=False):
        test, train = person == held_out, person != held_out
        real_train = real.subset(train)
        for model_id, model, nrm in [("spiking_real", snn, norm), ("twin_real", twin, twin_norm)]:
            torch.manual_seed(config.seed)
            tuned = fine_tune(model, real_train, sim_train, nrm, cfg, config.seed)
            p = predict_windows(tuned, nrm, real.x[test])
            put(model_id, test, p.vo2, p.vo2max)
            if model_id == "spiking_real":
                for name in INPUT_SETS:  # a watch's inputs: the same person, fewer signals
                    if name != FULL_INPUT_SET:
                        p = predict_windows(tuned, nrm, with_input_set(real.x[test], name))
                        put(set_column(model_id, name), test, p.vo2, p.vo2max)
        p = predict_windows(snn, norm, real.x[test])
        put("spiking_sim", test, p.vo2, p.vo2max)
        for model_id, kind in [("ridge_real", "ridge"), ("ve_linear_real", "ve_linear")]:
            put(model_id, test, *linear_baseline(kind, real_train, real.x[test]))
        for name in INPUT_SETS:
            if name != FULL_INPUT_SET:
                put(set_column("ridge_real", name), test,
                    *linear_baseline(ridge_for(name), real_train, real.x[test]))
    return out


def score_lopo(pred: pd.DataFrame, weights: pd.Series, models: list[str] = MODELS) -> dict:
    """Per-window VO2 metrics and per-session VO2max metrics for every model.

    A session's VO2max estimate is the mean of its window estimates (as ``predict``
    writes it); ``peak_window_vo2_mape`` scores the highest predicted window VO2 instead.
    """
    results = {}
    sessions = pred.groupby("ID_test")
    for m in models:
        est = sessions[f"{m}_vo2max"].mean()
        peak = sessions[f"{m}_vo2"].max()
        true = sessions["vo2max"].first()
        w = weights.loc[true.index]
        results[m] = {
            "vo2_ml_min": regression_metrics(pred["vo2"].to_numpy(), pred[f"{m}_vo2"].to_numpy()),
            "vo2max_ml_min": regression_metrics(true.to_numpy(), est.to_numpy()),
            "vo2max_ml_kg_min": regression_metrics((true / w).to_numpy(), (est / w).to_numpy()),
            "peak_window_vo2_mape": float((np.abs(peak - true) / true).mean() * 100),
        }
    return results


def r2_difference_interval(pred: pd.DataFrame, model: str, reference: str, *,
                           resamples: int = 2000, seed: int = 0,
                           level: float = 0.95) -> dict[str, list[float]]:
    """How far the R² difference ``model - reference`` (in R² units) can be trusted: a paired
    bootstrap over people (held-out people drawn with replacement, all their windows and
    sessions kept together), for window VO2 and per-session VO2max (mean of the session's
    window estimates, as :func:`score_lopo`). Returns ``{"vo2": [low, high], "vo2max":
    [low, high]}``, the central ``level`` interval of the resampled differences."""
    rng = np.random.default_rng(seed)
    sessions = pred.groupby("ID_test").agg(
        ID=("ID", "first"), vo2max=("vo2max", "first"),
        a=(f"{model}_vo2max", "mean"), b=(f"{reference}_vo2max", "mean"))
    window_person, session_person = pred["ID"].to_numpy(), sessions["ID"].to_numpy()
    people = np.unique(window_person)
    win_rows = {p: np.flatnonzero(window_person == p) for p in people}
    ses_rows = {p: np.flatnonzero(session_person == p) for p in people}
    y, ya, yb = (pred[c].to_numpy() for c in ("vo2", f"{model}_vo2", f"{reference}_vo2"))
    t, ta, tb = (sessions[c].to_numpy() for c in ("vo2max", "a", "b"))

    def r2(true: np.ndarray, est: np.ndarray) -> float:
        # sklearn's r2_score, less its input checks (20x slower over 8,000 calls)
        return 1.0 - float(((true - est) ** 2).sum() / ((true - true.mean()) ** 2).sum())

    diffs: dict[str, list[float]] = {"vo2": [], "vo2max": []}
    for _ in range(resamples):
        pick = rng.choice(people, len(people))
        w = np.concatenate([win_rows[p] for p in pick])
        s = np.concatenate([ses_rows[p] for p in pick])
        if np.ptp(t[s]) == 0:  # one session's VO2max drawn throughout: R² undefined
            continue
        diffs["vo2"].append(r2(y[w], ya[w]) - r2(y[w], yb[w]))
        diffs["vo2max"].append(r2(t[s], ta[s]) - r2(t[s], tb[s]))
    tail = 100 * (1 - level) / 2
    return {k: [float(v) for v in np.percentile(d, [tail, 100 - tail])]
            for k, d in diffs.items()}


def lopo_table(results: dict) -> str:
    """Markdown table of the LOPO metrics."""
    lines = ["| model | VO2 R² | VO2 RMSE (mL/min) | VO2 MAE (mL/min) | VO2max MAPE | "
             "VO2max RMSE (mL/kg/min) | peak-window VO2 MAPE |", "|---|---|---|---|---|---|---|"]
    for m, r in results.items():
        v, x = r["vo2_ml_min"], r["vo2max_ml_min"]
        lines.append(f"| {label(m)} | {v['r2']:.3f} | {v['rmse']:.0f} | {v['mae']:.0f} | "
                     f"{x['mape']:.1f}% | {r['vo2max_ml_kg_min']['rmse']:.2f} | "
                     f"{r['peak_window_vo2_mape']:.1f}% |")
    return "\n".join(lines)


def per_person_table(pred: pd.DataFrame) -> str:
    """Markdown: windows, bias and RMSE (mL/min) of the spiking model per held-out person."""
    err = pred["spiking_real_vo2"] - pred["vo2"]
    g = pd.DataFrame({"ID": pred["ID"], "err": err, "vo2": pred["vo2"]}).groupby("ID")
    lines = ["| person | windows | mean VO2 (mL/min) | bias (mL/min) | RMSE (mL/min) |",
             "|---|---|---|---|---|"]
    for pid, d in g:
        lines.append(f"| {pid} | {len(d)} | {d['vo2'].mean():.0f} | {d['err'].mean():+.0f} | "
                     f"{np.sqrt((d['err'] ** 2).mean()):.0f} |")
    return "\n".join(lines)


def cleaning_table(counts: dict[str, int], n_rows: int) -> str:
    """Markdown: what each cleaning rule removed, as a count and a share of breath rows."""
    lines = ["| rule | values | % of breath rows |", "|---|---|---|"]
    for key, n in counts.items():
        per_row = not key.startswith(("windows_", "tests_"))  # those count windows or tests
        share = f"{100 * n / n_rows:.2f}%" if per_row else "–"
        lines.append(f"| {key.replace('_', ' ')} | {n} | {share} |")
    return "\n".join(lines)


def lopo_input_sets(pred: pd.DataFrame, real: Windows) -> dict:
    """:func:`vo2spike.metrics.input_set_results` of the held-out predictions (rows in the
    order of ``real``'s windows): the fine-tuned spiking model and the ridge per input set,
    the VO2max combination chosen person-nested."""
    def cols(model_id: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        c = set_column(model_id, name)
        return pred[f"{c}_vo2"].to_numpy(), pred[f"{c}_vo2max"].to_numpy()

    preds = {name: {"spiking": cols("spiking_real", name), "ridge": cols("ridge_real", name)}
             for name in INPUT_SETS}
    return input_set_results(real, preds, choose=True)


def crossval_run(run_dir: Path, real: Windows, real_kind: str, sim: Windows, out: Path,
                 force: bool = False, cfg: FineTuneConfig | None = None,
                 cleaning: dict | None = None, pred: pd.DataFrame | None = None) -> dict:
    """Run LOPO and write ``out/`` (metrics.json, predictions.csv, report.md, plot).

    ``cleaning`` ({"rows": n, "counts": {rule: n}}) is the real data's cleaning report;
    ``pred``: the predictions of :func:`leave_one_person_out` when already computed."""
    if pred is None:
        pred = leave_one_person_out(run_dir, real, sim, cfg)
    weights = real.tests.set_index("ID_test")["Weight"]
    results = {"data_kind": real_kind, "cleaning": cleaning, "n_people": int(pred["ID"].nunique()),
               "n_sessions": int(pred["ID_test"].nunique()), "n_windows": int(len(pred)),
               "fine_tune": asdict(cfg or FineTuneConfig()),
               "models": score_lopo(pred, weights),
               "input_sets": lopo_input_sets(pred, real)}
    with atomic_dir(Path(out), force=force, kind="crossval") as tmp:
        pred.to_csv(tmp / "predictions.csv", index=False, float_format="%.1f")
        write_json(tmp / "metrics.json", results)
        fig, ax = plt.subplots(figsize=(5.5, 5))
        for pid, d in pred.groupby("ID"):
            ax.scatter(d["vo2"], d["spiking_real_vo2"], s=10, label=pid)
        hi = float(max(pred["vo2"].max(), pred["spiking_real_vo2"].max()))
        ax.plot([0, hi], [0, hi], "k--", lw=1)
        ax.set_xlabel("measured window VO2 (mL/min)")
        ax.set_ylabel("predicted window VO2, held-out person (mL/min)")
        ax.set_title(f"REAL recordings, leave-one-person-out\n{label('spiking_real')}", fontsize=10)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(tmp / "lopo_pred_vs_measured.png", dpi=90)
        plt.close(fig)
        (tmp / "report.md").write_text(render_lopo(results, pred))
    return results


def render_lopo(results: dict, pred: pd.DataFrame) -> str:
    """The markdown section on real recordings."""
    clean = results.get("cleaning")
    cleaning = "" if not clean else (
        f"\nCleaning of the real recordings ({clean['rows']} breath rows; the same rules for "
        f"inputs and labels):\n\n{cleaning_table(clean['counts'], clean['rows'])}\n")
    return f"""## Real recordings: leave-one-person-out

Data: **{results['data_kind']}** — {results['n_people']} people, {results['n_sessions']}
sessions, {results['n_windows']} windows (60 s, 30 s stride). Each person is held out in
turn; the models are fine-tuned (or the baselines fitted) on the others' real windows only.

{lopo_table(results['models'])}

Per input set (a watch has speed and heart rate, some a breathing-rate estimate; VE needs
a mask): the same held-out people, the fine-tuned model given only that set's signals,
the ridge refitted on them, and the classic non-learned estimators (ACSM running equation
extrapolated to HRmax by HR; Uth-Sorensen 15.3 x HRmax / HRrest; see `vo2spike.vo2max`).
"HR extrapolation": the model's own window VO2 against HR, extrapolated to HRmax.

{input_set_table(results['input_sets'])}

VO2max as a watch reports it, with a {100 * INTERVAL_LEVEL:.0f}% split-conformal interval:
the combination of head and HR extrapolation is chosen only where it beats the head, and
scored person-nested (each person's estimate chosen on the other people); each person's
interval half-width is calibrated on the other people's held-out residuals.

{interval_table(results['input_sets'])}

VO2max: per session, highest 30 s mean of the measured 1 Hz VO2. The model's estimate is
the mean of its window estimates (what `predict` writes); the last column scores the
highest predicted window VO2 instead (meaningful for maximal tests such as the Yo-Yo).

{cleaning}
Per held-out person, {label('spiking_real')}:

{per_person_table(pred)}

![LOPO predicted vs measured](lopo_pred_vs_measured.png)
"""
