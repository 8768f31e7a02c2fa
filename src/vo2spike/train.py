"""Training: person-disjoint split, normalisation, Adam on both heads, early stopping,
resumable checkpoints (safetensors), the ANN twin trained on the same split, and
fine-tuning on real recordings.

A run directory holds ``config.json`` (:class:`vo2spike.config.RunConfig`), checksummed
weight files (``model.safetensors``: spiking; ``twin.safetensors``: ANN twin) and
``metrics.json``; a run is finished when its config lists the weights' SHA256 and
``metrics.json`` exists.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from vo2spike import interrupts
from vo2spike.config import (
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    SIM_ONLY_FILES,
    TWIN_FILE,
    FineTuneConfig,
    FineTuneRecord,
    Normalizer,
    RunConfig,
    TrainConfig,
    load_config,
    save_config,
    sha256_file,
)
from vo2spike.data.read import DataError, Dataset
from vo2spike.data.split import split_by_person, split_masks
from vo2spike.data.windows import (
    ABSENT_FILL,
    CHANNELS,
    INPUT_SETS,
    OPTIONAL,
    STRIDE_S,
    WINDOW_S,
    Windows,
    check_input_set,
    prepare_windows,
)
from vo2spike.inference import build_model, load_verified_tensors, weights_file
from vo2spike.model.net import ModelConfig, VO2Net, count_parameters
from vo2spike.outputs import (
    MARKER,
    OutputExistsError,
    atomic_dir,
    check_writable,
    partial_path,
    resume_dir,
    write_json,
)
from vo2spike.threads import cpu_kernels, fix_threads

log = logging.getLogger("vo2spike")


def spike_rate_loss(rates: dict[str, torch.Tensor], penalty: float) -> torch.Tensor:
    """The penalty term (scalar): ``penalty`` x the mean of the per-layer spike rates
    (``Output.spike_rates_grad``, differentiable). Both LIF layers have the same number of
    neurons, so that is the fraction of all neuron-steps that fire."""
    return penalty * torch.stack(list(rates.values())).mean()


def loss_fn(model: VO2Net, x: torch.Tensor, y: torch.Tensor, ymax: torch.Tensor,
            vo2max_weight: float, spike_rate_penalty: float = 0.0) -> torch.Tensor:
    """MSE of window VO2 plus ``vo2max_weight`` x MSE of VO2max (standardised units), plus
    ``spike_rate_penalty`` x the mean spike rate for spiking models."""
    out = model(x)
    mse = torch.nn.functional.mse_loss
    loss = mse(out.vo2, y) + vo2max_weight * mse(out.vo2max, ymax)
    if spike_rate_penalty and out.spike_rates_grad:  # 0: the loss is left untouched
        loss = loss + spike_rate_loss(out.spike_rates_grad, spike_rate_penalty)
    return loss


def train_step(model: VO2Net, optim: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               ymax: torch.Tensor, vo2max_weight: float, grad_clip: float | None,
               spike_rate_penalty: float = 0.0) -> float:
    """One optimisation step on a batch (pre-training and fine-tuning alike); the loss."""
    loss = loss_fn(model, x, y, ymax, vo2max_weight, spike_rate_penalty)
    optim.zero_grad()
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optim.step()
    return float(loss.detach())


@torch.no_grad()
def _eval_loss(model: VO2Net, x, y, ymax, vo2max_weight: float,
               spike_rate_penalty: float = 0.0, bs: int = 1024) -> float:
    """Validation loss, the penalty included: early stopping weighs the same objective."""
    model.eval()
    total = sum(float(loss_fn(model, x[i:i + bs], y[i:i + bs], ymax[i:i + bs], vo2max_weight,
                              spike_rate_penalty)) * len(x[i:i + bs])
                for i in range(0, len(x), bs))
    return total / len(x)


def _tensors(norm: Normalizer, w: Windows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Standardised inputs (N, C, T) and targets (N,), (N,) of windows."""
    y, ymax = norm.targets(w)
    return torch.from_numpy(norm.inputs(w.x)), torch.from_numpy(y), torch.from_numpy(ymax)


