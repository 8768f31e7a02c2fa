"""Training: person-disjoint split, normalisation, Adam on both heads, early stopping,
resumable checkpoints (safetensors), and the ANN twin trained on the same split.

A run directory holds ``model.safetensors`` (spiking model), ``twin.safetensors`` (ANN twin),
``config.json`` (everything needed to rebuild and reproduce) and ``metrics.json``.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from vo2spike import __version__
from vo2spike.data.read import Dataset
from vo2spike.data.split import split_by_person, split_masks
from vo2spike.data.windows import CHANNELS, STRIDE_S, WINDOW_S, Windows, prepare_windows
from vo2spike.model.net import ModelConfig, VO2Net, count_parameters
from vo2spike.outputs import OutputExistsError, write_json

log = logging.getLogger("vo2spike")

MODEL_FILE, TWIN_FILE = "model.safetensors", "twin.safetensors"
CONFIG_FILE, METRICS_FILE = "config.json", "metrics.json"


@dataclass
class TrainConfig:
    """Optimisation hyper-parameters."""

    epochs: int = 40
    batch_size: int = 256
    lr: float = 2e-3
    patience: int = 6
    vo2max_loss_weight: float = 1.0
    grad_clip: float = 1.0
    seed: int = 0


@dataclass
class Normalizer:
    """Per-channel input statistics and target statistics, fitted on the training split."""

    x_mean: list[float]
    x_std: list[float]
    vo2_mean: float
    vo2_std: float
    vo2max_mean: float
    vo2max_std: float

    @classmethod
    def fit(cls, w: Windows) -> Normalizer:
        """Fit on training windows (statistics over windows and time steps)."""
        std = w.x.std(axis=(0, 2))
        return cls(
            x_mean=w.x.mean(axis=(0, 2)).tolist(),
            x_std=np.where(std > 1e-6, std, 1.0).tolist(),
            vo2_mean=float(w.vo2.mean()), vo2_std=float(w.vo2.std()),
            vo2max_mean=float(w.vo2max.mean()), vo2max_std=float(w.vo2max.std()),
        )

    def inputs(self, x: np.ndarray) -> torch.Tensor:
        """Standardise raw inputs (N, 8, T)."""
        m = np.asarray(self.x_mean, dtype=np.float32)[None, :, None]
        s = np.asarray(self.x_std, dtype=np.float32)[None, :, None]
        return torch.from_numpy(((x - m) / s).astype(np.float32))

    def targets(self, w: Windows) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised (VO2, VO2max) targets."""
        vo2 = (w.vo2 - self.vo2_mean) / self.vo2_std
        vmax = (w.vo2max - self.vo2max_mean) / self.vo2max_std
        return torch.from_numpy(vo2.astype(np.float32)), torch.from_numpy(vmax.astype(np.float32))

    def to_ml_min(self, vo2: torch.Tensor, vo2max: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Standardised outputs back to mL/min."""
        return (vo2.numpy() * self.vo2_std + self.vo2_mean,
                vo2max.numpy() * self.vo2max_std + self.vo2max_mean)


@torch.no_grad()
def predict_windows(model: VO2Net, norm: Normalizer, x: np.ndarray,
                    batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Predict window VO2 and VO2max (mL/min) for raw windows; also mean spike rates."""
    model.eval()
    vo2, vmax, rates = [], [], {}
    xs = norm.inputs(x)
    for i in range(0, len(xs), batch_size):
        out = model(xs[i:i + batch_size])
        a, b = norm.to_ml_min(out.vo2, out.vo2max)
        vo2.append(a)
        vmax.append(b)
        for k, r in out.spike_rates.items():
            rates.setdefault(k, []).append(float(r) * len(out.vo2))
    result = {"vo2": np.concatenate(vo2), "vo2max": np.concatenate(vmax)}
    for k, v in rates.items():
        result[f"spike_rate_{k}"] = np.array(sum(v) / len(xs))
    return result


def _loss(model: VO2Net, x: torch.Tensor, y: torch.Tensor, ymax: torch.Tensor,
          w_max: float) -> torch.Tensor:
    out = model(x)
    mse = torch.nn.functional.mse_loss
    return mse(out.vo2, y) + w_max * mse(out.vo2max, ymax)


@torch.no_grad()
def _eval_loss(model: VO2Net, x, y, ymax, w_max: float, bs: int = 1024) -> float:
    model.eval()
    total = sum(float(_loss(model, x[i:i + bs], y[i:i + bs], ymax[i:i + bs], w_max))
                * len(x[i:i + bs]) for i in range(0, len(x), bs))
    return total / len(x)


def _save_checkpoint(path: Path, model, best_state, optim, meta: dict) -> None:
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v.contiguous() for k, v in best_state.items()})
    for i, st in optim.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"optim.{i}.{k}"] = torch.as_tensor(v).contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta)})
    tmp.replace(path)


def _load_checkpoint(path: Path, model, optim) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["meta"])
    t = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
    best = {k[5:]: v for k, v in t.items() if k.startswith("best.")}
    state: dict[int, dict] = {}
    for k, v in t.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    sd = optim.state_dict()
    sd["state"] = state
    optim.load_state_dict(sd)
    torch.set_rng_state(t["rng.torch"])
    return best, meta


