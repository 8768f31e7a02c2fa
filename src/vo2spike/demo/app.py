"""The demo's JSON API, independent of HTTP: the model, the workouts, their traces.

Every number the page draws after stage 1 is computed here by the project's model:
predictions by :func:`vo2spike.inference.predict_windows` (the CLI's path), internals
(activations, spikes, membrane potentials) by :func:`vo2spike.demo.trace.trace_model`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from vo2spike.compress.int_engine import Int8Engine
from vo2spike.config import RunDirError, load_config
from vo2spike.data.windows import CHANNELS, STRIDE_S, WINDOW_S
from vo2spike.demo import compression
from vo2spike.demo.trace import ModelTrace, pick_neurons, receptive_field, trace_model
from vo2spike.demo.upload import predict_upload
from vo2spike.demo.workouts import (
    REAL_SESSION,
    SIMULATED,
    ParamError,
    Person,
    RealRecordings,
    Workout,
    WorkoutSpec,
    parse_person,
    prepare,
    real_spec,
    simulate_workout,
    with_person,
)
from vo2spike.inference import load_model, predict_windows
from vo2spike.metrics import MODEL_LABELS, per_test_vo2max, regression_metrics
from vo2spike.model.net import count_parameters
from vo2spike.predictions import WindowPredictions

log = logging.getLogger("vo2spike")

UNITS = {"Speed": "km/h", "HR": "bpm", "RR": "breaths/min", "VE": "L/min", "Age": "years",
         "Weight": "kg", "Height": "cm", "Sex": "0 male / 1 female", "VO2": "mL/min",
         "RR_present": "1 measured / 0 absent", "VE_present": "1 measured / 0 absent"}
#: How the person controls act, shown on the page.
PERSON_NOTE = {
    "simulated": "Simulated workouts are simulated again for a person of this age, weight, "
                 "height and sex (same protocol and seed), then the model runs on the new "
                 "signals: the measured VO2 is the new simulated person's.",
    "real": "The real recording's signals stay as recorded; only the model's age, weight, "
            "height and sex inputs change. The measured VO2 is still the real participant's.",
}


class ModelUnavailable(RuntimeError):
    """The model folder is missing, unfinished or damaged (message from RunDirError)."""


def _r(a: np.ndarray, nd: int) -> list:
    """A float array as a JSON list rounded to ``nd`` decimals; NaN/inf become null."""
    a = np.asarray(a, dtype=float)
    out = np.round(a, nd).tolist()
    if np.isfinite(a).all():
        return out
    return _nan_to_none(out)


def _nan_to_none(x):
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x if isinstance(x, int) or np.isfinite(x) else None


def _num(v: float, nd: int = 1) -> float | None:
    v = float(v)
    return round(v, nd) if np.isfinite(v) else None


def _read_json(path: Path) -> dict | None:
    """A metrics file, or None when absent or unreadable (logged)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        log.warning("%s: cannot be read (%s)", path, e)
        return None


class Computed:
    """One workout for one person: its data, predictions and model trace."""

    def __init__(self, workout: Workout, person: Person, x: np.ndarray,
                 pred: WindowPredictions, trace: ModelTrace) -> None:
        self.workout, self.person, self.x = workout, person, x
        self.pred, self.trace = pred, trace
        self.neurons1 = pick_neurons(trace.spikes1.mean(axis=(0, 1)))
        self.neurons2 = pick_neurons(trace.spikes2.mean(axis=(0, 1)))


