"""Global magnitude pruning of a VO2Net with masked fine-tuning.

All Conv1d and Linear weights of the network (TCN convolutions and residual, the LIF or
twin layers, both heads: 16,512 weights) are pruned together by L1 magnitude
(``torch.nn.utils.prune.global_unstructured``); biases and BatchNorm are left alone.
Pruning is gradual by default: to reach 70% the network is pruned to 40% and fine-tuned
(up to 3 epochs), then to 60% and fine-tuned, then to 70%, each time removing the smallest
magnitudes left (the zeros of a step stay zeros). Each step is fine-tuned with its masks in
place, with the training recipe (``train.fit`` on simulated windows, early stopping); after
the last, ``train.fine_tune`` on real windows mixed with simulated ones when the run was
fine-tuned on real recordings. The masks are then made permanent: the result is a plain
VO2Net whose pruned weights are exact zeros.

While masked, a module holds ``weight_orig`` (a parameter) and ``weight_mask`` (a buffer) and
a forward pre-hook sets ``weight = weight_orig * weight_mask``: the optimiser only sees
``weight_orig``, whose pruned entries get zero gradient and so never reach the output.
``fit`` (in place, best state restored with ``load_state_dict``) and ``fine_tune`` (on a deep
copy) keep the masks. One catch: after a forward pass with gradients, a masked module's
``weight`` is a non-leaf tensor of the last graph and ``copy.deepcopy`` (which ``fine_tune``
does) refuses it; :func:`detach_masked` recomputes it without a graph.

    pruned = prune_and_fine_tune(model, norm, sim_train, sim_val, real, 0.7, TrainConfig(),
                                 FineTuneConfig(), seed=0, epochs=FINETUNE_EPOCHS)
    sparsity(pruned)  # 0.7 of the prunable weights are exactly 0 (pruned at 0.4, 0.6, 0.7)
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils import prune  # noqa: E402

from vo2spike.compress.blocks import block_importance  # noqa: E402
from vo2spike.compress.fixedpoint import leak_shifts, shift_beta  # noqa: E402
from vo2spike.compress.fold import bn_gain  # noqa: E402
from vo2spike.config import FineTuneConfig, Normalizer, TrainConfig  # noqa: E402
from vo2spike.data.windows import Windows  # noqa: E402
from vo2spike.inference import predict_windows  # noqa: E402
from vo2spike.metrics import score  # noqa: E402
from vo2spike.model.net import VO2Net  # noqa: E402
from vo2spike.train import fine_tune, fit  # noqa: E402

#: Default fraction of the prunable weights set to zero.
DEFAULT_SPARSITY = 0.7
#: Default epochs of masked fine-tuning on simulated windows (early stopping may end sooner).
FINETUNE_EPOCHS = 8
#: Gradual pruning: the sparsities pruned (and fine-tuned) before the target, as fractions
#: of it: 40% and 60% on the way to 70%. Chosen with bench/pruned_vo2max.py and checked
#: against one-shot pruning over five seeds (README, "On the device").
GRADUAL_STEPS = (4 / 7, 6 / 7)
#: Most epochs of masked fine-tuning at each intermediate sparsity.
GRADUAL_EPOCHS = 3
#: Default sparsities of ``--sweep``.
SWEEP_SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)
PRUNABLE = (nn.Conv1d, nn.Linear)


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, "weight") of every Conv1d and Linear of the model, in module order."""
    return [(m, "weight") for m in model.modules() if isinstance(m, PRUNABLE)]


def block_pruned(model: VO2Net) -> list[nn.Module]:
    """The multiply-accumulate layers, pruned in blocks (``vo2spike.compress.blocks``): every
    TCN conv and LIF1's synapses; the twin: both hidden layers. LIF2 (driven by spikes) and
    the heads are pruned weight by weight."""
    layers = [m for m in model.tcn.modules() if isinstance(m, nn.Conv1d)]
    hidden = [model.layer1, model.layer2] if not model.config.spiking else [model.layer1]
    return layers + [m for h in hidden for m in h.modules() if isinstance(m, nn.Linear)]


def with_shift_leak(model: VO2Net) -> VO2Net:
    """A copy of a spiking model whose LIF leak is the shift-and-add one nearest to its
    trained beta (``fixedpoint.leak_shifts``: 0.9 -> 1 - 2**-4 - 2**-5 = 0.90625), the leak
    the integer engines compute as ``U - (U >> k1) - (U >> k2)``: fine-tuning after this
    adapts the weights to it. The twin is copied unchanged."""
    model = copy.deepcopy(model)
    if model.config.spiking:
        beta = shift_beta(leak_shifts(model.config.beta))
        model.config = dataclasses.replace(model.config, beta=beta)
        model.layer1.beta = model.layer2.beta = beta
    return model


