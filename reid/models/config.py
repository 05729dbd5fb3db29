"""The one model configuration type: ``ModelConfig``, read by :func:`reid.models.build_model` and
used as the ``model:`` section of the training config.

``backbone``, ``aggregation`` and ``classifier`` are plain strings checked against the registries
that define them (:data:`reid.models.backbones.BACKBONES`, :data:`reid.models.aggregation.AGGREGATORS`,
:data:`reid.models.heads.CLASSIFIERS`), so adding a choice never touches this file. The registries
are imported when a config is validated, not when this module is imported: the engine's schema
imports this module and must stay importable (``tools/train.py --help``) without torch.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ModelConfig(BaseModel):
    """Model hyper-parameters (the attribute names are :func:`reid.models.build_model`'s contract).

    ``backbone``: a torchvision ResNet (``resnet18`` ... ``resnet101``) or ``timm:<name>`` for any
    timm model (:mod:`reid.models.timm_backbones`). ``pretrained``: None (random init),
    ``"imagenet"`` (downloads through torchvision, or timm's hub for a ``timm:`` backbone, only
    then; ``"timm"`` is a synonym, stored as ``"imagenet"``), or the path of a local state dict
    (``.pth`` or ``.safetensors``). ``init_from``: the path of one of our checkpoints (``best.pt``,
    ``last.pt``) whose backbone, projection, BNNeck and aggregator initialise the model
    (:mod:`reid.models.init_from`; the classifier too when the class count matches); it replaces
    ``pretrained``'s weights, so ``pretrained`` is then not loaded. ``embedding_dim``: 0 = backbone width (512 for
    resnet18/34, 2048 for resnet50), otherwise a linear projection of every frame feature to this
    size, before the BNNeck. ``classifier="cosine"`` (the default, as in ``configs/default.yaml``)
    bounds the logits by ``cosine_scale`` (the stable choice for DM/IMAE weighting).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    backbone: str = Field("resnet18", description="resnet18 | resnet34 | resnet50 | resnet101 | timm:<any timm model>")
    pretrained: str | None = Field(
        None, description="null = from scratch; 'imagenet' (or 'timm') = torchvision's / timm's weights "
                          "(downloads once); or a local .pth / .safetensors path"
    )
    init_from: str | None = Field(
        None, description="null, or one of our checkpoints (best.pt): backbone + neck loaded, classifier "
                          "re-created when the class count differs")
    last_stride: int = Field(1, ge=1, le=2, description="stride of the last backbone stage")
    embedding_dim: int = Field(0, ge=0, description="0 = backbone width, else a linear projection")
    bnneck: bool = Field(True, description="BNNeck: retrieval uses the BN'd feature")
    aggregation: str = Field(
        "mean", description="frame -> tracklet pooling: mean | max | quality | id_quality | attention")
    classifier: str = Field("cosine", description="identity head: cosine (bounded logits, the main job's) | linear")
    cosine_scale: float = Field(16.0, gt=0, description="fixed logit scale of the cosine head")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before the classifier")

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        from reid.models.backbones import BACKBONES

        return BACKBONES.check(value)  # UnknownChoiceError (a ValueError) lists the choices

    @field_validator("aggregation")
    @classmethod
    def _known_aggregation(cls, value: str) -> str:
        from reid.models.aggregation import AGGREGATORS

        return AGGREGATORS.check(value)

    @field_validator("classifier")
    @classmethod
    def _known_classifier(cls, value: str) -> str:
        from reid.models.heads import CLASSIFIERS

        return CLASSIFIERS.check(value)

    @field_validator("pretrained", "init_from", mode="before")
    @classmethod
    def _path_as_string(cls, value: Any) -> Any:
        # a pathlib.Path from Python code means the same file as its string in a YAML config
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("pretrained")
    @classmethod
    def _one_name_for_download(cls, value: str | None) -> str | None:
        # 'timm' and 'imagenet' both mean "the backbone library's pretrained weights"; one stored
        # spelling keeps every consumer (preflight, checkpoints) to a single comparison
        if isinstance(value, str) and value.strip().lower() in ("imagenet", "timm"):
            return "imagenet"
        return value

    @classmethod
    def from_any(cls, cfg: Any, strict: bool = True) -> "ModelConfig":
        """A validated ``ModelConfig`` from a ``ModelConfig`` (returned as is), ``None`` (the
        defaults), a mapping (e.g. ``checkpoint["config"]["model"]``) or any object with these
        attributes (read attribute by attribute; missing ones take the defaults).

        With ``strict``, a mapping with unknown keys is an error naming them (a typo such as
        ``aggregaton`` must not silently fall back to a default); ``strict=False`` drops them
        (a config written by a newer version). Errors are ``ValueError`` naming ``model.<key>``.
        """
        if isinstance(cfg, cls):
            return cfg
        names = list(cls.model_fields)
        if cfg is None:
            values: dict[str, Any] = {}
        elif isinstance(cfg, Mapping):
            unknown = sorted(set(cfg) - set(names))
            if unknown and strict:
                hints = [f"{k!r} -> {close[0]!r}" for k in unknown
                         if (close := difflib.get_close_matches(str(k), names, n=1))]
                hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
                raise ValueError(f"model config: unknown key(s) {unknown}; known keys are {names}{hint}")
            values = {k: cfg[k] for k in names if k in cfg}
        else:
            values = {k: getattr(cfg, k) for k in names if hasattr(cfg, k)}
        try:
            return cls(**values)
        except ValidationError as exc:
            lines = [f"model.{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')} (got {err['input']!r})"
                     for err in exc.errors()]
            raise ValueError("invalid model config:\n  " + "\n  ".join(lines)) from None


__all__ = ["ModelConfig"]
