"""Video ReID models: ``build_model(cfg, num_classes) -> VideoReIDModel``.

``cfg`` is a :class:`ModelConfig` (the training config's ``model:`` section), a plain dict (e.g.
``checkpoint["config"]["model"]``) or any object with those attributes::

    from reid.models import ModelConfig, build_model
    model = build_model(ModelConfig(backbone="resnet50", aggregation="id_quality", classifier="cosine"),
                        num_classes=625)
    out = model(frames, mask, labels)   # frames [B, T, 3, H, W], mask [B, T] bool
    out["feat"], out["bn_feat"], out["logits"], out["frame_weights"]

    # any timm model; start from one of our checkpoints (classifier re-created for 100 ids)
    build_model(ModelConfig(backbone="timm:convnext_tiny", init_from="runs/x/best.pt"), num_classes=100)

Components come from registries (:class:`reid.registry.Registry`, name -> builder):
:data:`BACKBONES` (``backbones.py``; ``timm:<name>`` resolves any timm model through
``timm_backbones.py``), :data:`AGGREGATORS` (``aggregation.py``),
:data:`CLASSIFIERS` (``heads.py``); a new choice is one builder plus one ``@X.register("name")``.

The names below are loaded on first use (PEP 562), so ``import reid.models.config`` (which the
engine's config schema does) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_EXPORTS = {
    "AGGREGATORS": "aggregation",
    "BACKBONES": "backbones",
    "CLASSIFIERS": "heads",
    "InitFromError": "init_from",
    "ModelConfig": "config",
    "PretrainedWeightsError": "pretrained",
    "TimmBackboneError": "timm_backbones",
    "VideoReIDModel": "video_model",
    "build_model": "build",
    "init_from_checkpoint": "init_from",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = list(_EXPORTS)
