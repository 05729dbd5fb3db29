"""The video ReID model: frame backbone -> (projection) -> set aggregation -> BNNeck -> classifier.

Data path for a clip batch ``frames [B, T, 3, H, W]`` with ``mask [B, T]``::

    f_t   = P(GAP(backbone(frame_t)))           per valid frame; P = Linear if embedding_dim > 0
    f     = aggregate({f_t : mask_t})           mean | max | quality | id_quality | attention
    f_bn  = BNNeck(f)                           BatchNorm1d, bias frozen at 0 (Bag of Tricks)
    z     = classifier(dropout(f_bn))           linear (no bias) or cosine * scale

``feat = f`` feeds metric (ranking) losses, ``bn_feat = f_bn`` is the retrieval feature and
``logits = z`` feeds the identity loss. Only valid frames go through the backbone, so padding
never reaches a BatchNorm statistic either (in training mode the backbone's BN batch statistics
are computed over the real frames of the batch only). ``frames`` may be uint8 pixels (what the
datasets hand over); the first op then normalises them on the model's device (``encode_frames``).

Export path (:meth:`VideoReIDModel.retrieval_features`, wrapped as a module by
:class:`RetrievalFeatures`): ``frames [B, T, 3, H, W]``, ``mask [B, T]`` -> ``bn_feat [B, D]`` with
no data-dependent shape anywhere (no ``frames[mask]``, no ``nonzero``), so ``torch.jit.trace``,
``torch.export`` and the ONNX exporter see one static graph with a free batch size. All ``B * T``
frames go through the backbone (in eval mode BatchNorm uses running statistics, so a padded frame
cannot change a real one) and padding is removed by masked arithmetic afterwards.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .aggregation import Aggregator
from .heads import BNNeck


class VideoReIDModel(nn.Module):
    """Clip-level video ReID network.

    Args:
        backbone: frame trunk ``[N, 3, H, W] -> [N, C, h, w]`` with attribute ``out_channels``.
        aggregator: a :class:`reid.models.aggregation.Aggregator`.
        classifier: ``[.., D] -> [.., num_classes]`` identity head.
        embedding_dim: 0 keeps the backbone width ``C`` as ``D``; otherwise a linear projection
            ``C -> embedding_dim`` is applied to every frame feature (before aggregation, so every
            aggregator and the frame-level classifier work in the same D-dim space).
        bnneck: False replaces BNNeck by the identity (then ``bn_feat`` is ``feat``).
        dropout: dropout probability on ``bn_feat`` before the classifier (training only).
    """

    def __init__(
        self,
        backbone: nn.Module,
        aggregator: Aggregator,
        classifier: nn.Module,
        embedding_dim: int = 0,
        bnneck: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        width = int(backbone.out_channels)
        self.backbone = backbone
        self.projection = nn.Linear(width, embedding_dim) if embedding_dim > 0 else nn.Identity()
        self.feat_dim = embedding_dim if embedding_dim > 0 else width
        self.aggregator = aggregator
        self.bnneck = BNNeck(self.feat_dim) if bnneck else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = classifier

    # -- frames -------------------------------------------------------------------------------
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Frame features ``[N, D]`` for frames ``[N, 3, H, W]`` (global average pooling, then the
        optional projection). If the model was converted with ``.to(memory_format=torch.channels_last)``
        the frames are converted too (a 5-D clip tensor cannot be channels_last itself).

        Frames are either the normalised float input or raw ``uint8`` pixels, which are normalised
        here first, on the model's device (:func:`reid.data.uint8_frames.normalize_frames`:
        ``(x / 255 - mean) / std``, the test transform bit for bit): the datasets hand over uint8
        pixels, a quarter of the bytes. Every entry point (``forward``, ``retrieval_features``,
        extraction) goes through here; a float input (export, the studies) is unchanged."""
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"encode_frames expects frames [N, 3, H, W], got {tuple(frames.shape)}")
        channels_last = self._prefers_channels_last()
        if frames.dtype == torch.uint8:
            from reid.data.uint8_frames import normalize_frames  # lazy: keeps albumentations out of import reid.models

            frames = normalize_frames(frames, channels_last=channels_last)
        elif channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        fmap = self.backbone(frames)
        return self.projection(F.adaptive_avg_pool2d(fmap, 1).flatten(1))

    # -- heads --------------------------------------------------------------------------------
    def _bn(self, feat: torch.Tensor) -> torch.Tensor:
        return self.bnneck(feat) if self.bnneck is not None else feat

    def _bn_frames(self, frame_feats: torch.Tensor) -> torch.Tensor:
        return self.bnneck.frame_forward(frame_feats) if self.bnneck is not None else frame_feats

    def frame_logits(self, frame_feats: torch.Tensor) -> torch.Tensor:
        """Identity logits of individual frames ``[..., D] -> [..., C]``: classifier on the frames'
        BN features, BN in inference form (running statistics, never updated by frames)."""
        return self.classifier(self._bn_frames(frame_feats))

    def aggregate(
        self, frame_feats: torch.Tensor, mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
        *, check_mask: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Pool frame features ``[B, T, D]`` (``mask [B, T]``, True = real frame) into tracklet
        outputs: ``feat``, ``bn_feat``, ``logits``, ``frame_weights`` and, for aggregators that
        need them, ``frame_logits [B, T, C]`` (zero features at padded positions).

        ``labels [B]`` (training labels) are used by ``id_quality`` only; without them it uses the
        test-time proxy (see :mod:`reid.models.aggregation`). ``check_mask=False`` skips the check
        that every clip has a real frame, which reads the mask on the host (a device
        synchronisation): for callers that built the mask from known lengths (extraction)."""
        if frame_feats.dim() != 3:
            raise ValueError(f"aggregate expects frame_feats [B, T, D], got {tuple(frame_feats.shape)}")
        if check_mask or mask is None:
            mask = self._check_mask(mask, frame_feats.shape[:2], frame_feats.device)
        else:
            mask = mask.to(device=frame_feats.device, dtype=torch.bool)
        # padded positions are never read: zero them so even NaN/inf padding cannot leak (0 * nan)
        frame_feats = frame_feats.masked_fill(~mask[..., None], 0.0)
        out: dict[str, torch.Tensor] = {}
        frame_logits = None
        if self.aggregator.needs_frame_logits:
            frame_logits = self.frame_logits(frame_feats)
            out["frame_logits"] = frame_logits
        feat, weights = self.aggregator(frame_feats, mask, frame_logits=frame_logits, labels=labels)
        bn_feat = self._bn(feat)
        out.update(feat=feat, bn_feat=bn_feat, logits=self.classifier(self.dropout(bn_feat)), frame_weights=weights)
        return out

    @staticmethod
    def _check_mask(mask: torch.Tensor | None, shape: torch.Size, device: torch.device) -> torch.Tensor:
        if mask is None:
            return torch.ones(shape, dtype=torch.bool, device=device)
        if mask.shape != shape:
            raise ValueError(f"mask must have shape [B, T]={tuple(shape)}, got {tuple(mask.shape)}")
        mask = mask.to(device=device, dtype=torch.bool)
        empty = (~mask.any(dim=1)).nonzero().flatten()
        if len(empty):
            raise ValueError(f"clip(s) {empty.tolist()} of the batch have no valid frame (mask all False)")
        return mask

    # -- clips --------------------------------------------------------------------------------
    def forward(
        self, frames: torch.Tensor, mask: torch.Tensor | None = None, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """``frames [B, T, 3, H, W]``, ``mask [B, T]`` bool (None = all frames real), ``labels [B]``
        (training labels, used by ``id_quality``) -> dict of ``feat [B, D]`` (before BNNeck),
        ``bn_feat [B, D]``, ``logits [B, C]``, ``frame_weights [B, T]`` and ``frame_logits
        [B, T, C]`` when the aggregator computes them. Only the real frames are encoded."""
        if frames.dim() != 5:
            raise ValueError(f"forward expects frames [B, T, 3, H, W], got {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        mask = self._check_mask(mask, frames.shape[:2], frames.device)
        # every frame real (always so for fixed-length clips): a view, not a copy of the batch
        real = frames.flatten(0, 1) if bool(mask.all()) else frames[mask]
        valid = self.encode_frames(real)  # [N_valid, D]
        frame_feats = valid.new_zeros(b, t, valid.shape[-1])
        frame_feats[mask] = valid
        return self.aggregate(frame_feats, mask, labels=labels)

    def retrieval_features(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The retrieval feature ``bn_feat [B, D]`` of clips ``frames [B, T, 3, H, W]`` with
        ``mask [B, T]`` (bool, or float 0/1; None = all real), through a graph with static shapes
        (module docstring): for export and inference, in eval mode. Equals ``forward(...)["bn_feat"]``
        in eval mode to float rounding (the backbone sees a batch of ``B * T`` frames instead of the
        real ones only); a clip with no real frame gives non-finite values instead of an error (a
        traced graph cannot raise). Not for training: padded frames would enter BN batch statistics."""
        if frames.dim() != 5:
            raise ValueError(f"retrieval_features expects frames [B, T, 3, H, W], got {tuple(frames.shape)}")
        b, t = frames.shape[0], frames.shape[1]
        mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device) if mask is None else mask.bool()
        frame_feats = self.encode_frames(frames.flatten(0, 1)).unflatten(0, (b, t))
        # masked_fill, not a product: a NaN/inf padded frame must not leak (0 * nan = nan)
        frame_feats = frame_feats.masked_fill(~mask[..., None], 0.0)
        frame_logits = self.frame_logits(frame_feats) if self.aggregator.needs_frame_logits else None
        feat, _ = self.aggregator(frame_feats, mask, frame_logits=frame_logits)
        return self._bn(feat)

    def _prefers_channels_last(self) -> bool:
        # a 5-D clip tensor cannot be channels_last; follow the backbone's conv weights instead
        conv_weight = next((p for p in self.backbone.parameters() if p.dim() == 4), None)
        return conv_weight is not None and not conv_weight.is_contiguous() and conv_weight.is_contiguous(
            memory_format=torch.channels_last
        )


class RetrievalFeatures(nn.Module):
    """``forward(frames [B, T, 3, H, W], mask [B, T]) -> bn_feat [B, D]``: a trained
    :class:`VideoReIDModel`'s export path (:meth:`VideoReIDModel.retrieval_features`) as a module
    with positional tensor inputs and one tensor output, the form tracers and exporters take."""

    def __init__(self, model: VideoReIDModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model.retrieval_features(frames, mask)


__all__ = ["RetrievalFeatures", "VideoReIDModel"]