class InputDropout:
    """Channel dropout over input sets: each standardised window (C, T) of a batch is given
    an input set drawn with ``weights`` (name -> probability), and the optional signals
    outside it are made absent exactly as :func:`vo2spike.data.windows.with_input_set`
    makes them in raw units (ABSENT_FILL, presence channel 0), here standardised."""

    def __init__(self, norm: Normalizer, weights: dict[str, float]) -> None:
        names = [check_input_set(n) for n in weights]
        p = torch.tensor([float(weights[n]) for n in weights], dtype=torch.float64)
        if len(set(names)) != len(names) or (p < 0).any() or float(p.sum()) <= 0:
            raise ValueError(f"input_set_weights must give each input set once a weight >= 0, "
                             f"not all 0; got {weights}")
        self.p = p / p.sum()
        mean, std = norm.x_mean, norm.x_std
        # absent[s, k]: input set s lacks optional signal k
        self.absent = torch.tensor([[sig not in INPUT_SETS[n] for sig in OPTIONAL]
                                    for n in names])
        self.channels = [(CHANNELS.index(sig), CHANNELS.index(flag)) for sig, flag in
                         OPTIONAL.items()]
        self.values = [((ABSENT_FILL[sig] - mean[c]) / std[c], (0.0 - mean[f]) / std[f])
                       for sig, (c, f) in zip(OPTIONAL, self.channels, strict=True)]

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """A copy of standardised windows x (B, C, T) with each window's drawn set applied."""
        drawn = torch.multinomial(self.p, len(x), replacement=True, generator=gen)  # (B,)
        x = x.clone()
        for k, ((c, f), (z_fill, z_flag)) in enumerate(zip(self.channels, self.values,
                                                            strict=True)):
            gone = self.absent[drawn, k]  # (B,) bool
            x[gone, c] = z_fill
            x[gone, f] = z_flag
        return x


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
        checkpoint: Path, name: str, seed: int) -> dict:
    """Train ``model`` in place with early stopping on validation loss; resumes from
    ``checkpoint`` if it exists. Returns the history and best epoch."""
    x, y, ymax = _tensors(norm, train)
    xv, yv, ymaxv = _tensors(norm, val)
    penalty = cfg.spike_rate_penalty
    dropout = InputDropout(norm, cfg.input_set_weights)
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
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            total += train_step(model, optim, dropout(x[idx], gen), y[idx], ymax[idx],
                                cfg.vo2max_loss_weight, cfg.grad_clip, penalty) * len(idx)
        val_loss = _eval_loss(model, xv, yv, ymaxv, cfg.vo2max_loss_weight, penalty)
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


def interpolate_weights(start: torch.nn.Module, tuned: torch.nn.Module,
                        fraction: float) -> torch.nn.Module:
    """Move ``tuned``'s parameters (in place) to ``start + fraction x (tuned - start)``;
    buffers (BatchNorm statistics, pruning masks) are left as they are. Returns ``tuned``.
    A weight that is zero in both stays exactly zero."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"tuned_fraction must be in [0, 1], got {fraction}")
    if fraction == 1.0:
        return tuned
    with torch.no_grad():
        for (name, p0), (name1, p1) in zip(start.named_parameters(), tuned.named_parameters(),
                                           strict=True):
            if name != name1:
                raise ValueError(f"parameters differ: {name} vs {name1}")
            p1.mul_(fraction).add_(p0, alpha=1.0 - fraction)
    return tuned


def fine_tune(model: VO2Net, real: Windows, sim: Windows, norm: Normalizer,
              cfg: FineTuneConfig, seed: int) -> VO2Net:
    """Return a copy of ``model`` fine-tuned on ``real`` (mixed with ``sim``) windows, its
    weights then interpolated back towards ``model``'s by ``cfg.tuned_fraction``."""
    start = model
    model = copy.deepcopy(model)
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    x, y, ymax = _tensors(norm, real)
    xs, ys, ymaxs = _tensors(norm, sim)
    dropout = InputDropout(norm, cfg.input_set_weights)
    gen = torch.Generator().manual_seed(seed)
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
            train_step(model, optim, dropout(torch.cat([x[idx], xs[j]]), gen),
                       torch.cat([y[idx], ys[j]]),
                       torch.cat([ymax[idx], ymaxs[j]]), cfg.vo2max_loss_weight, cfg.grad_clip,
                       cfg.spike_rate_penalty)
    model.eval()
    return interpolate_weights(start, model, cfg.tuned_fraction)


