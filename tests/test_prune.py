"""Global magnitude pruning: exact sparsity, global L1 ranking, masks kept through masked
fine-tuning (fit and fine_tune), gradual steps, permanent zeros, the sweep's table and
plot."""

import copy

import numpy as np
import pytest
import torch

from vo2spike.compress.blocks import block_view, flat_columns
from vo2spike.compress.prune import (
    MAC_SCORE_SCALE,
    PruneRecipe,
    block_pruned,
    detach_masked,
    effective_weight,
    fine_tune_pruned,
    importance_scores,
    is_masked,
    make_permanent,
    mask_zeros,
    prunable,
    prune_and_fine_tune,
    prune_global,
    pruning_schedule,
    sparsity,
    sparsity_sweep,
    sweep_plot,
    sweep_table,
    with_shift_leak,
)
from vo2spike.config import FineTuneConfig, Normalizer, TrainConfig
from vo2spike.data.split import split_by_person, split_masks
from vo2spike.data.windows import prepare_windows
from vo2spike.model.net import ModelConfig, VO2Net

N_PRUNABLE = 16_768  # Conv1d + Linear weights of the default VO2Net (10 inputs)
UNFOLDED = PruneRecipe(bn_folded=False)  # scores from the weights as stored


@pytest.fixture(scope="module")
def windows(sim_dir):
    """Small (train, val, test, normaliser) windows of the simulated cohort."""
    _, w = prepare_windows(sim_dir)
    masks = split_masks(w.person, split_by_person(w.person, 0))
    rng = np.random.default_rng(0)
    train, val, test = (w.subset(masks[k]) for k in ("train", "val", "test"))
    train = train.subset(rng.permutation(len(train)) < 192)
    val = val.subset(rng.permutation(len(val)) < 96)
    return train, val, test, Normalizer.fit(train)


def _model(spiking: bool = True) -> VO2Net:
    torch.manual_seed(0)
    return VO2Net(ModelConfig(spiking=spiking))


def _zeros(model) -> list[torch.Tensor]:
    return [effective_weight(m) == 0 for m, _ in prunable(model)]


@pytest.mark.parametrize("amount", [0.5, 0.7, 0.95])
@pytest.mark.parametrize("spiking", [True, False])
def test_global_pruning_exact_fraction_smallest_magnitudes_rest_untouched(amount, spiking):
    model = _model(spiking)
    pruned = prune_global(model, amount)
    assert is_masked(pruned) and not is_masked(model)
    assert sum(effective_weight(m).numel() for m, _ in prunable(pruned)) == N_PRUNABLE
    assert sparsity(pruned) == round(amount * N_PRUNABLE) / N_PRUNABLE
    assert sparsity(model) == 0.0
    # Global L1 over the scores: every pruned weight scores no higher than every kept one,
    # over all layers; a score is |w|, or MAC_SCORE_SCALE x its block's mean
    # |w x BatchNorm gain| (the heads are never pruned).
    scores = importance_scores(model)
    orig = torch.cat([scores[(m, n)].flatten() for m, n in prunable(model)])
    gone = torch.cat([z.flatten() for z in _zeros(pruned)])
    assert orig[gone].max() <= orig[~gone].min()
    # The multiply-accumulate layers lose whole 2 x 4 blocks (at most one block is split,
    # where the ranking's cut falls).
    split = 0
    for module in block_pruned(pruned):
        w = effective_weight(module).numpy()
        zero = block_view(flat_columns(w == 0))
        real = block_view(flat_columns(np.ones_like(w, dtype=bool)))  # not padding
        mixed = (zero & real).any(axis=(2, 3)) & (~zero & real).any(axis=(2, 3))
        split += int(mixed.sum())
    assert split <= 1
    # Biases, BatchNorm and the kept weights are untouched.
    a, b = model.state_dict(), make_permanent(pruned).state_dict()
    assert a.keys() == b.keys()
    for k in a:
        if k.endswith("weight") and b[k].dim() > 1:
            assert torch.equal(b[k][b[k] != 0], a[k][b[k] != 0])
        else:
            assert torch.equal(a[k], b[k]), k


def test_masked_fit_and_fine_tune_keep_exactly_the_pruned_weights_zero(windows):
    train, val, test, norm = windows
    model = _model()
    masked = prune_global(model, 0.7)
    masks = [~z for z in _zeros(masked)]
    before = [effective_weight(m).clone() for m, _ in prunable(masked)]
    pruned = prune_and_fine_tune(model, norm, train, val, test, 0.7,
                                 TrainConfig(batch_size=64), FineTuneConfig(epochs=1), seed=0,
                                 epochs=1, steps=())  # one-shot
    assert not is_masked(pruned) and set(pruned.state_dict()) == set(model.state_dict())
    after = [m.weight.detach() for m, _ in prunable(pruned)]
    for keep, w0, w1 in zip(masks, before, after, strict=True):
        assert torch.equal(w1 != 0, keep)  # exactly the pruned weights are zero
        assert not keep.any() or not torch.equal(w0[keep], w1[keep])  # the others tuned
    assert sparsity(pruned) == round(0.7 * N_PRUNABLE) / N_PRUNABLE
    # A plain pruned model fine-tuned per fold (leave-one-person-out) keeps its zeros.
    again = mask_zeros(pruned)
    assert is_masked(again) and not is_masked(pruned)
    tuned = fine_tune_pruned(pruned, test, train, norm, FineTuneConfig(epochs=1), 0)
    assert not is_masked(tuned)
    for w0, w1 in zip(after, [m.weight.detach() for m, _ in prunable(tuned)], strict=True):
        assert torch.equal(w1 != 0, w0 != 0)
    assert not torch.equal(after[-1], tuned.head_vo2max.weight.detach())


