"""``build_model(cfg, num_classes)``: a :class:`reid.models.config.ModelConfig` (or a mapping /
object with its attributes) -> :class:`reid.models.video_model.VideoReIDModel`."""

from __future__ import annotations

from typing import Any

from .aggregation import build_aggregator
from .backbones import build_backbone
from .config import ModelConfig
from .heads import build_classifier
from .pretrained import load_pretrained_backbone
from .video_model import VideoReIDModel


def build_model(cfg: Any, num_classes: int, strict: bool = True) -> VideoReIDModel:
    """Build the video model described by ``cfg`` (anything :meth:`ModelConfig.from_any` reads)
    with an identity classifier over ``num_classes`` training identities.

    ``strict=False`` ignores unknown keys of a mapping config (used when reading the config stored
    in a checkpoint written by a newer engine). Backbone weights are loaded as ``cfg.pretrained``
    says; nothing is downloaded unless it is ``"imagenet"``. Parts are built in a fixed order
    (backbone, aggregator, classifier, then the model's own layers): the order of the random
    draws, so one seed gives one set of initial weights."""
    spec = ModelConfig.from_any(cfg, strict=strict)
    backbone = build_backbone(spec.backbone, spec.last_stride)
    load_pretrained_backbone(backbone, spec.backbone, spec.pretrained)
    dim = spec.embedding_dim or backbone.out_channels
    return VideoReIDModel(
        backbone=backbone,
        aggregator=build_aggregator(spec.aggregation, dim),
        classifier=build_classifier(spec.classifier, dim, int(num_classes), spec.cosine_scale),
        embedding_dim=spec.embedding_dim,
        bnneck=spec.bnneck,
        dropout=spec.dropout,
    )


__all__ = ["build_model"]