def save_weights(model: torch.nn.Module, path: Path) -> str:
    """Write a model's state dict as safetensors (atomic); returns the file's SHA256."""
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # safetensors creates 0600 files; give the usual permissions
    tmp.replace(path)
    return sha256_file(path)


def sim_train_windows(config: RunConfig, sim: Windows) -> Windows:
    """The simulated windows of the run's training split."""
    return sim.subset(split_masks(sim.person, config.split)["train"])


def fine_tune_run(run_dir: Path, real: Windows, real_source: dict, sim: Windows,
                  cfg: FineTuneConfig | None = None) -> None:
    """Fine-tune a simulation-trained run on all ``real`` windows, in place: the
    simulation-only weights are kept as ``sim_only*.safetensors``."""
    run_dir = Path(run_dir)
    cfg = cfg or FineTuneConfig()
    config = load_config(run_dir)
    sim_train = sim_train_windows(config, sim)
    for name, twin in ((MODEL_FILE, False), (TWIN_FILE, True)):
        source = weights_file(config, twin, sim_only=True)
        model = build_model(load_verified_tensors(run_dir, source, config), config, twin,
                            run_dir / source)
        if source == name:  # first fine-tuning: keep the simulation-only weights
            (run_dir / name).replace(run_dir / SIM_ONLY_FILES[name])
            config.weights[SIM_ONLY_FILES[name]] = config.weights.pop(name)
        torch.manual_seed(config.seed)
        tuned = fine_tune(model, real, sim_train, config.normalization, cfg, config.seed)
        config.weights[name] = save_weights(tuned, run_dir / name)
    config.fine_tune = FineTuneRecord(cfg, real_source, len(real),
                                      sorted({str(p) for p in real.person}))
    save_config(run_dir, config)


def _interrupted(path: Path) -> bool:
    return (path / CONFIG_FILE).exists() and not (path / METRICS_FILE).exists()


def _check_run_dir(out: Path, force: bool, resume: bool, inputs: list[Path]) -> Path | None:
    """The interrupted run to continue if ``resume`` (OUT.partial; or OUT itself, trained in
    place by vo2spike 0.2); otherwise None, after checking (without touching anything) that a
    fresh run may be written to ``out``."""
    partial = partial_path(out)
    if resume:
        for candidate in (partial, out):
            if _interrupted(candidate):
                return candidate
        if (out / METRICS_FILE).exists():
            raise OutputExistsError(f"{out}: this run already finished; nothing to resume")
        if out.is_dir() and any(p.name != MARKER for p in out.iterdir()):
            raise OutputExistsError(f"{out}: no interrupted run to resume here")
    elif not force:
        for candidate in (partial, out):
            if _interrupted(candidate):
                raise OutputExistsError(
                    f"{candidate} holds an interrupted run; pass --resume to continue it or "
                    "--force to start over")
    check_writable(out, force, kind="run", inputs=inputs)
    return None