def fit(model: VO2Net, train: Windows, val: Windows, norm: Normalizer, cfg: TrainConfig,
        checkpoint: Path, name: str) -> dict:
    """Train ``model`` in place with early stopping on validation loss; resumes from
    ``checkpoint`` if it exists. Returns the history and best epoch."""
    x, (y, ymax) = norm.inputs(train.x), norm.targets(train)
    xv, (yv, ymaxv) = norm.inputs(val.x), norm.targets(val)
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    meta = {"epoch": -1, "best_epoch": -1, "best_val": float("inf"), "bad_epochs": 0,
            "history": []}
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    if checkpoint.exists():
        best_state, meta = _load_checkpoint(checkpoint, model, optim)
        log.info("%s: resuming after epoch %d", name, meta["epoch"] + 1)
    bar = tqdm(range(meta["epoch"] + 1, cfg.epochs), desc=f"train {name}", unit="epoch",
               initial=meta["epoch"] + 1, total=cfg.epochs, leave=False)
    for epoch in bar:
        if meta["bad_epochs"] >= cfg.patience:
            break
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            loss = _loss(model, x[idx], y[idx], ymax[idx], cfg.vo2max_loss_weight)
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optim.step()
            total += float(loss.detach()) * len(idx)
        val_loss = _eval_loss(model, xv, yv, ymaxv, cfg.vo2max_loss_weight)
        meta["history"].append({"epoch": epoch + 1, "train_loss": total / len(x),
                                "val_loss": val_loss})
        if val_loss < meta["best_val"]:
            meta.update(best_val=val_loss, best_epoch=epoch + 1, bad_epochs=0)
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            meta["bad_epochs"] += 1
        meta["epoch"] = epoch
        bar.set_postfix(train=f"{total / len(x):.3f}", val=f"{val_loss:.3f}")
        _save_checkpoint(checkpoint, model, best_state, optim, meta)
    bar.close()
    model.load_state_dict(best_state)
    return {"history": meta["history"], "best_epoch": meta["best_epoch"],
            "best_val_loss": meta["best_val"]}


@dataclass
class FineTuneConfig:
    """Fine-tuning on real recordings: each batch holds real windows and as many windows
    drawn from the simulated training split (so the simulation is not forgotten);
    BatchNorm statistics stay frozen. Chosen by leave-one-person-out on the Yo-Yo data
    (see the issue notes)."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 3e-4
    sim_per_real: float = 1.0
    vo2max_loss_weight: float = 1.0
    seed: int = 0


def fine_tune(model: VO2Net, real: Windows, sim: Windows, norm: Normalizer,
              cfg: FineTuneConfig) -> VO2Net:
    """Return a copy of ``model`` fine-tuned on ``real`` (mixed with ``sim``) windows."""
    model = copy.deepcopy(model)
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    x, (y, ymax) = norm.inputs(real.x), norm.targets(real)
    xs, (ys, ymaxs) = norm.inputs(sim.x), norm.targets(sim)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.eval()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            j = torch.randint(0, len(xs), (int(round(len(idx) * cfg.sim_per_real)),),
                              generator=gen)
            loss = _loss(model, torch.cat([x[idx], xs[j]]), torch.cat([y[idx], ys[j]]),
                         torch.cat([ymax[idx], ymaxs[j]]), cfg.vo2max_loss_weight)
            optim.zero_grad()
            loss.backward()
            optim.step()
    model.eval()
    return model


def save_weights(model: VO2Net, path: Path) -> None:
    """Write a model's state dict as safetensors (atomic)."""
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)


SIM_ONLY_FILES = {False: "sim_only.safetensors", True: "sim_only_twin.safetensors"}


def load_model(run_dir: Path, twin: bool = False,
               sim_only: bool = False) -> tuple[VO2Net, Normalizer, dict]:
    """Load a trained model (or its ANN twin), its normaliser and the run config.

    ``sim_only`` loads the weights trained on simulation alone: the pre-trained ones if the
    run was fine-tuned on real recordings, otherwise the run's only weights.
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG_FILE
    weights = run_dir / (TWIN_FILE if twin else MODEL_FILE)
    if sim_only and (run_dir / SIM_ONLY_FILES[twin]).is_file():
        weights = run_dir / SIM_ONLY_FILES[twin]
    if not cfg_path.is_file() or not weights.is_file():
        raise FileNotFoundError(f"{run_dir}: not a trained run directory "
                                f"(needs {CONFIG_FILE} and {weights.name})")
    config = json.loads(cfg_path.read_text())
    model = VO2Net(ModelConfig.from_dict(config["twin_model" if twin else "model"]))
    model.load_state_dict(load_file(str(weights)))
    model.eval()
    return model, Normalizer(**config["normalization"]), config


def sim_train_windows(config: dict, sim: Windows) -> Windows:
    """The simulated windows of the run's training split."""
    return sim.subset(split_masks(sim.person, config["split"])["train"])


