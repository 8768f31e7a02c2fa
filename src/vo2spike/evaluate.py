"""Evaluation on the person-disjoint test split: the spiking model, its ANN twin and a
ridge-regression baseline, with a markdown report and plots."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from vo2spike.baselines import baseline_parameters, linear_baseline, ridge_for  # noqa: E402
from vo2spike.data.read import Dataset  # noqa: E402
from vo2spike.data.split import split_by_person, split_masks  # noqa: E402
from vo2spike.data.windows import (  # noqa: E402
    FULL_INPUT_SET,
    INPUT_SETS,
    Windows,
    prepare_windows,
    with_input_set,
)
from vo2spike.inference import load_model, predict_windows  # noqa: E402
from vo2spike.metrics import (  # noqa: E402
    input_set_results,
    input_set_table,
    interval_table,
    label,
    score,
)
from vo2spike.model.net import count_parameters  # noqa: E402
from vo2spike.outputs import atomic_dir, write_json  # noqa: E402
from vo2spike.vo2max import INTERVAL_LEVEL  # noqa: E402

log = logging.getLogger("vo2spike")

#: Where ``vo2spike run`` / ``crossval`` put the leave-one-person-out results in a run.
REAL_CV_DIR = "real_cv"


def _plots(out: Path, w: Windows, tests: pd.DataFrame, vo2_pred: np.ndarray, title: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, (y, p, name) in zip(axes, [(w.vo2, vo2_pred, "window VO2"),
                                       (tests["vo2max"], tests["vo2max_pred"], "test VO2max")],
                                strict=True):
        ax.scatter(y, p, s=4 if name.startswith("window") else 12, alpha=0.4)
        lo, hi = float(min(np.min(y), np.min(p))), float(max(np.max(y), np.max(p)))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel(f"measured {name} (mL/min)")
        ax.set_ylabel(f"predicted {name} (mL/min)")
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / "pred_vs_measured.png", dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, (y, p, name) in zip(axes, [(w.vo2, vo2_pred, "window VO2"),
                                       (tests["vo2max"], tests["vo2max_pred"], "test VO2max")],
                                strict=True):
        y, p = np.asarray(y, float), np.asarray(p, float)
        mean, diff = (y + p) / 2, p - y
        bias, sd = diff.mean(), diff.std(ddof=1)
        ax.scatter(mean, diff, s=4 if name.startswith("window") else 12, alpha=0.4)
        for v, style in [(bias, "-"), (bias + 1.96 * sd, "--"), (bias - 1.96 * sd, "--")]:
            ax.axhline(v, color="k", ls=style, lw=1)
        ax.set_xlabel(f"mean of measured and predicted {name} (mL/min)")
        ax.set_ylabel("predicted - measured (mL/min)")
        ax.set_title(f"Bland-Altman {name}: bias {bias:.0f}, LoA ±{1.96 * sd:.0f}")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / "bland_altman.png", dpi=90)
    plt.close(fig)


def _fmt_row(model_id: str, m: dict) -> str:
    a, b, c = m["vo2_ml_min"], m["vo2max_ml_min"], m["vo2max_ml_kg_min"]
    return (f"| {label(model_id)} | {a['r2']:.3f} | {a['rmse']:.0f} | {a['mae']:.0f} | "
            f"{b['r2']:.3f} | {b['rmse']:.0f} | {c['rmse']:.2f} | {c['mape']:.1f}% |")


def results_table(results: dict) -> str:
    """Markdown table of every model's metrics."""
    lines = [
        "| model | VO2 R² | VO2 RMSE (mL/min) | VO2 MAE (mL/min) | VO2max R² | "
        "VO2max RMSE (mL/min) | VO2max RMSE (mL/kg/min) | VO2max MAPE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [_fmt_row(model_id, m) for model_id, m in results["models"].items()]
    return "\n".join(lines)


def evaluate_run(run_dir: Path, data_dir: Path, out: Path | None = None,
                 force: bool = False, prepared: tuple[Dataset, Windows] | None = None,
                 model_label: str | None = None) -> dict:
    """Evaluate a run on the test split of ``data_dir``; write report.md, metrics.json and
    plots to ``out`` (default RUN_DIR/evaluation). Returns the metrics, keyed by model id
    (``spiking``, ``twin``, ``ridge``; see :data:`vo2spike.metrics.MODEL_LABELS`).

    ``model_label`` names the model in the report (default: ``run_dir``)."""
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    out = Path(out) if out else run_dir / "evaluation"
    model, norm, config = load_model(run_dir)
    twin, twin_norm, _ = load_model(run_dir, twin=True)
    dataset, windows = prepared or prepare_windows(data_dir)
    if config.data["sha256"] == dataset.source["sha256"]:
        split, split_note = config.split, "the model's own person-disjoint test split"
    else:
        split = split_by_person(windows.person, config.seed, where=data_dir)
        split_note = ("a fresh person-disjoint split of this data (not the data the model was "
                      "trained on; the model saw none of it, the ridge baseline its train part)")
        log.warning("%s is not the data %s was trained on: using %s", data_dir, run_dir,
                    split_note)
    masks = split_masks(windows.person, split)
    train_w, test_w = windows.subset(masks["train"]), windows.subset(masks["test"])
    if len(test_w) == 0:
        raise ValueError(f"{data_dir}: the test split has no windows")

    results: dict = {"data_kind": dataset.source["kind"], "data_path": str(data_dir),
                     "split": split_note, "models": {}}
    pred = predict_windows(model, norm, test_w.x)
    results["models"]["spiking"], tests = score(test_w, pred.vo2, pred.vo2max)
    results["spike_rates"] = pred.spike_rates
    params = {"spiking": count_parameters(model)}
    tp = predict_windows(twin, twin_norm, test_w.x)
    results["models"]["twin"], _ = score(test_w, tp.vo2, tp.vo2max)
    params["twin"] = count_parameters(twin)
    if len(train_w):
        rv, rmax = linear_baseline("ridge", train_w, test_w.x)
        results["models"]["ridge"], _ = score(test_w, rv, rmax)
        params["ridge"] = baseline_parameters("ridge")
    results["parameters"] = params
    preds = {}
    for name in INPUT_SETS:
        p = pred if name == FULL_INPUT_SET else \
            predict_windows(model, norm, with_input_set(test_w.x, name))
        preds[name] = {"spiking": (p.vo2, p.vo2max)}
        if len(train_w):
            preds[name]["ridge"] = linear_baseline(ridge_for(name), train_w, test_w.x)
    chosen = {k: v["combination"] for k, v in (config.vo2max or {}).get("input_sets", {}).items()}
    results["input_sets"] = input_set_results(test_w, preds, choose=False, combination=chosen)
    results["spiking_minus_twin_vo2_r2"] = (results["models"]["spiking"]["vo2_ml_min"]["r2"]
                                            - results["models"]["twin"]["vo2_ml_min"]["r2"])

    real_cv = run_dir / REAL_CV_DIR
    real_section = ""
    if (real_cv / "metrics.json").is_file():
        results["real_recordings"] = json.loads((real_cv / "metrics.json").read_text())
        real_section = (real_cv / "report.md").read_text().replace(
            "](lopo_", f"]({os.path.relpath(real_cv, out)}/lopo_")

    with atomic_dir(out, force=force, kind="evaluation", inputs=[data_dir, run_dir]) as tmp:
        title = f"test split, data: {dataset.source['kind']}"
        _plots(tmp, test_w, tests, pred.vo2, title)
        write_json(tmp / "metrics.json", results)
        (tmp / "report.md").write_text(render_report(results, model_label or str(run_dir))
                                       + "\n" + real_section)
    return results


def render_report(results: dict, model_label: str) -> str:
    """The markdown evaluation report (``model_label``: the run directory it describes)."""
    m = results["models"]["spiking"]
    rates = ", ".join(f"{k}: {v:.3f}" for k, v in results["spike_rates"].items())
    params = ", ".join(f"{label(k)}: {v:,}" for k, v in results["parameters"].items())
    return f"""# vo2spike evaluation

## Simulated test split

- model: `{model_label}`
- data: **{results['data_kind']}** (`{results['data_path']}`)
- split: {results['split']}; {m['n_windows']} windows (60 s, 30 s stride) of {m['n_tests']} tests

{results_table(results)}

VO2: per window, mean of the 1 Hz VO2 over 60 s. VO2max: per test, highest 30 s mean of the
1 Hz VO2; the model's estimate is the mean of its window estimates for that test.

Per input set (the model given only a watch's signals; the ridge refitted on them; the
classic non-learned estimators, which need only speed and heart rate):

{input_set_table(results['input_sets'])}

VO2max with its {100 * INTERVAL_LEVEL:.0f}% split-conformal interval (the combination of head
and HR extrapolation chosen on the REAL held-out people, else the head; each test person's
half-width calibrated on the other test people's residuals):

{interval_table(results['input_sets'])}

- spike rate per layer (fraction of neuron-steps that fire): {rates}
- parameters: {params}

![predicted vs measured](pred_vs_measured.png)

![Bland-Altman](bland_altman.png)
"""


def load_metrics(eval_dir: Path) -> dict:
    """Read an evaluation's metrics.json."""
    return json.loads((Path(eval_dir) / "metrics.json").read_text())