def train_run(data_dir: Path, out: Path, cfg: TrainConfig, model_cfg: ModelConfig | None = None,
              seed: int = 0, force: bool = False, resume: bool = False,
              prepared: tuple[Dataset, Windows] | None = None, in_place: bool = False) -> dict:
    """Train the spiking model and its ANN twin on ``data_dir``; write the run directory.

    The run is built in OUT.partial and moved to ``out`` when finished, so ``out`` is never
    half a run; an interrupted run stays in OUT.partial, and ``resume`` continues it (the
    architecture, settings, seed and split come from its config). ``in_place``: ``out`` is
    an empty folder the caller is building (the pipeline's own OUT.partial): train into it.
    ``prepared`` passes already loaded (dataset, windows) of ``data_dir``."""
    data_dir, out = Path(data_dir), Path(out)
    if in_place:
        dataset, windows = prepared or prepare_windows(data_dir)
        return _train_into(out, dataset, windows, data_dir, cfg, model_cfg, seed,
                           resuming=False, resumable=False)
    resuming = _check_run_dir(out, force, resume, [data_dir])
    dataset, windows = prepared or prepare_windows(data_dir)
    # Only once the data is valid may --force replace an old run (and only when finished).
    if resuming is None:
        building = atomic_dir(out, force=force, kind="run", inputs=[data_dir])
    elif resuming == out:
        building = contextlib.nullcontext(out)
    else:
        building = resume_dir(out, resuming, kind="run")
    with building as work:
        return _train_into(work, dataset, windows, data_dir, cfg, model_cfg, seed,
                           resuming=resuming is not None, resumable=True)


def _train_into(out: Path, dataset: Dataset, windows: Windows, data_dir: Path,
                cfg: TrainConfig, model_cfg: ModelConfig | None, seed: int, *,
                resuming: bool, resumable: bool) -> dict:
    """Train into the folder ``out`` (see :func:`train_run`). ``resumable``: once its
    config is written, ``out`` is kept if interrupted."""
    t0 = time.time()
    if resuming:
        config = load_config(out)
        if config.data["sha256"] != dataset.source["sha256"]:
            raise DataError(f"{data_dir}: differs from the data this run started on "
                            f"({config.data['path']})")
        model_cfg, cfg, seed, split = config.model, config.train, config.seed, config.split
    else:
        model_cfg = model_cfg or ModelConfig(n_inputs=len(CHANNELS))
        split = split_by_person(windows.person, seed, where=data_dir)
    masks = split_masks(windows.person, split)
    train_w, val_w = windows.subset(masks["train"]), windows.subset(masks["val"])
    norm = Normalizer.fit(train_w)
    twin_cfg = dataclasses.replace(model_cfg, spiking=False)
    config = RunConfig(model=model_cfg, twin_model=twin_cfg, train=cfg, normalization=norm,
                       seed=seed, split=split, data=dataset.source,
                       data_report=dataset.report.counts, channels=list(CHANNELS),
                       input_sets=list(INPUT_SETS),
                       window_s=WINDOW_S, stride_s=STRIDE_S, threads=fix_threads(),
                       cpu_kernels=cpu_kernels())
    save_config(out, config)
    if resumable:
        interrupts.keep(out)  # from here on an interruption keeps it, for --resume
    log.info("data: %s (%s); %d windows; train/val/test people: %d/%d/%d",
             data_dir, dataset.source["kind"], len(windows), len(split["train"]),
             len(split["val"]), len(split["test"]))
    results = {}
    for name, mcfg, fname in [("spiking", model_cfg, MODEL_FILE), ("twin", twin_cfg, TWIN_FILE)]:
        torch.manual_seed(seed)
        model = VO2Net(mcfg)
        if (out / fname).exists():  # finished before an interruption
            model.load_state_dict(load_file(str(out / fname)))
            results[name] = json.loads((out / f".{name}-fit.json").read_text())
            continue
        t1 = time.time()
        ckpt = out / f"checkpoint-{name}.safetensors"
        fitted = fit(model, train_w, val_w, norm, cfg, ckpt, name, seed)
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
    # Finished: the config lists the weights (inference refuses files it does not list).
    config.weights = {f: sha256_file(out / f) for f in (MODEL_FILE, TWIN_FILE)}
    save_config(out, config)
    write_json(out / METRICS_FILE, metrics)
    for name in results:
        (out / f".{name}-fit.json").unlink()
    return metrics