class DemoApp:
    """The model (loaded once), the workouts and a small cache of computed traces."""

    def __init__(self, model_dir: Path, yoyo_root: Path | None = None,
                 cache_size: int = 12) -> None:
        self.model_dir = Path(model_dir)
        self.model_error: str | None = None
        self.model = self.norm = self.config = None
        try:
            self.model, self.norm, self.config = load_model(self.model_dir)
            if not self.config.model.spiking:
                raise RunDirError(f"{self.model_dir}: not a spiking model")
        except RunDirError as e:
            self.model_error = str(e)  # shown by the pages and by `vo2spike demo`
            log.debug("model not loaded: %s", e)
        self.compressed = None
        self.compressed_error: str | None = None
        comp_dir = self.model_dir / compression.COMPRESSED_DIR
        if self.model is not None and comp_dir.is_dir():
            try:
                self.compressed = Int8Engine(  # the engine that ships: pruned + int8
                    comp_dir, expected=load_config(comp_dir).weights)
            except RunDirError as e:
                self.compressed_error = str(e)
                log.error("compressed model not loaded: %s", e)
        self.real = RealRecordings(yoyo_root) if yoyo_root else None
        self._cache: OrderedDict[tuple, Computed] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()  # one computation at a time (small machines)
        self._real_lock = threading.Lock()
        self._real: tuple[Person, object] | None = None

    # -- workouts -------------------------------------------------------------------------
    def specs(self) -> list[WorkoutSpec]:
        """Every workout offered (the real one only when its recordings are present)."""
        specs = list(SIMULATED)
        if self.real is not None and self.real.available():
            specs.append(real_spec(self.real_session()[0]))
        return specs

    def real_session(self) -> tuple[Person, object]:
        """The real session's person and one-test dataset (converted once, a few s)."""
        with self._real_lock:
            if self._real is None:
                self._real = self.real.session(REAL_SESSION)
            return self._real

    def spec(self, workout_id: str | None) -> WorkoutSpec:
        """The workout named ``workout_id``; ParamError lists the choices."""
        specs = {s.id: s for s in self.specs()}
        if workout_id not in specs:
            raise ParamError(f"workout: {workout_id!r} is not one of {', '.join(specs)}")
        return specs[workout_id]

    def require_model(self) -> None:
        """Raise ModelUnavailable when the model could not be loaded."""
        if self.model is None:
            raise ModelUnavailable(self.model_error or "no model")

    def computed(self, workout_id: str | None, query: dict[str, str]) -> Computed:
        """The workout for the person in ``query`` (defaults: the workout's own person)."""
        self.require_model()
        spec = self.spec(workout_id)
        with self._lock:
            if spec.kind == "real":
                real_person, dataset = self.real_session()
            person = parse_person(query, spec.person)
            key = (spec.id, person)
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            if spec.kind == "real":
                workout = prepare(spec, real_person, dataset,
                                  "REAL: Oxford NIL Yo-Yo data set, COSMED K5 "
                                  f"recording {spec.id_test}")
                x = with_person(workout.windows, person)
            else:
                workout = simulate_workout(spec, person)
                x = workout.windows.x
            pred = predict_windows(self.model, self.norm, x)
            c = Computed(workout, person, x, pred, trace_model(self.model, self.norm, x))
            self._cache[key] = c
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return c

    # -- JSON -----------------------------------------------------------------------------
    def workouts_json(self) -> dict:
        """The workouts the page offers, with their default person."""
        return {"workouts": [{"id": s.id, "label": s.label, "kind": s.kind,
                              "description": s.description, "person": s.person.as_dict(),
                              "person_note": PERSON_NOTE[s.kind]} for s in self.specs()],
                "model_error": self.model_error}

    def trace_json(self, workout_id: str | None, query: dict[str, str]) -> dict:
        """A workout's signals, windows, predictions and summary (no per-window internals:
        see :meth:`window_json`)."""
        c = self.computed(workout_id, query)
        w, sig, pred = c.workout.windows, c.workout.signals, c.pred
        person: Person = c.person
        t0 = float(sig["t"].iloc[0])
        valid = sig["valid"].to_numpy()

        def series(col: str, nd: int) -> list:
            v = sig[col].to_numpy(dtype=float).copy()
            v[~valid] = np.nan  # gaps are not drawn
            return _r(v, nd)

        est = float(per_test_vo2max(w.id_test, pred.vo2max)["vo2max_pred"].iloc[0])
        measured_max = float(w.tests["vo2max"].iloc[0])
        metrics = regression_metrics(w.vo2, pred.vo2) if len(w) >= 2 else None
        spec = c.workout.spec
        cfg = self.config.model
        out = {
            "workout": {"id": spec.id, "label": spec.label, "kind": spec.kind,
                        "description": spec.description, "source": c.workout.source,
                        "person_note": PERSON_NOTE[spec.kind]},
            "person": person.as_dict(),
            "signal_person": c.workout.person.as_dict(),
            "signals": {"t": _r(sig["t"].to_numpy() - t0, 0), "t0": t0,
                        "speed": series("Speed", 2), "hr": series("HR", 1),
                        "rr": series("RR", 1), "ve": series("VE", 1), "vo2": series("VO2", 0)},
            "windows": {
                "t_start": _r(w.t_start - t0, 0), "t_end": _r(w.t_end - t0, 0),
                "vo2_measured": _r(w.vo2, 1), "vo2_pred": _r(pred.vo2, 1),
                "vo2max_pred": _r(pred.vo2max, 1),
                "rate_lif1": _r(c.trace.spikes1.mean(axis=(1, 2)), 4),
                "rate_lif2": _r(c.trace.spikes2.mean(axis=(1, 2)), 4),
                "rates_lif2": _r(c.trace.rates2, 3),  # (N, hidden): what the heads read
            },
            "summary": {
                "n_windows": int(len(w)),
                "vo2max_pred_ml_min": _num(est), "vo2max_pred_ml_kg_min": _num(
                    est / person.weight, 2),
                "vo2max_measured_ml_min": _num(measured_max),
                "vo2max_measured_ml_kg_min": _num(measured_max / c.workout.person.weight, 2),
                "r2": _num(metrics["r2"], 4) if metrics else None,
                "rmse": _num(metrics["rmse"], 1) if metrics else None,
                "spike_rates": {k: round(float(v), 4) for k, v in pred.spike_rates.items()},
                "cleaning": dict(c.workout.dataset.report.counts),
            },
            "model": {"dilations": list(cfg.dilations), "kernel_size": cfg.kernel_size,
                      "channels": cfg.channels, "hidden": cfg.hidden, "beta": cfg.beta,
                      "threshold": cfg.threshold, "gamma": cfg.gamma,
                      "receptive_field": receptive_field(cfg.kernel_size, cfg.dilations),
                      "window_s": WINDOW_S, "stride_s": STRIDE_S},
            "compression": self._compression_accuracy_for(c),
        }
        return out

    def _compression_accuracy_for(self, c: Computed) -> dict:
        """Accuracy on this workout before (float model) and after compression (the pruned
        int8 engine, when it exists), plus the run's figures from compression.json."""
        w = c.workout.windows
        before = regression_metrics(w.vo2, c.pred.vo2) if len(w) >= 2 else None
        after = None
        if self.compressed is not None and len(w) >= 2:
            after = regression_metrics(w.vo2, self.compressed.predict(c.x).vo2)
        try:
            run_figures = compression.compression_accuracy(self.model_dir)
            figures_error = None
        except RunDirError as e:
            run_figures, figures_error = None, str(e)

        def pick(m: dict | None) -> dict | None:
            return {"r2": _num(m["r2"], 4), "rmse": _num(m["rmse"], 1)} if m else None

        return {"compressed_model": self.compressed is not None,
                "compressed_error": self.compressed_error or figures_error,
                "before": pick(before), "after": pick(after), "run_figures": run_figures}

    def window_json(self, workout_id: str | None, query: dict[str, str]) -> dict:
        """One window's internals: inputs, TCN activations, spikes, membrane potentials,
        LIF2 spike rates and the heads' outputs (mL/min)."""
        c = self.computed(workout_id, query)
        n = len(c.workout.windows)
        text = query.get("index", "")
        try:
            i = int(text)
        except ValueError:
            raise ParamError(f"index: {text!r} is not a whole number") from None
        if not 0 <= i < n:
            raise ParamError(f"index: {i} is out of range: this workout has {n} windows "
                             f"(0..{n - 1})")
        t = c.trace
        spikes = {name: [np.flatnonzero(s[:, j]).tolist() for j in range(s.shape[1])]
                  for name, s in (("lif1", t.spikes1[i]), ("lif2", t.spikes2[i]))}
        return {
            "index": i,
            "t_start": float(c.workout.windows.t_start[i] - c.workout.signals["t"].iloc[0]),
            "inputs": {"channels": CHANNELS, "units": [UNITS[ch] for ch in CHANNELS],
                       "raw": _r(c.x[i], 2), "standardised": _r(t.x_std[i], 3)},
            "tcn": _r(t.tcn[i], 3),
            "spikes": spikes,
            "membrane": {
                name: {"neurons": ids, "potential": _r(u[i][:, ids].T, 3)}
                for name, ids, u in (("lif1", c.neurons1, t.potential1),
                                     ("lif2", c.neurons2, t.potential2))},
            "rates_lif2": _r(t.rates2[i], 4),
            "rate_lif1": round(float(t.spikes1[i].mean()), 4),
            "rate_lif2": round(float(t.spikes2[i].mean()), 4),
            "head": {"vo2_ml_min": _num(c.pred.vo2[i]), "vo2max_ml_min": _num(c.pred.vo2max[i])},
        }

    def compression_json(self) -> dict:
        """Stage 6's weight grid (see :func:`compression.compression_view`)."""
        self.require_model()
        return compression.compression_view(self.model_dir, self.model)

    def model_json(self) -> dict:
        """Facts and metrics of the run for the "How it works" and "Data & methods" pages
        (metrics are read even when the model itself cannot be loaded)."""
        from vo2spike.evaluate import REAL_CV_DIR  # imports matplotlib: only when asked

        d = self.model_dir
        out: dict = {"model_dir": str(d), "model_error": self.model_error,
                     "labels": MODEL_LABELS}
        training = _read_json(d / "metrics.json")
        if training:
            training = {k: v for k, v in training.items() if k not in ("spiking", "twin")} | {
                k: {kk: vv for kk, vv in training[k].items() if kk != "history"}
                for k in ("spiking", "twin") if isinstance(training.get(k), dict)}
        out["metrics"] = {"training": training,
                          "evaluation": _read_json(d / "evaluation" / "metrics.json"),
                          "real_cv": _read_json(d / REAL_CV_DIR / "metrics.json")}
        try:
            cfg = self.config or load_config(d)
        except RunDirError as e:
            cfg = None
            out["config_error"] = str(e)
        if cfg is not None:
            m = cfg.model
            out["config"] = {
                "channels": cfg.channels, "units": [UNITS.get(ch, "") for ch in cfg.channels],
                "window_s": cfg.window_s, "stride_s": cfg.stride_s, "model": m.to_dict(),
                "receptive_field": receptive_field(m.kernel_size, m.dilations),
                "data_kind": cfg.data.get("kind"), "seed": cfg.seed,
                "split_people": {k: len(v) for k, v in cfg.split.items()},
                "fine_tune": None if cfg.fine_tune is None else {
                    "data_kind": cfg.fine_tune.data.get("kind"),
                    "n_windows": cfg.fine_tune.n_windows,
                    "people": len(cfg.fine_tune.people),
                    "epochs": cfg.fine_tune.config.epochs},
            }
        if self.model is not None:
            out["parameters"] = count_parameters(self.model)
        try:
            out["compression"] = compression.compression_accuracy(d)
        except RunDirError as e:
            out["compression"] = None
            out["compression_error"] = str(e)
        out["compressed_model"] = (d / compression.COMPRESSED_DIR).is_dir()
        return out

    def upload_json(self, content_type: str, body: bytes) -> dict:
        """Predict an uploaded recording (see :mod:`vo2spike.demo.upload`)."""
        self.require_model()
        with self._lock:
            return predict_upload(content_type, body, self.model, self.norm,
                                  self.config.vo2max if self.config else None)

    def close(self) -> None:
        """Remove temporary copies."""
        if self.real is not None:
            self.real.close()
