"""Regression golden for the main job's losses (``tools/train.py``: ``WeightedCrossEntropyLoss(
scheme="imae")`` + ``BatchHardTripletLoss(margin=0.3)``): their default values and gradients must
stay bit-identical while the weighting core grows. Recorded from the implementation before issue
10 (torch 2.14.1 CPU). Under another torch build float reductions may differ in the last bits,
so there the comparison is to 1e-6 relative instead of bit-exact."""

from __future__ import annotations

import hashlib

import pytest
import torch

from reid.losses import BatchHardTripletLoss, WeightedCrossEntropyLoss

RECORDED_TORCH = "2.14.1"
#: name -> (float.hex of the sum, float.hex of the sum of |x|, sha256 prefix of the float32 bytes)
GOLDEN = {
    "id": ("0x1.4abf5c0000000p+2", "0x1.4abf5c0000000p+2", "bcdbcc35fb021e2f"),
    "metric": ("0x1.7d8ea00000000p+1", "0x1.7d8ea00000000p+1", "c55156d809a667d0"),
    "glogits": ("-0x1.240840e800000p-29", "0x1.fffffffdbf7bfp-1", "9ddf539522db9f16"),
    "gfeat": ("-0x1.8f20000000000p-26", "0x1.26ccd8e2de300p+5", "2176740c940b14df"),
}


def _main_job_losses():
    g = torch.Generator().manual_seed(1234)
    logits = (torch.randn(32, 60, generator=g) * 4).requires_grad_()
    feat = torch.randn(32, 512, generator=g).requires_grad_()
    labels = torch.arange(8).repeat_interleave(4)  # P x K = 8 x 4, as the main job
    id_value = WeightedCrossEntropyLoss(scheme="imae")(logits, labels)
    metric_value = BatchHardTripletLoss(margin=0.3)(feat, labels)
    (id_value + metric_value).backward()
    return {"id": id_value.detach(), "metric": metric_value.detach(), "glogits": logits.grad, "gfeat": feat.grad}


def test_main_job_losses_match_the_recorded_golden():
    got = _main_job_losses()
    exact = torch.__version__.split("+")[0] == RECORDED_TORCH
    for name, (total, abs_total, digest) in GOLDEN.items():
        t = got[name]
        if exact:
            assert float(t.double().sum()).hex() == total, name
            assert float(t.double().abs().sum()).hex() == abs_total, name
            assert hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16] == digest, name
        else:
            assert float(t.double().abs().sum()) == pytest.approx(float.fromhex(abs_total), rel=1e-6), name
