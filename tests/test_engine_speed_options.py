"""The training-speed switches (issue 14): ``train.channels_last``, ``optim.impl`` and
``train.fill_uninitialized_memory`` change where time goes, not what is learned: the same losses
and parameters as the plain path (NCHW, torch's per-tensor optimiser loop) on a tiny model and
batch (bit for bit where the switch is documented as bit-identical, to float tolerance
otherwise). The defaults are channels_last and the fused update."""

from __future__ import annotations

import pytest
import torch

from reid.engine.config import ConfigError, load_config
from reid.engine.optim import build_optimizer, impl_kwargs
from reid.engine.trainer import Trainer


def _two_steps(root, tmp_path, name: str, *overrides: str):
    cfg = load_config(None, [
        f"data.root={root}", "data.p=2", "data.k=2", "data.height=32", "data.width=16",
        "train.device=cpu", "train.progress=false", "eval.untrained=false", f"output_dir={tmp_path / name}",
        *overrides])
    trainer = Trainer(cfg)
    trainer.setup()
    trainer.ddp_model.train()
    batches = iter(trainer.train_loader(0))
    losses = [trainer.run_step(next(batches))["losses"]["total"] for _ in range(2)]
    params = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.teardown()
    return losses, params, trainer


PLAIN = ("train.channels_last=false", "optim.impl=auto")


@pytest.fixture(scope="module")
def baseline(tiny_synthetic_mars, tmp_path_factory):
    return _two_steps(tiny_synthetic_mars, tmp_path_factory.mktemp("base"), "base", *PLAIN)


def test_no_nan_fill_is_bit_identical_to_the_fill(baseline, tiny_synthetic_mars, tmp_path):
    assert torch.utils.deterministic.fill_uninitialized_memory is False  # the default the trainer set
    losses, params, _ = _two_steps(tiny_synthetic_mars, tmp_path, "fill", *PLAIN,
                                 "train.fill_uninitialized_memory=true")
    assert torch.utils.deterministic.fill_uninitialized_memory is True
    torch.utils.deterministic.fill_uninitialized_memory = False
    assert losses == baseline[0]
    assert all(torch.equal(a, b) for a, b in zip(params, baseline[1]))


def test_channels_last_gives_the_same_losses_to_float_tolerance(baseline, tiny_synthetic_mars, tmp_path):
    losses, params, trainer = _two_steps(tiny_synthetic_mars, tmp_path, "cl", "train.channels_last=true", "optim.impl=auto")
    conv = trainer.model.backbone.conv1.weight if hasattr(trainer.model.backbone, "conv1") else None
    weights = [p for p in trainer.model.backbone.parameters() if p.dim() == 4] if conv is None else [conv]
    assert weights[0].is_contiguous(memory_format=torch.channels_last) and not weights[0].is_contiguous()
    assert losses == pytest.approx(baseline[0], rel=1e-4, abs=1e-5)
    assert max(float((a - b).abs().max()) for a, b in zip(params, baseline[1])) < 1e-4


def test_fused_adam_is_fused_and_close_to_the_loop(baseline, tiny_synthetic_mars, tmp_path):
    losses, params, trainer = _two_steps(tiny_synthetic_mars, tmp_path, "fused", "train.channels_last=false")  # the default impl
    assert trainer.optimizer.defaults["fused"] is True
    assert losses[0] == baseline[0][0]  # the first loss is computed before any update
    assert losses[1] == pytest.approx(baseline[0][1], rel=1e-4)
    assert max(float((a - b).abs().max()) for a, b in zip(params, baseline[1])) < 1e-4


def test_impl_key_maps_to_torch_keywords_and_is_validated():
    assert impl_kwargs(load_config(None).optim) == {"fused": True}  # the default
    assert impl_kwargs(load_config(None, ["optim.impl=auto"]).optim) == {}  # torch's own choice
    cfg = load_config(None, ["optim.impl=foreach", "optim.name=sgd"]).optim
    model = torch.nn.Linear(3, 2)
    assert build_optimizer(cfg, model.parameters()).defaults["foreach"] is True
    cfg = load_config(None, ["optim.impl=loop"]).optim
    assert build_optimizer(cfg, model.parameters()).defaults["foreach"] is False
    with pytest.raises(ConfigError, match="optim.impl"):
        load_config(None, ["optim.impl=fast"])
    assert load_config(None).train.channels_last is True
    for key in ("train.compile", "train.fill_uninitialized_memory", "train.channels_last"):
        if key != "train.channels_last":
            assert getattr(load_config(None).train, key.split(".")[1]) is False
        with pytest.raises(ConfigError, match=key):
            load_config(None, [f"{key}=1"])
