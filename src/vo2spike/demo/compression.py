"""Stage 6 of the demo (compression): two small adapters onto the compressed model.

The compressed model is ``MODEL/compressed/``, written by ``vo2spike compress`` (and by
``vo2spike run``): a run-like folder (``config.json``, the pruned float ``model.safetensors``,
the integer-only ``int8.json`` / ``int8.safetensors``) with ``compression.json`` (the
measured accuracy). These two functions are the only places in the demo that read it.

- :func:`compression_view`: the weight matrix drawn (``layer2.fc.weight``, the spiking
  layer-2 synapses, 64 x 64): float value, pruned or not, and 8-bit level of each weight.
- :func:`compression_accuracy`: the run's accuracy before / after compression, or None.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vo2spike.compress.prune import DEFAULT_SPARSITY
from vo2spike.config import COMPRESSED_DIR, RunDirError, load_config

ACCURACY_FILE = "compression.json"
#: The layer drawn: the synapses into the second spiking layer ...
LAYER = "layer2.fc.weight"
#: ... and its name in the integer-only model (int8.safetensors).
INT8_LAYER = "lif2.weight"
#: Fraction of all Conv1d and Linear weights removed when no compressed model exists.
PRUNE_AMOUNT = DEFAULT_SPARSITY


def prunable_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every Conv1d and Linear weight (not biases, not BatchNorm), by state-dict name."""
    return {f"{name}.weight": m.weight.detach() for name, m in model.named_modules()
            if isinstance(m, nn.Conv1d | nn.Linear)}


def global_magnitude_mask(weights: dict[str, torch.Tensor],
                          amount: float = PRUNE_AMOUNT) -> dict[str, torch.Tensor]:
    """True where a weight survives L1 global unstructured pruning of ``amount``.

    As ``torch.nn.utils.prune.global_unstructured(..., L1Unstructured, amount)``: the
    round(amount x n) weights of smallest |w| over all tensors together are removed.
    """
    flat = torch.cat([w.reshape(-1).abs() for w in weights.values()])
    k = round(amount * flat.numel())
    keep = torch.ones_like(flat, dtype=torch.bool)
    if k:
        keep[torch.topk(flat, k, largest=False).indices] = False
    masks, i = {}, 0
    for name, w in weights.items():
        masks[name] = keep[i:i + w.numel()].reshape(w.shape)
        i += w.numel()
    return masks


