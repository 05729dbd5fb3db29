"""VideoReIDModel: shapes, masks, ID-aware quality, BNNeck, gradients, the build_model front door.

resnet18 at 32x16 input (64x32 for the stride test), a handful of frames: CPU-cheap.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from reid.models import AGGREGATORS, ModelConfig, build_model
from reid.models.aggregation import masked_softmax

H, W = 32, 16
NUM_CLASSES = 5
ALL_AGGREGATIONS = sorted(AGGREGATORS)


def make_model(aggregation="mean", classifier="linear", **kw):
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone="resnet18", aggregation=aggregation, classifier=classifier, **kw), NUM_CLASSES)


@pytest.fixture(scope="module")
def models():
    """One model per aggregation, with non-trivial BNNeck running statistics so the eval-mode BN
    is not the identity (a test that passes with identity BN proves less)."""
    out = {}
    for agg in ALL_AGGREGATIONS:
        m = make_model(agg, classifier="cosine" if agg == "id_quality" else "linear")
        with torch.no_grad():
            m.bnneck.bn.running_mean.uniform_(-0.5, 0.5)
            m.bnneck.bn.running_var.uniform_(0.5, 2.0)
        out[agg] = m.eval()
    return out


def clip(t=5, b=1, seed=1, size=(H, W)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 3, *size, generator=g)


@pytest.mark.parametrize("agg", ALL_AGGREGATIONS)
def test_forward_shapes_and_weights(models, agg):
    model = models[agg]
    frames = clip(t=4, b=2)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    with torch.no_grad():
        out = model(frames, mask, labels=torch.tensor([0, 3]))
    d = model.feat_dim
    assert out["feat"].shape == (2, d) and out["bn_feat"].shape == (2, d)
    assert out["logits"].shape == (2, NUM_CLASSES)
    assert out["frame_weights"].shape == (2, 4)
    torch.testing.assert_close(out["frame_weights"].sum(1), torch.ones(2))
    assert (out["frame_weights"][~mask] == 0).all(), "padded frames must get exactly zero weight"
    assert ("frame_logits" in out) == (agg == "id_quality")
    if agg == "id_quality":
        assert out["frame_logits"].shape == (2, 4, NUM_CLASSES)
    assert torch.isfinite(out["bn_feat"]).all()


@pytest.mark.parametrize("agg", ALL_AGGREGATIONS)
def test_padding_does_not_change_outputs_eval(models, agg):
    """A clip padded with garbage frames == the same clip without padding."""
    model = models[agg]
    real = clip(t=3, seed=2)
    padded = torch.cat([real, 100 * torch.randn(1, 4, 3, H, W)], dim=1)
    mask = torch.tensor([[True] * 3 + [False] * 4])
    with torch.no_grad():
        ref = model(real)
        out = model(padded, mask)
    for key in ("feat", "bn_feat", "logits"):
        torch.testing.assert_close(out[key], ref[key], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["frame_weights"][:, :3], ref["frame_weights"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("agg", ["mean", "attention"])
def test_padding_does_not_reach_batchnorm_in_training(agg):
    """In train mode the backbone's BN uses batch statistics: padded frames must not enter them."""
    model = make_model(agg).train()
    real = clip(t=6, b=2, seed=3)
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 3 + [False] * 3])
    a, b = real.clone(), real.clone()
    a[~mask] = 50 * torch.randn(int((~mask).sum()), 3, H, W)
    b[~mask] = -7.0
    out_a = model(a, mask)
    out_b = model(b, mask)
    torch.testing.assert_close(out_a["feat"], out_b["feat"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_a["logits"], out_b["logits"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("agg", ALL_AGGREGATIONS)
def test_nan_in_padded_frame_features_cannot_leak(models, agg):
    model = models[agg]
    feats = torch.rand(2, 3, model.feat_dim)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    ref = model.aggregate(feats[:, :2].clone(), mask[:, :2])
    feats[0, 2] = float("nan")
    out = model.aggregate(feats, mask)
    assert torch.isfinite(out["bn_feat"]).all()
    torch.testing.assert_close(out["bn_feat"][0], ref["bn_feat"][0], rtol=1e-5, atol=1e-5)


def test_attention_pools_a_convex_combination_of_frames(models):
    """Identity values: the pooled vector lies inside the per-channel range of the real frames."""
    model = models["attention"]
    feats = torch.randn(1, 5, model.feat_dim)
    mask = torch.tensor([[True, True, True, True, False]])
    feats[0, 4] = 1e3  # padding far outside the range
    pooled = model.aggregate(feats, mask)["feat"][0]
    real = feats[0, :4]
    assert (pooled >= real.min(0).values - 1e-5).all() and (pooled <= real.max(0).values + 1e-5).all()


def test_frame_level_bn_never_updates_running_statistics():
    model = make_model("id_quality", classifier="cosine").train()
    before = model.bnneck.bn.running_mean.clone(), model.bnneck.bn.running_var.clone()
    model.frame_logits(torch.randn(2, 3, model.feat_dim) + 5)
    torch.testing.assert_close(model.bnneck.bn.running_mean, before[0], rtol=0, atol=0)
    torch.testing.assert_close(model.bnneck.bn.running_var, before[1], rtol=0, atol=0)


def test_max_aggregation_ignores_huge_padded_features(models):
    model = models["max"]
    feats = torch.rand(1, 4, model.feat_dim)
    feats[0, 3] = 1e6
    mask = torch.tensor([[True, True, True, False]])
    out = model.aggregate(feats, mask)
    torch.testing.assert_close(out["feat"], feats[:, :3].max(dim=1).values)
    assert out["frame_weights"][0, 3] == 0


@pytest.fixture(scope="module")
def id_quality_model():
    """A cosine classifier whose class c points along axis c, BN = identity in eval mode."""
    model = make_model("id_quality", classifier="cosine").eval()
    d = model.feat_dim
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.weight[torch.arange(NUM_CLASSES), torch.arange(NUM_CLASSES)] = 1.0
    return model, d


def test_id_quality_down_weights_frames_of_another_identity(id_quality_model):
    model, d = id_quality_model
    label = 2
    feats = torch.zeros(1, 4, d)
    feats[0, [0, 1, 3], label] = 1.0  # frames recognised as the tracklet's identity
    feats[0, 2, 4] = 1.0  # a frame that looks like identity 4 (wrong person / occluder)
    out = model.aggregate(feats, labels=torch.tensor([label]))
    w = out["frame_weights"][0]
    assert w[2] < 0.01 * w[0], f"the off-identity frame should be strongly down-weighted, got {w.tolist()}"
    torch.testing.assert_close(w[[0, 1, 3]], torch.full((3,), w[0].item()))
    # the weights are p(label | frame) normalised over the frames
    p = F.softmax(out["frame_logits"][0], dim=-1)[:, label]
    torch.testing.assert_close(w, p / p.sum())
    # with the label of the outlier frame, the weighting flips
    flipped = model.aggregate(feats, labels=torch.tensor([4]))["frame_weights"][0]
    assert flipped[2] > 0.9


def test_id_quality_confidence_proxy_is_classifier_confidence():
    from reid.models.aggregation import IDQualityAggregator
    agg = IDQualityAggregator(test_identity="confidence")
    logits = torch.full((1, 3, 5), 0.0)
    logits[0, 0, 1] = 6.0  # confident: identity 1
    logits[0, 1, 3] = 6.0  # confident: identity 3
    # frame 2 ambiguous: all logits equal
    _, w = agg(torch.randn(1, 3, 4), torch.ones(1, 3, dtype=torch.bool), frame_logits=logits)
    w = w[0]
    assert w[2] < w[0] and w[2] < w[1]
    torch.testing.assert_close(w[0], w[1])


def _toy_tracklet():
    """The issue's toy example: three frames of the tracklet's identity (class 0) at p = 0.65 and
    one outlier confidently classified as another identity (class 1)."""
    clean = torch.tensor([0.65, 0.15, 0.10, 0.10], dtype=torch.float64)
    outlier = torch.tensor([0.0078, 0.9750, 0.0086, 0.0086], dtype=torch.float64)
    logits = torch.stack([clean, clean, clean, outlier]).log()[None]  # [1, 4, 4]
    return logits, torch.ones(1, 4, dtype=torch.bool), torch.randn(1, 4, 3, dtype=torch.float64)


def test_id_quality_test_time_down_weights_the_frame_that_disagrees_with_the_tracklet():
    # issue 10, fix 3: the old proxy (max probability) gave the outlier the largest weight.
    from reid.models.aggregation import IDQualityAggregator
    logits, mask, feats = _toy_tracklet()
    agg = IDQualityAggregator()
    _, train_w = agg(feats, mask, frame_logits=logits, labels=torch.tensor([0]))
    torch.testing.assert_close(train_w[0], torch.tensor([0.3321, 0.3321, 0.3321, 0.0040], dtype=torch.float64),
                               atol=1e-3, rtol=0)
    _, test_w = agg(feats, mask, frame_logits=logits)  # consensus identity, the default
    torch.testing.assert_close(test_w, train_w)  # the consensus here is the label
    assert test_w[0, 3] < 0.02 * test_w[0, 0]
    assert agg.last_stats["identity"] == "consensus"
    torch.testing.assert_close(agg.last_stats["p"][0], logits[0].exp()[:, 0])
    _, old_w = IDQualityAggregator(test_identity="confidence")(feats, mask, frame_logits=logits)
    torch.testing.assert_close(old_w[0], torch.tensor([0.222, 0.222, 0.222, 0.333], dtype=torch.float64),
                               atol=2e-3, rtol=0)


def test_id_quality_padding_gets_zero_weight_at_test_time():
    from reid.models.aggregation import IDQualityAggregator
    logits, mask, feats = _toy_tracklet()
    mask = mask.clone()
    mask[0, 1] = False
    _, w = IDQualityAggregator()(feats, mask, frame_logits=logits)
    assert w[0, 1] == 0 and torch.isclose(w.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_id_quality_rejects_test_labels(id_quality_model):
    model, d = id_quality_model
    with pytest.raises(ValueError, match="label -1"):
        model.aggregate(torch.rand(1, 2, d), labels=torch.tensor([-1]))


def test_last_stride_one_doubles_final_map():
    x = torch.randn(1, 3, 64, 32)
    with torch.no_grad():
        s2 = make_model(last_stride=2).eval().backbone(x)
        s1 = make_model(last_stride=1).eval().backbone(x)
    assert s2.shape[-2:] == (2, 1)
    assert s1.shape[-2:] == (2 * s2.shape[-2], 2 * s2.shape[-1])


def test_bnneck_bias_frozen_and_features_differ():
    model = make_model("mean").train()
    out = model(clip(t=3, b=3))
    assert not model.bnneck.bn.bias.requires_grad
    assert torch.count_nonzero(model.bnneck.bn.bias) == 0
    # train-mode BNNeck: batch-standardised features (mean 0 per channel)
    torch.testing.assert_close(out["bn_feat"].mean(0), torch.zeros(model.feat_dim), atol=1e-4, rtol=0)
    assert not torch.allclose(out["feat"], out["bn_feat"])


def test_without_bnneck_bn_feat_is_feat():
    model = make_model("mean", bnneck=False).eval()
    with torch.no_grad():
        out = model(clip(t=2))
    assert model.bnneck is None
    torch.testing.assert_close(out["bn_feat"], out["feat"])


def test_embedding_dim_projects_before_bnneck():
    model = make_model("attention", embedding_dim=48).eval()
    with torch.no_grad():
        out = model(clip(t=3))
    assert out["feat"].shape == (1, 48) and out["bn_feat"].shape == (1, 48)
    assert model.encode_frames(torch.randn(2, 3, H, W)).shape == (2, 48)
    assert model.bnneck.bn.num_features == 48


def test_cosine_logits_bounded_by_scale():
    model = make_model("mean", classifier="cosine", cosine_scale=7.5).eval()
    with torch.no_grad():
        logits = model(1e3 * clip(t=2, b=2))["logits"]
    assert logits.abs().max() <= 7.5 + 1e-4
    assert logits.abs().max() > 0.1


@pytest.mark.parametrize("agg", ["quality", "attention", "id_quality"])
def test_gradients_reach_backbone_and_heads(agg):
    model = make_model(agg, classifier="cosine" if agg == "id_quality" else "linear").train()
    out = model(clip(t=2, b=2), labels=torch.tensor([1, 2]))
    loss = F.cross_entropy(out["logits"], torch.tensor([1, 2])) + out["feat"].pow(2).mean()
    loss.backward()
    must_learn = {
        "backbone.conv1.weight": model.backbone.conv1.weight,
        "backbone.layer4.1.conv2.weight": model.backbone.layer4[1].conv2.weight,
        "bnneck.bn.weight": model.bnneck.bn.weight,
        "classifier.weight": model.classifier.weight,
    }
    must_learn.update({f"aggregator.{n}": p for n, p in model.aggregator.named_parameters()})
    if agg == "id_quality":  # weights come from detached probabilities: no gradient through them
        assert not out["frame_weights"].requires_grad
    for name, param in must_learn.items():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert model.bnneck.bn.bias.grad is None


def test_channels_last_gives_same_features(models):
    model = make_model("mean").eval()
    frames = clip(t=3)
    with torch.no_grad():
        ref = model(frames)["bn_feat"]
        model = model.to(memory_format=torch.channels_last)
        assert model._prefers_channels_last()
        out = model(frames)["bn_feat"]
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_empty_clip_and_bad_shapes_raise(models):
    model = models["mean"]
    with pytest.raises(ValueError, match="no valid frame"):
        model(clip(t=2, b=2), torch.tensor([[True, False], [False, False]]))
    with pytest.raises(ValueError, match=r"\[B, T, 3, H, W\]"):
        model(torch.randn(2, 3, H, W))
    with pytest.raises(ValueError, match="mask must have shape"):
        model(clip(t=2), torch.ones(1, 3, dtype=torch.bool))


def test_masked_softmax_zero_outside_mask():
    scores = torch.tensor([[1.0, 2.0, 3.0]])
    w = masked_softmax(scores, torch.tensor([[True, False, True]]))
    torch.testing.assert_close(w, torch.tensor([[1.0, 0.0, torch.e**2]]) / (1 + torch.e**2))


# -- build_model front door ------------------------------------------------------------------

def test_build_model_accepts_dict_object_and_config():
    d = {"backbone": "resnet18", "aggregation": "max", "embedding_dim": 32, "classifier": "cosine", "cosine_scale": 8.0}
    for cfg in (d, SimpleNamespace(**d), ModelConfig(**d)):
        model = build_model(cfg, 3)
        assert model.feat_dim == 32
        assert model.classifier.scale == 8.0
        assert type(model.aggregator).__name__ == "MaxAggregator"


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"backbone": "resnet7"}, "model.backbone"),
        ({"backbone": "resnet18", "aggregation": "median"}, "model.aggregation"),
        ({"backbone": "resnet18", "classifier": "arc"}, "model.classifier"),
        ({"backbone": "resnet18", "last_stride": 3}, "model.last_stride"),
        ({"backbone": "resnet18", "embedding_dim": -1}, "model.embedding_dim"),
        ({"backbone": "resnet18", "cosine_scale": 0}, "model.cosine_scale"),
        ({"backbone": "resnet18", "dropout": 1.0}, "model.dropout"),
        ({"backbone": "resnet18", "aggregaton": "max"}, "unknown key"),
    ],
)
def test_build_model_rejects_bad_config(cfg, match):
    with pytest.raises(ValueError, match=match):
        build_model(cfg, 3)


def test_build_model_accepts_the_engine_model_config():
    config = pytest.importorskip("reid.engine.config")
    model = build_model(config.ModelConfig(backbone="resnet18", aggregation="id_quality", classifier="cosine",
                                           embedding_dim=16, cosine_scale=10.0), 3)
    assert model.feat_dim == 16 and model.classifier.scale == 10.0
    assert model.aggregator.needs_frame_logits


def test_build_model_non_strict_ignores_unknown_keys():
    model = build_model({"backbone": "resnet18", "future_option": 1}, 3, strict=False)
    assert model.feat_dim == 512
