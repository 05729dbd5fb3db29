"""Video ReID models: ``build_model(cfg, num_classes) -> VideoReIDModel``.

``cfg`` is anything with the model attributes: the engine's pydantic ``ModelConfig``, a plain
dict (e.g. ``checkpoint["config"]["model"]``), or :class:`ModelSpec` for users without the engine::

    from reid.models import ModelSpec, build_model
    model = build_model(ModelSpec(backbone="resnet50", aggregation="id_quality", classifier="cosine"),
                        num_classes=625)
    out = model(frames, mask, labels)   # frames [B, T, 3, H, W], mask [B, T] bool
    out["feat"], out["bn_feat"], out["logits"], out["frame_weights"]

Components come from small registries (name -> builder): :data:`BACKBONES`,
:data:`AGGREGATORS`, :data:`CLASSIFIERS`; add an entry there to add a choice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .aggregation import AGGREGATORS, build_aggregator
from .backbones import BACKBONES, build_backbone
from .heads import CLASSIFIERS, build_classifier
from .pretrained import PretrainedWeightsError, load_pretrained_backbone
from .video_model import VideoReIDModel


@dataclass
class ModelSpec:
    """Model hyper-parameters; the same attribute names as the engine's ``ModelConfig``.

    Attributes:
        backbone: ``resnet18`` | ``resnet34`` | ``resnet50`` (| ``resnet101``).
        pretrained: None (random init), ``"imagenet"`` (downloads through torchvision, only then),
            or the path of a local torchvision state dict.
        last_stride: 1 (ReID default: final map 2x larger, total stride 16) or 2 (torchvision).
        embedding_dim: 0 = backbone width (512 for resnet18/34, 2048 for resnet50); otherwise a
            linear projection of every frame feature to this size, before the BNNeck.
        bnneck: BatchNorm1d with frozen bias between ``feat`` and ``bn_feat`` (Bag of Tricks).
        aggregation: ``mean`` | ``max`` | ``quality`` | ``id_quality`` | ``attention``.
        classifier: ``linear`` | ``cosine`` (bounded logits, the stable choice for DM/IMAE).
        cosine_scale: fixed scale ``s`` of the cosine classifier (logits in ``[-s, s]``).
        dropout: dropout on ``bn_feat`` before the classifier.
    """

    backbone: str = "resnet18"
    pretrained: str | None = None
    last_stride: int = 1
    embedding_dim: int = 0
    bnneck: bool = True
    aggregation: str = "mean"
    classifier: str = "linear"
    cosine_scale: float = 16.0
    dropout: float = 0.0

    @classmethod
    def from_any(cls, cfg: Any, strict: bool = True) -> "ModelSpec":
        """Read a spec from a ``ModelSpec``, a mapping or any object with these attributes.

        Missing attributes take the defaults above. With ``strict``, a mapping with unknown keys
        is an error (a typo such as ``aggregaton`` must not silently fall back to a default);
        objects (e.g. a pydantic model) are read attribute by attribute."""
        if cfg is None:
            spec = cls()
        elif isinstance(cfg, cls):
            spec = cls(**asdict(cfg))
        else:
            names = [f.name for f in fields(cls)]
            if isinstance(cfg, Mapping):
                unknown = sorted(set(cfg) - set(names))
                if unknown and strict:
                    raise ValueError(f"model config: unknown key(s) {unknown}; known keys are {names}")
                values = {k: cfg[k] for k in names if k in cfg}
            else:
                values = {k: getattr(cfg, k) for k in names if hasattr(cfg, k)}
            spec = cls(**values)
        spec.validate()
        return spec

    def validate(self) -> None:
        """Raise ``ValueError`` naming the ``model.<key>`` of the first bad value."""
        if self.backbone not in BACKBONES:
            raise ValueError(f"model.backbone: unknown backbone {self.backbone!r}; choose one of {sorted(BACKBONES)}")
        if self.aggregation not in AGGREGATORS:
            raise ValueError(
                f"model.aggregation: unknown aggregation {self.aggregation!r}; choose one of {sorted(AGGREGATORS)}"
            )
        if self.classifier not in CLASSIFIERS:
            raise ValueError(
                f"model.classifier: unknown classifier {self.classifier!r}; choose one of {sorted(CLASSIFIERS)}"
            )
        if self.last_stride not in (1, 2):
            raise ValueError(f"model.last_stride must be 1 or 2, got {self.last_stride!r}")
        if not isinstance(self.embedding_dim, int) or self.embedding_dim < 0:
            raise ValueError(f"model.embedding_dim must be an int >= 0 (0 = backbone width), got {self.embedding_dim!r}")
        if not self.cosine_scale > 0:
            raise ValueError(f"model.cosine_scale must be > 0, got {self.cosine_scale!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        if self.pretrained is not None and not isinstance(self.pretrained, (str, Path)):
            raise ValueError(f"model.pretrained must be null, 'imagenet' or a file path, got {self.pretrained!r}")


def build_model(cfg: Any, num_classes: int, strict: bool = True) -> VideoReIDModel:
    """Build the video model described by ``cfg`` (see :class:`ModelSpec` for the attributes)
    with an identity classifier over ``num_classes`` training identities.

    ``strict=False`` ignores unknown keys of a mapping config (used when reading the config stored
    in a checkpoint written by a newer engine). Backbone weights are loaded as ``cfg.pretrained``
    says; nothing is downloaded unless it is ``"imagenet"``."""
    spec = ModelSpec.from_any(cfg, strict=strict)
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


__all__ = [
    "AGGREGATORS",
    "BACKBONES",
    "CLASSIFIERS",
    "ModelSpec",
    "PretrainedWeightsError",
    "VideoReIDModel",
    "build_model",
]