def int8_levels(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (row) symmetric int8 quantisation, the int8 engine's formula:
    s = max|w| / 127 per row, q = clip(round(w / s), -127, 127). Returns (q, s)."""
    s = np.abs(w).max(axis=1) / 127.0
    s = np.where(s > 0, s, 1.0)
    q = np.clip(np.round(w / s[:, None]), -127, 127).astype(np.int32)
    return q, s


def compression_view(model_dir: Path, model: nn.Module | None = None) -> dict:
    """What stage 6 draws for ``LAYER``: the float weights, which ones pruning removes, and
    the 8-bit level of each (from the pruned weights).

    With ``MODEL/compressed/``: the run's simulation-only weights (those pruning started
    from), the pruned and fine-tuned weights from its model (zeros are pruned), the
    sparsities it was pruned to in turn (``prune_steps``; gradual pruning ranks the
    fine-tuned weights at each step, so the removed weights are not exactly the smallest of
    the simulation-only ones) and the 8-bit levels of its int8 engine. Without: which
    weights a one-shot 70% global magnitude pruning of the float ``model`` would remove, and
    the levels computed here.
    """
    from vo2spike.compress.intmodel import load_int_model
    from vo2spike.inference import load_model

    model_dir = Path(model_dir)
    comp_dir = model_dir / COMPRESSED_DIR
    if comp_dir.is_dir():
        # `vo2spike compress` starts pruning from the simulation-only weights (then
        # fine-tunes the survivors): their magnitudes chose the first weights removed.
        model = load_model(model_dir, sim_only=True)[0]
    elif model is None:
        model = load_model(model_dir)[0]
    float_w = model.state_dict()[LAYER].numpy().astype(np.float64)
    weights = prunable_weights(model)
    if comp_dir.is_dir():
        pruned_model = load_model(comp_dir)[0]  # RunDirError names the file when damaged
        pruned_all = prunable_weights(pruned_model)
        removed_all = {k: (pruned_all[k] == 0).numpy() for k in weights}
        pruned_w = pruned_all[LAYER].numpy().astype(np.float64)
        comp_cfg = load_config(comp_dir)
        record = comp_cfg.compression
        steps = [*record.gradual_steps, record.sparsity] if record else [PRUNE_AMOUNT]
        levels = load_int_model(comp_dir, expected=comp_cfg.weights).t(INT8_LAYER)
        source = f"the compressed model in {comp_dir}"
    else:
        masks = global_magnitude_mask(weights)
        removed_all = {k: ~m.numpy() for k, m in masks.items()}
        pruned_w = np.where(removed_all[LAYER], 0.0, float_w)
        steps, levels = [PRUNE_AMOUNT], None
        source = ("computed here from the float model: no compressed model exists yet "
                  f"({comp_dir} is missing)")
    removed = removed_all[LAYER]
    total_removed = sum(int(r.sum()) for r in removed_all.values())
    total = sum(w.numel() for w in weights.values())
    mags = np.concatenate([w.abs().reshape(-1).numpy() for w in weights.values()])
    gone = np.concatenate([r.reshape(-1) for r in removed_all.values()])
    q, s = int8_levels(pruned_w)
    if levels is not None:
        q = levels.astype(np.int32)  # the engine's own levels (the same formula)
    return {
        "layer": LAYER,
        # The surviving weights as quantised: after masked fine-tuning when compressed.
        "pruned_weights": [round(float(v), 5) for v in pruned_w.reshape(-1)],
        "shape": list(float_w.shape),
        "compressed_model": comp_dir.is_dir(),
        "source": source,
        "prune_amount": steps[-1],
        "prune_steps": steps,  # sparsities pruned to in turn; one entry: one-shot
        "weights": [round(float(v), 5) for v in float_w.reshape(-1)],
        "pruned": "".join("1" if r else "0" for r in removed.reshape(-1)),
        "levels": [int(v) for v in q.reshape(-1)],
        "scales": [float(v) for v in s],
        "removed_in_layer": int(removed.sum()),
        "histogram": magnitude_histogram(mags, gone),
        "removed_total": total_removed,
        "weights_total": total,
    }


def magnitude_histogram(mags: np.ndarray, removed: np.ndarray, bins: int = 40) -> dict:
    """Histogram of log10 |w| over all prunable weights: counts of kept and removed weights
    per bin, and the pruning threshold (the largest removed |w|) when one exists: when every
    removed weight is smaller than every kept one (one-shot pruning of these weights), else
    None."""
    floor = mags[mags > 0].min() if (mags > 0).any() else 1e-8
    logs = np.log10(np.maximum(mags, floor))
    edges = np.linspace(np.floor(logs.min() * 2) / 2, np.ceil(logs.max() * 2) / 2, bins + 1)
    kept, _ = np.histogram(logs[~removed], edges)
    gone, _ = np.histogram(logs[removed], edges)
    threshold = None
    if removed.any() and (removed.all() or mags[removed].max() <= mags[~removed].min()):
        threshold = float(mags[removed].max())
    return {"log10_edges": [round(float(e), 4) for e in edges], "kept": kept.tolist(),
            "removed": gone.tolist(), "threshold": threshold}


def compression_accuracy(model_dir: Path) -> dict | None:
    """The run's accuracy before (float spiking model) and after compression (pruned +
    int8) from ``MODEL/compressed/compression.json``, or None when it does not exist.

    ``before`` / ``after``: the simulated test split; ``real_before`` / ``real_after``: the
    real recordings held out by person (None without them). Each holds ``vo2_r2``,
    ``vo2_rmse``, ``vo2max_r2`` and ``vo2max_rmse`` (mL/min)."""
    path = Path(model_dir) / COMPRESSED_DIR / ACCURACY_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunDirError(f"{path}: cannot be read ({e})") from e

    def figures(models: object, name: str, where: str) -> dict:
        """The four figures of ``models[name]`` (``where``: the key holding the metrics)."""
        try:
            m = models[name] if not where else models[name][where]  # type: ignore[index]
            out = {f"{target}_{stat}": float(m[f"{target}_ml_min"][stat])
                   for target in ("vo2", "vo2max") for stat in ("r2", "rmse")}
        except (KeyError, TypeError, ValueError) as e:
            raise RunDirError(f"{path}: no {name} figures ({e!s}); rewrite it with "
                              "`vo2spike compress`") from None
        if not all(math.isfinite(v) for v in out.values()):
            raise RunDirError(f"{path}: {name}: figures must be finite numbers")
        return out

    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise RunDirError(f"{path}: expected a JSON object with 'models'")
    real = data.get("real")
    real_models = real.get("models") if isinstance(real, dict) else None
    kinds = data.get("data") if isinstance(data.get("data"), dict) else {}
    return {
        "file": str(path),
        "sparsity": data.get("sparsity"),
        "energy": _energy(data),
        "data_kind": str(kinds.get("simulated", "not stated")),
        "before": figures(data["models"], "spiking", "sim"),
        "after": figures(data["models"], "pruned_int8", "sim"),
        "real_data_kind": str(kinds.get("real")) if real_models else None,
        "real_people": real.get("n_people") if real_models else None,
        "real_before": figures(real_models, "spiking_real", "") if real_models else None,
        "real_after": figures(real_models, "pruned_int8_real", "") if real_models else None,
    }


def _energy(data: dict) -> dict | None:
    """The pruned models' energy per window (nJ; spiking layers and whole network, per
    engine precision) and the spike rates it was counted at, or None if not recorded."""
    try:
        e = data["energy"]["pruned"]
        nj = {prec: {model: {"spiking_layers": float(v["spiking_layers"]),
                             "total": float(v["total"])}
                     for model, v in models.items()}
              for prec, models in e["energy_nj"].items()}
        rates = {k: float(v) for k, v in e["spike_rates"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return {"nj": nj, "spike_rates": rates, "op_energy_pj": e.get("op_energy_pj")}
