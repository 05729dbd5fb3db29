"""``build_model(cfg, num_classes)``: a :class:`reid.models.config.ModelConfig` (or a mapping /
object with its attributes) -> :class:`reid.models.video_model.VideoReIDModel`."""

from __future__ import annotations

import logging
from typing import Any

from .aggregation import build_aggregator
from .backbones import build_backbone
from .config import ModelConfig
from .heads import build_classifier
from .init_from import init_from_checkpoint
from .pretrained import load_pretrained_backbone
from .video_model import VideoReIDModel

log = logging.getLogger(__name__)


def build_model(cfg: Any, num_classes: int, strict: bool = True) -> VideoReIDModel:
    """Build the video model described by ``cfg`` (anything :meth:`ModelConfig.from_any` reads)
    with an identity classifier over ``num_classes`` training identities.

    ``strict=False`` ignores unknown keys of a mapping config (used when reading the config stored
    in a checkpoint written by a newer engine). Backbone weights are loaded as ``cfg.pretrained``
    says; nothing is downloaded unless it is ``"imagenet"``. ``cfg.init_from`` (one of our
    checkpoints) then overwrites backbone + neck (and the classifier when the class count matches,
    :func:`reid.models.init_from.init_from_checkpoint`); ``pretrained`` is not loaded then, since
    every backbone weight would be overwritten. Parts are built in a fixed order (backbone,
    aggregator, classifier, then the model's own layers): the order of the random draws, so one
    seed gives one set of initial weights."""
    spec = ModelConfig.from_any(cfg, strict=strict)
    backbone = build_backbone(spec.backbone, spec.last_stride)
    if spec.init_from is None:
        load_pretrained_backbone(backbone, spec.backbone, spec.pretrained)
    elif spec.pretrained is not None:
        log.info("model.pretrained=%r not loaded: model.init_from=%s sets every backbone weight",
                 spec.pretrained, spec.init_from)
    dim = spec.embedding_dim or backbone.out_channels
    model = VideoReIDModel(
        backbone=backbone,
        aggregator=build_aggregator(spec.aggregation, dim),
        classifier=build_classifier(spec.classifier, dim, int(num_classes), spec.cosine_scale),
        embedding_dim=spec.embedding_dim,
        bnneck=spec.bnneck,
        dropout=spec.dropout,
    )
    if spec.init_from is not None:
        init_from_checkpoint(model, spec.init_from, backbone_name=spec.backbone)
    return model


__all__ = ["build_model"]