#: The pruning scores of the block-pruned (multiply-accumulate) layers are this fraction of
#: their mean |w|: a multiply-accumulate weight costs work at every one of a window's 60
#: steps, a LIF2 weight only when its input spikes (about 5% of steps), so at the same 70%
#: the network keeps more of LIF2 and fewer multiply-accumulates. Measured on the shipped
#: run (2 x 4 blocks, the pruned float model before int8; SIMULATED test split VO2 / VO2max
#: R² with a 0.875 leak, REAL leave-one-person-out VO2 / VO2max R² with the 0.90625 one
#: (0.3: the float model's 0.9); unpruned float 0.976 / 0.864 and 0.898 / 0.653):
#: 1.0: 0.971 / 0.892 and 0.878 / 0.626; 0.5: 0.974 / 0.895 and 0.889 / 0.608;
#: 0.3: 0.976 / 0.895 and 0.872 / 0.607. 0.5 keeps
#: 343 multiply-accumulate blocks a step (1.0: 482, 0.3: 271). REAL differences of a point
#: or two are within the noise of 19 sessions (compression.md's bootstrap intervals). These
#: were measured with |w| scores and the heads pruned, before ``PruneRecipe``'s defaults.
MAC_SCORE_SCALE = 0.5


@dataclasses.dataclass(frozen=True)
class PruneRecipe:
    """How the pruning scores are computed (``importance_scores``); the default is the
    shipped recipe. ``bench/prune_recipe.py`` compares recipes over several seeds: over
    seeds 0-3, keeping the heads and scoring by the folded weights lost the least REAL
    VO2max R² of the three it compares (README, "On the device")."""

    mac_score_scale: float = MAC_SCORE_SCALE  # block-pruned layers' scores x this
    keep_heads: bool = True  # never prune the VO2 / VO2max heads (128 weights)
    bn_folded: bool = True  # score TCN convs by |w x BatchNorm gain| (what int8 computes)


def importance_scores(model: VO2Net, recipe: PruneRecipe = PruneRecipe()
                      ) -> dict[tuple[nn.Module, str], torch.Tensor]:
    """Pruning score of every prunable weight: |w| (LIF2, heads), or for the block-pruned
    layers ``recipe.mac_score_scale`` x the mean |w| of the weight's block (so whole blocks
    go together); see :class:`PruneRecipe` for the variants."""
    blocked = {id(m) for m in block_pruned(model)}
    heads = {id(model.head_vo2), id(model.head_vo2max)}
    folded = model.tcn.blocks if recipe.bn_folded else []
    gains = {id(b.conv): torch.from_numpy(bn_gain(b.bn)).float()[:, None, None] for b in folded}
    scores = {}
    for module, name in prunable(model):
        w = effective_weight(module)
        if id(module) in gains:
            w = w * gains[id(module)]
        if id(module) in blocked:
            score = torch.from_numpy(
                recipe.mac_score_scale * block_importance(w.numpy()).astype(np.float32))
        elif recipe.keep_heads and id(module) in heads:
            score = torch.full_like(w, torch.finfo(torch.float32).max)
        else:
            score = w.abs()
        scores[(module, name)] = score
    return scores