def fine_tune_run(run_dir: Path, real: Windows, real_source: dict, sim: Windows,
                  cfg: FineTuneConfig | None = None) -> None:
    """Fine-tune a simulation-trained run on all ``real`` windows, in place: the
    simulation-only weights are kept as ``sim_only*.safetensors``."""
    run_dir = Path(run_dir)
    cfg = cfg or FineTuneConfig()
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    sim_train = sim_train_windows(config, sim)
    for twin in (False, True):
        model, norm, _ = load_model(run_dir, twin=twin, sim_only=True)
        weights = run_dir / (TWIN_FILE if twin else MODEL_FILE)
        if not (run_dir / SIM_ONLY_FILES[twin]).exists():
            weights.replace(run_dir / SIM_ONLY_FILES[twin])
        torch.manual_seed(cfg.seed)
        save_weights(fine_tune(model, real, sim_train, norm, cfg), weights)
    config["fine_tune"] = {**asdict(cfg), "data": real_source, "n_windows": len(real),
                           "people": sorted({str(p) for p in real.person})}
    write_json(run_dir / CONFIG_FILE, config)


def _prepare_run_dir(out: Path, force: bool, resume: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if force:
            shutil.rmtree(out)
        elif resume:
            if (out / METRICS_FILE).exists():
                raise OutputExistsError(f"{out}: this run already finished; nothing to resume")
            if not (out / CONFIG_FILE).exists():
                raise OutputExistsError(f"{out}: no interrupted run to resume here")
            return
        else:
            raise OutputExistsError(
                f"{out} already exists; pass --resume to continue an interrupted run "
                "or --force to start over")
    out.mkdir(parents=True, exist_ok=True)


def train_run(data_dir: Path, out: Path, cfg: TrainConfig, model_cfg: ModelConfig | None = None,
              force: bool = False, resume: bool = False,
              prepared: tuple[Dataset, Windows] | None = None) -> dict:
    """Train the spiking model and its ANN twin on ``data_dir``; write the run directory.

    ``prepared`` passes already loaded (dataset, windows) of ``data_dir``."""
    data_dir, out = Path(data_dir), Path(out)
    model_cfg = model_cfg or ModelConfig()
    _prepare_run_dir(out, force, resume)
    t0 = time.time()
    dataset, windows = prepared or prepare_windows(data_dir)
    if resume and (out / CONFIG_FILE).exists():
        config = json.loads((out / CONFIG_FILE).read_text())
        if config["data"]["sha256"] != dataset.source["sha256"]:
            raise ValueError(f"{data_dir}: differs from the data this run started on")
        split = config["split"]
        cfg = TrainConfig(**config["train"])
    else:
        split = split_by_person(windows.person, cfg.seed)
    masks = split_masks(windows.person, split)
    train_w, val_w = windows.subset(masks["train"]), windows.subset(masks["val"])
    norm = Normalizer.fit(train_w)
    twin_cfg = ModelConfig(**{**asdict(model_cfg), "spiking": False})
    config = {
        "vo2spike_version": __version__,
        "model": model_cfg.to_dict(),
        "twin_model": twin_cfg.to_dict(),
        "train": asdict(cfg),
        "normalization": asdict(norm),
        "channels": CHANNELS,
        "window_s": WINDOW_S,
        "stride_s": STRIDE_S,
        "seed": cfg.seed,
        "data": dataset.source,
        "data_report": dataset.report.counts,
        "split": split,
    }
    write_json(out / CONFIG_FILE, config)
    log.info("data: %s (%s); %d windows; train/val/test people: %d/%d/%d",
             data_dir, dataset.source["kind"], len(windows), len(split["train"]),
             len(split["val"]), len(split["test"]))
    results = {}
    for name, mcfg, fname in [("spiking", model_cfg, MODEL_FILE), ("twin", twin_cfg, TWIN_FILE)]:
        torch.manual_seed(cfg.seed)
        model = VO2Net(mcfg)
        if (out / fname).exists():  # finished before an interruption
            model.load_state_dict(load_file(str(out / fname)))
            results[name] = json.loads((out / f".{name}-fit.json").read_text())
            continue
        t1 = time.time()
        ckpt = out / f"checkpoint-{name}.safetensors"
        fitted = fit(model, train_w, val_w, norm, cfg, ckpt, name)
        fitted["seconds"] = round(time.time() - t1, 1)
        fitted["parameters"] = count_parameters(model)
        write_json(out / f".{name}-fit.json", fitted)
        save_weights(model, out / fname)
        ckpt.unlink()
        results[name] = fitted
        log.info("%s: best epoch %d, val loss %.4f, %.0f s", name, fitted["best_epoch"],
                 fitted["best_val_loss"], fitted["seconds"])
    metrics = {"data_kind": dataset.source["kind"], "n_windows": len(windows),
               "n_tests": int(windows.tests.shape[0]), **results,
               "total_seconds": round(time.time() - t0, 1)}
    for name in results:
        (out / f".{name}-fit.json").unlink()
    write_json(out / METRICS_FILE, metrics)
    return metrics
