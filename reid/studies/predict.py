"""Predictions of a trainer's model on its own training split, for the noise study's fit numbers."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm


@torch.no_grad()
def predict_train_split(trainer) -> np.ndarray:
    """Identity logits ``[N_train, C]`` of ``trainer.data.train`` in eval mode with the test
    transform (no augmentation), from ``eval.predict_frames`` evenly spaced frames of each
    tracklet. The noise study computes training accuracy on noisy/clean subsets from it
    (docs/methods.md §5: with augmentation the fit numbers would measure augmentation, not
    memorisation)."""
    from reid.data.datasets import TestTrackletDataset, collate_test
    from reid.engine.builders import build_test_transform

    cfg = trainer.cfg
    dataset = TestTrackletDataset(trainer.data.train, build_test_transform(cfg.data), mode="evenly",
                                  length=cfg.eval.predict_frames, corrupt=trainer.data.corrupt)
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=False,
                                         collate_fn=lambda b: collate_test(b, pad=True))
    model = trainer.model
    was_training = model.training
    model.eval()
    out = []
    try:
        for batch in tqdm(loader, desc="predict train split", leave=False,
                          disable=not (trainer.dist.is_main and cfg.train.progress)):
            with trainer.autocast():
                logits = model(batch["frames"].to(trainer.device), batch["mask"].to(trainer.device))["logits"]
            out.append(logits.float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, trainer.num_classes), np.float32)


__all__ = ["predict_train_split"]