def is_masked(model: nn.Module) -> bool:
    """Whether any weight of the model is re-parametrised by a pruning mask."""
    return any(prune.is_pruned(m) for m, _ in prunable(model))


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the module computes with: ``weight_orig * weight_mask`` while masked (the
    ``weight`` attribute is only refreshed by a forward pass), else ``weight``."""
    if hasattr(module, "weight_mask"):
        return module.weight_orig.detach() * module.weight_mask
    return module.weight.detach()


def detach_masked(model: nn.Module) -> nn.Module:
    """Recompute every masked ``weight`` without autograd history (in place), so that the
    model can be deep-copied. Returns ``model``."""
    with torch.no_grad():
        for module, name in prunable(model):
            if hasattr(module, f"{name}_mask"):
                setattr(module, name, getattr(module, f"{name}_orig") * getattr(
                    module, f"{name}_mask"))
    return model


def sparsity(model: nn.Module) -> float:
    """Fraction (0..1) of the Conv1d and Linear weights that are exactly zero."""
    weights = [effective_weight(m) for m, _ in prunable(model)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / sum(w.numel() for w in weights)


def prune_global(model: VO2Net, amount: float, recipe: PruneRecipe = PruneRecipe()) -> VO2Net:
    """A copy of ``model`` with the ``amount`` (0..1) smallest-magnitude Conv1d and Linear
    weights masked out, ranked together over the whole network (L1, global): exactly
    ``round(amount x 16,512)`` weights. The copy stays masked (see the module docstring)
    until :func:`make_permanent`."""
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {amount}")
    model = copy.deepcopy(model)
    prune.global_unstructured(prunable(model), pruning_method=prune.L1Unstructured,
                              importance_scores=importance_scores(model, recipe),
                              amount=amount)
    return detach_masked(model)


def make_permanent(model: VO2Net) -> VO2Net:
    """Fold every mask into its weight (in place): a plain VO2Net with exact zeros, whose
    state dict has the keys of an unpruned one. Returns ``model``."""
    for module, name in prunable(model):
        if prune.is_pruned(module) and hasattr(module, f"{name}_mask"):
            prune.remove(module, name)
    return model


def mask_zeros(model: VO2Net) -> VO2Net:
    """A copy of a pruned plain model with fixed masks on its zero weights, so that
    fine-tuning keeps them zero (e.g. per fold of leave-one-person-out)."""
    model = make_permanent(copy.deepcopy(model))
    for module, name in prunable(model):
        prune.custom_from_mask(module, name, mask=(getattr(module, name) != 0).float())
    return detach_masked(model)


def fine_tune_pruned(model: VO2Net, real: Windows, sim: Windows, norm: Normalizer,
                     cfg: FineTuneConfig, seed: int) -> VO2Net:
    """``train.fine_tune`` of a pruned plain model that keeps its zero weights at zero;
    a plain model (copy) is returned."""
    return make_permanent(fine_tune(mask_zeros(model), real, sim, norm, cfg, seed))


def pruning_schedule(amount: float, steps: Sequence[float] = GRADUAL_STEPS) -> list[float]:
    """The sparsities pruned in turn to reach ``amount``: ``amount x f`` for each fraction
    ``f`` of ``steps`` (rounded to 4 decimals), then ``amount``. ``steps=()``: one-shot."""
    if not all(0.0 < f < 1.0 for f in steps) or list(steps) != sorted(steps):
        raise ValueError(f"gradual steps must be increasing fractions in (0, 1), got {steps}")
    return [round(amount * f, 4) for f in steps] + [amount]


def step_epochs(schedule: Sequence[float], epochs: int) -> list[int]:
    """Most epochs of masked fine-tuning after each step of ``schedule``: ``GRADUAL_EPOCHS``
    (at most ``epochs``) after the intermediate ones, ``epochs`` after the last."""
    return [min(GRADUAL_EPOCHS, epochs)] * (len(schedule) - 1) + [epochs]


def prune_and_fine_tune(model: VO2Net, norm: Normalizer, sim_train: Windows, sim_val: Windows,
                        real: Windows | None, amount: float = DEFAULT_SPARSITY,
                        train_cfg: TrainConfig | None = None,
                        fine_tune_cfg: FineTuneConfig | None = None, seed: int = 0,
                        epochs: int = FINETUNE_EPOCHS,
                        steps: Sequence[float] = GRADUAL_STEPS,
                        recipe: PruneRecipe = PruneRecipe()) -> VO2Net:
    """Prune a copy of ``model`` (spiking or twin) to ``amount`` sparsity in the steps of
    :func:`pruning_schedule` and fine-tune it with its masks after each: ``train.fit`` on
    ``sim_train`` (the training recipe ``train_cfg``, early stopping on ``sim_val``) for up to
    ``GRADUAL_EPOCHS`` epochs at each intermediate sparsity and ``epochs`` at the last one
    (``epochs=0``: no fine-tuning, which makes gradual pruning the same as one-shot); then,
    if ``real`` windows are given, ``train.fine_tune`` on them mixed with ``sim_train``
    (``fine_tune_cfg``). Returns a plain VO2Net (eval mode) whose pruned weights are exact
    zeros.

    Start from the simulation-only weights of a run: that is the recipe its
    leave-one-person-out measures (masks chosen without any real person)."""
    schedule = pruning_schedule(amount, steps)
    per_step = step_epochs(schedule, epochs)
    for i, step in enumerate(schedule):
        masked = prune_global(model, step, recipe)
        if per_step[i] > 0:
            cfg = dataclasses.replace(train_cfg or TrainConfig(), epochs=per_step[i])
            with tempfile.TemporaryDirectory() as tmp:
                torch.manual_seed(seed)
                fit(masked, sim_train, sim_val, norm, cfg, Path(tmp) / "ckpt.safetensors",
                    f"masked fine-tuning, sparsity {step:g}", seed)
        if i < len(schedule) - 1:  # the next step prunes further from these fine-tuned weights
            model = make_permanent(masked)
    if real is not None and len(real):
        torch.manual_seed(seed)
        masked = fine_tune(detach_masked(masked), real, sim_train, norm,
                           fine_tune_cfg or FineTuneConfig(), seed)
    return make_permanent(masked).eval()


def score_model(model: VO2Net, norm: Normalizer, test: Windows) -> dict:
    """VO2 R² and RMSE (mL/min), VO2max R² and MAPE (%) and spike rates on ``test``."""
    p = predict_windows(model, norm, test.x)
    m, _ = score(test, p.vo2, p.vo2max)
    rates = {f"spike_rate_{k}": v for k, v in p.spike_rates.items()}
    return {"vo2_r2": m["vo2_ml_min"]["r2"], "vo2_rmse": m["vo2_ml_min"]["rmse"],
            "vo2max_r2": m["vo2max_ml_min"]["r2"], "vo2max_mape": m["vo2max_ml_min"]["mape"],
            **rates}


def sparsity_sweep(models: dict[str, VO2Net], norm: Normalizer, sim_train: Windows,
                   sim_val: Windows, sim_test: Windows, sparsities=SWEEP_SPARSITIES,
                   real: Windows | None = None, train_cfg: TrainConfig | None = None,
                   fine_tune_cfg: FineTuneConfig | None = None, seed: int = 0,
                   epochs: int = FINETUNE_EPOCHS,
                   references: dict[str, VO2Net] | None = None,
                   steps: Sequence[float] = GRADUAL_STEPS) -> list[dict]:
    """Accuracy against sparsity on the simulated test split: for each model (name -> float
    model to prune, e.g. ``{"spiking": snn, "twin": twin}``) a row at sparsity 0 and one per
    sparsity after :func:`prune_and_fine_tune` (gradual ``steps``, as fractions of each
    sparsity). The sparsity-0 row scores ``references[name]`` if given (for a run fine-tuned
    on real recordings: prune its simulation-only weights, compare with its fine-tuned
    ones), else the model itself.
    Rows: model, sparsity (requested and measured), VO2 R² and RMSE (mL/min), VO2max R² and
    MAPE (%), spike rates, seconds of pruning + fine-tuning."""
    rows = []
    for name, model in models.items():
        ref = (references or {}).get(name, model)
        rows.append({"model": name, "sparsity": 0.0, "measured_sparsity": sparsity(ref),
                     **score_model(ref, norm, sim_test), "seconds": 0.0})
        for amount in sparsities:
            t0 = time.time()
            pruned = prune_and_fine_tune(model, norm, sim_train, sim_val, real, amount,
                                         train_cfg, fine_tune_cfg, seed, epochs, steps)
            rows.append({"model": name, "sparsity": float(amount),
                         "measured_sparsity": sparsity(pruned),
                         **score_model(pruned, norm, sim_test),
                         "seconds": round(time.time() - t0, 1)})
    return rows


def sweep_table(rows: list[dict]) -> str:
    """Markdown table of :func:`sparsity_sweep` rows (R² change in points against each
    model's unpruned row)."""
    base = {r["model"]: r for r in rows if r["sparsity"] == 0.0}
    lines = ["| model | sparsity | VO2 R² | ΔVO2 R² (points) | VO2 RMSE (mL/min) | VO2max R² | "
             "ΔVO2max R² (points) | VO2max MAPE | mean spike rate | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b = base.get(r["model"], r)
        rates = [v for k, v in r.items() if k.startswith("spike_rate_")]
        rate = f"{sum(rates) / len(rates):.3f}" if rates else "–"
        lines.append(
            f"| {r['model']} | {r['measured_sparsity']:.1%} | {r['vo2_r2']:.3f} | "
            f"{100 * (r['vo2_r2'] - b['vo2_r2']):+.1f} | {r['vo2_rmse']:.0f} | "
            f"{r['vo2max_r2']:.3f} | {100 * (r['vo2max_r2'] - b['vo2max_r2']):+.1f} | "
            f"{r['vo2max_mape']:.1f}% | {rate} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def sweep_plot(rows: list[dict], path: Path, title: str = "SIMULATED test split") -> None:
    """Plot VO2 R² and VO2max R² against sparsity, one line per model, to ``path`` (PNG)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, name in [(axes[0], "vo2_r2", "window VO2 R²"),
                          (axes[1], "vo2max_r2", "test VO2max R²")]:
        for model in dict.fromkeys(r["model"] for r in rows):
            pts = sorted((r["sparsity"], r[key]) for r in rows if r["model"] == model)
            ax.plot([100 * s for s, _ in pts], [v for _, v in pts], "o-", label=model)
        ax.set_xlabel("sparsity (% of Conv1d + Linear weights that are zero)")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"accuracy against sparsity ({title})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
