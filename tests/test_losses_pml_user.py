"""A pytorch-metric-learning user swaps our losses in (issue 10): miners, reducers,
MultipleLosses, our CrossBatchMemory, DistributedLossWrapper (single process) and the trainers'
loss call; values and gradients are asserted, not only that it runs."""

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners, reducers
from pytorch_metric_learning.utils import distributed as pml_dist

from reid.errors import UserError
from reid.losses import (CosineClassifierLoss, CrossBatchMemory, InstanceCrossEntropyLoss, RankedListLoss,
                         WeightedCrossEntropyLoss)


def _data(seed=0, n=12, c=4, dim=6):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(c).repeat_interleave(n // c)
    return torch.randn(n, dim, generator=g, dtype=torch.float64), labels


def _grad(fn, x):
    x = x.clone().requires_grad_(True)
    value = fn(x)
    value.backward()
    return value.detach(), x.grad


def test_weighted_ce_inside_multiple_losses_with_miners():
    logits, labels = _data(c=6, n=12, dim=6)
    wce = WeightedCrossEntropyLoss(scheme="imae")
    combo = pml_losses.MultipleLosses([wce, RankedListLoss()], miners=[None, miners.MultiSimilarityMiner()],
                                      weights=[1.0, 0.5])
    value, grad = _grad(lambda z: combo(z, labels), logits)
    # the mined tuple is ignored by the classification loss: its part equals a plain call
    v_ce, g_ce = _grad(lambda z: WeightedCrossEntropyLoss(scheme="imae")(z, labels), logits)
    mined = miners.MultiSimilarityMiner()(logits, labels)
    v_r, g_r = _grad(lambda z: RankedListLoss()(z, labels, mined), logits)
    torch.testing.assert_close(value, v_ce + 0.5 * v_r)
    torch.testing.assert_close(grad, g_ce + 0.5 * g_r)


@pytest.mark.parametrize("reducer", [reducers.MeanReducer(), reducers.AvgNonZeroReducer()])
def test_weighted_ce_mean_reducers_see_per_example_ce_and_keep_the_dm_gradient(reducer):
    logits, labels = _data(seed=1)
    value, grad = _grad(lambda z: WeightedCrossEntropyLoss(scheme="imae", reducer=reducer)(z, labels), logits)
    torch.testing.assert_close(value, F.cross_entropy(logits, labels))  # the reducer saw CE_i
    _, g_core = _grad(lambda z: WeightedCrossEntropyLoss(scheme="imae")(z, labels), logits)
    torch.testing.assert_close(grad, g_core, rtol=1e-10, atol=1e-14)


def test_weighted_ce_threshold_reducer_filters_on_the_example_loss():
    logits, labels = _data(seed=2)
    ce = F.cross_entropy(logits, labels, reduction="none")
    srt = ce.sort().values
    low = float(srt[5] + srt[6]) / 2  # between two examples' losses, not on one
    keep = ce > low
    value, grad = _grad(lambda z: WeightedCrossEntropyLoss(scheme="imae", reducer=reducers.ThresholdReducer(low=low))(
        z, labels), logits)
    torch.testing.assert_close(value, ce[keep].mean())
    _, g_core = _grad(lambda z: WeightedCrossEntropyLoss(scheme="imae")(z, labels), logits)
    k, n = int(keep.sum()), len(labels)
    torch.testing.assert_close(grad[keep], g_core[keep] * n / k, rtol=1e-10, atol=1e-14)
    assert torch.all(grad[~keep] == 0)


def test_classification_losses_reject_distance_and_ref_emb():
    from pytorch_metric_learning.distances import CosineSimilarity
    with pytest.raises(UserError, match="distance= is not used"):
        CosineClassifierLoss(6, 4, distance=CosineSimilarity())
    with pytest.raises(UserError, match="distance= is not meaningful"):
        WeightedCrossEntropyLoss(distance=CosineSimilarity())
    logits, labels = _data()
    with pytest.raises(UserError, match="ref_emb"):
        WeightedCrossEntropyLoss()(logits, labels, None, logits, labels)


def test_cross_batch_memory_with_our_rll_ranks_against_the_memory():
    emb, labels = _data(seed=3)
    memory = CrossBatchMemory(RankedListLoss(Tn=4.0), embedding_size=6, memory_size=24)
    memory(emb[:6], labels[:6])  # fill part of the queue
    value, grad = _grad(lambda e: memory(e, labels[6:]), emb[6:])
    assert value > 0 and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_distributed_wrapper_single_process_equals_the_loss():
    emb, labels = _data(seed=4)
    wrapped = pml_dist.DistributedLossWrapper(InstanceCrossEntropyLoss(temperature=0.5, scheme="imae"))
    v1, g1 = _grad(lambda e: wrapped(e, labels), emb)
    v2, g2 = _grad(lambda e: InstanceCrossEntropyLoss(temperature=0.5, scheme="imae")(e, labels), emb)
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(g1, g2)


def test_trainers_loss_call_metric_loss_only_and_with_classifier():
    # trainers.MetricLossOnly calls loss_funcs["metric_loss"](embeddings, labels, indices_tuple);
    # TrainWithClassifier adds loss_funcs["classifier_loss"](logits, labels): both call forms here.
    emb, labels = _data(seed=5, c=4)
    mined = miners.TripletMarginMiner(margin=0.5)(emb, labels)
    metric = RankedListLoss(Tn=4.0)
    v, g = _grad(lambda e: metric(e, labels, mined), emb)
    assert v > 0 and torch.isfinite(g).all()
    logits = emb[:, :4]
    v_c, g_c = _grad(lambda z: WeightedCrossEntropyLoss(scheme="cce", normalize="n")(z, labels, mined), logits)
    v_ref, g_ref = _grad(lambda z: F.cross_entropy(z, labels), logits)
    torch.testing.assert_close(v_c, v_ref)
    torch.testing.assert_close(g_c, g_ref)