def test_pruning_schedule():
    assert pruning_schedule(0.7) == [0.4, 0.6, 0.7]
    assert pruning_schedule(0.9, (0.5,)) == [0.45, 0.9]
    assert pruning_schedule(0.7, ()) == [0.7]
    for bad in ((0.6, 0.4), (0.0, 0.5), (0.5, 1.0)):
        with pytest.raises(ValueError, match="gradual steps"):
            pruning_schedule(0.7, bad)


def test_gradual_pruning_keeps_each_steps_zeros_and_ranks_the_fine_tuned_weights(windows):
    train, val, _, norm = windows
    model, cfg = _model(), TrainConfig(batch_size=64)
    gradual = prune_and_fine_tune(model, norm, train, val, None, 0.7, cfg, seed=0, epochs=1)
    assert not is_masked(gradual)
    assert sparsity(gradual) == round(0.7 * N_PRUNABLE) / N_PRUNABLE
    zeros = torch.cat([z.flatten() for z in _zeros(gradual)])
    first = torch.cat([z.flatten() for z in _zeros(prune_global(model, 0.4))])
    one_shot = torch.cat([z.flatten() for z in _zeros(prune_global(model, 0.7))])
    assert zeros[first].all()  # the first step's zeros (from the starting weights) stay zero
    # Later steps rank the fine-tuned weights: not the one-shot choice of the start's ones.
    assert not torch.equal(zeros, one_shot)
    # Without fine-tuning between the steps, gradual pruning is one-shot pruning.
    still = prune_and_fine_tune(model, norm, train, val, None, 0.7, cfg, seed=0, epochs=0)
    assert torch.equal(torch.cat([z.flatten() for z in _zeros(still)]), one_shot)


def test_masked_model_can_be_deep_copied_after_a_training_step(windows):
    train, val, _, norm = windows
    masked = prune_global(_model(), 0.5)
    x = torch.from_numpy(norm.inputs(train.x[:4]))
    masked(x).vo2.sum().backward()  # weight is now a non-leaf of this graph
    with pytest.raises(RuntimeError):
        copy.deepcopy(masked)
    copied = copy.deepcopy(detach_masked(masked))
    assert is_masked(copied) and sparsity(copied) == sparsity(masked)


def test_sweep_rows_table_and_plot(windows, tmp_path):
    train, val, test, norm = windows
    rows = sparsity_sweep({"spiking": _model(), "twin": _model(False)}, norm, train, val, test,
                          sparsities=(0.8,), train_cfg=TrainConfig(batch_size=96), epochs=1)
    assert [(r["model"], r["sparsity"]) for r in rows] == [
        ("spiking", 0.0), ("spiking", 0.8), ("twin", 0.0), ("twin", 0.8)]
    assert rows[1]["measured_sparsity"] == round(0.8 * N_PRUNABLE) / N_PRUNABLE
    assert "spike_rate_lif1" in rows[0] and "spike_rate_lif1" not in rows[2]
    table = sweep_table(rows)
    assert table.count("\n") == 5 and "| spiking | 80.0% |" in table
    sweep_plot(rows, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_block_scores_and_shift_leak():
    model = _model()
    conv = model.tcn.blocks[1].conv
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[3, 5, 2] = 8.0  # one weight: its block is rows 2-3, columns 2*32+4..7
    score = importance_scores(model, UNFOLDED)[(conv, "weight")]
    assert score[3, 5, 2] == pytest.approx(MAC_SCORE_SCALE * 8.0 / 8)
    assert score[2, 7, 2] == score[3, 5, 2] and score[2, 8, 2] == 0 and score[3, 5, 1] == 0
    leaky = with_shift_leak(model)
    assert leaky.config.beta == leaky.layer1.beta == leaky.layer2.beta == 0.90625
    assert model.config.beta == 0.9  # a copy
    twin = _model(spiking=False)
    assert with_shift_leak(twin).config == twin.config


def test_recipe_keeps_heads_and_folds_batchnorm():
    model = _model()
    heads = [model.head_vo2.weight, model.head_vo2max.weight]
    with torch.no_grad():
        for h in heads:
            h.mul_(1e-6)  # the smallest weights of the network: the first to go by |w|
    plain = make_permanent(prune_global(model, 0.7, PruneRecipe(keep_heads=False)))
    assert (plain.head_vo2.weight == 0).all() and (plain.head_vo2max.weight == 0).all()
    kept = make_permanent(prune_global(model, 0.7))  # the default keeps them
    assert (kept.head_vo2.weight != 0).all() and (kept.head_vo2max.weight != 0).all()
    assert sparsity(kept) == round(0.7 * N_PRUNABLE) / N_PRUNABLE  # still 70% in all

    block = model.tcn.blocks[1]
    with torch.no_grad():
        block.conv.weight.fill_(1.0)
        block.bn.weight.fill_(1.0)
        block.bn.weight[0] = 4.0  # output channel 0 counts four times more once folded
        block.bn.running_var.fill_(1.0 - block.bn.eps)
    plain = importance_scores(model, UNFOLDED)[(block.conv, "weight")]
    folded = importance_scores(model)[(block.conv, "weight")]  # the default folds
    assert torch.equal(plain[0], plain[2])
    # rows 0-1 form a block: mean of 4 and 1 (folded gains) times the scale
    assert folded[0, 0, 0] == pytest.approx(MAC_SCORE_SCALE * 2.5)
    assert folded[2, 0, 0] == pytest.approx(MAC_SCORE_SCALE * 1.0)
