"""``model.init_from``: start a model from one of our checkpoints (backbone + neck; classifier
re-created when the class count differs), with a log of what was and was not loaded, and
user errors naming the file."""

from __future__ import annotations

import logging

import pytest
import torch
import torchvision

from reid.errors import UserError
from reid.models import InitFromError, ModelConfig, build_model

SPEC = {"backbone": "resnet18", "classifier": "cosine", "aggregation": "mean"}


def _checkpoint(tmp_path, num_classes=5, seed=7, name="best.pt", **model_cfg):
    """A checkpoint in the trainer's layout (``model``, ``config.model``, ``num_classes``)."""
    cfg = {**SPEC, **model_cfg}
    torch.manual_seed(seed)
    model = build_model(cfg, num_classes)
    with torch.no_grad():  # BN statistics that a fresh model cannot have by chance
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-1, 1)
    path = tmp_path / name
    torch.save({"model": model.state_dict(), "config": {"model": cfg}, "num_classes": num_classes,
                "epoch": 3, "rng": {"torch": torch.get_rng_state()}}, path)
    return path, model.state_dict()


def test_init_from_is_a_model_config_key(tmp_path):
    assert ModelConfig().init_from is None
    assert ModelConfig(init_from=tmp_path / "best.pt").init_from == str(tmp_path / "best.pt")


def test_same_class_count_round_trips_every_weight(tmp_path, caplog):
    path, saved = _checkpoint(tmp_path, num_classes=5)
    torch.manual_seed(99)  # a different seed: every weight below must come from the file
    with caplog.at_level(logging.INFO, logger="reid.models.init_from"):
        model = build_model({**SPEC, "init_from": str(path)}, 5)
    state = model.state_dict()
    assert state.keys() == saved.keys()
    assert all(torch.equal(v, saved[k]) for k, v in state.items())
    assert f"loaded {len(saved)} of {len(saved)} tensors (backbone + neck, classifier)" in caplog.text
    assert "re-created" not in caplog.text


def test_other_class_count_recreates_the_classifier_and_loads_the_rest(tmp_path, caplog):
    path, saved = _checkpoint(tmp_path, num_classes=5)
    torch.manual_seed(99)
    fresh = build_model(SPEC, 8).state_dict()
    torch.manual_seed(99)
    with caplog.at_level(logging.INFO, logger="reid.models.init_from"):
        model = build_model({**SPEC, "init_from": str(path)}, 8)
    state = model.state_dict()
    assert tuple(state["classifier.weight"].shape) == (8, 512)
    # the classifier is the freshly built one (init_from draws no random number)
    assert torch.equal(state["classifier.weight"], fresh["classifier.weight"])
    rest = [k for k in state if not k.startswith("classifier.")]
    assert rest and all(torch.equal(state[k], saved[k]) for k in rest)
    assert "classifier re-created, not loaded (classifier.weight" in caplog.text
    assert "(5, 512)" in caplog.text and "(8, 512)" in caplog.text


def test_ddp_prefixed_plain_state_dict_and_safetensors_load(tmp_path):
    from safetensors.torch import save_file

    _, saved = _checkpoint(tmp_path)
    plain = tmp_path / "plain.pt"
    torch.save({"module." + k: v for k, v in saved.items()}, plain)
    exported = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in saved.items()}, str(exported))
    for path in (plain, exported):
        state = build_model({**SPEC, "init_from": str(path)}, 5).state_dict()
        assert all(torch.equal(v, saved[k]) for k, v in state.items()), path


def test_parts_the_checkpoint_lacks_are_kept_and_logged(tmp_path, caplog):
    path, saved = _checkpoint(tmp_path, aggregation="mean")
    with caplog.at_level(logging.INFO, logger="reid.models.init_from"):
        model = build_model({**SPEC, "aggregation": "attention", "init_from": str(path)}, 5)
    own_aggregator = [k for k in model.state_dict() if k.startswith("aggregator.")]
    assert own_aggregator, "attention has parameters"
    assert "kept as built (absent or other shape in the file): aggregator." in caplog.text
    assert torch.equal(model.state_dict()["backbone.conv1.weight"], saved["backbone.conv1.weight"])


def test_missing_file_is_a_user_error_naming_it(tmp_path):
    path = tmp_path / "runs" / "nowhere" / "best.pt"
    with pytest.raises(InitFromError, match=r"model\.init_from: checkpoint '.*nowhere/best\.pt' does not exist") as err:
        build_model({**SPEC, "init_from": str(path)}, 5)
    assert isinstance(err.value, UserError) and isinstance(err.value, ValueError)


def test_unreadable_and_non_state_dict_files_are_user_errors(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InitFromError, match=r"garbage\.pt could not be read as a weights-only checkpoint"):
        build_model({**SPEC, "init_from": str(garbage)}, 5)
    notes = tmp_path / "notes.pt"
    torch.save({"epoch": 3}, notes)
    with pytest.raises(InitFromError, match=r"notes\.pt holds no model state dict"):
        build_model({**SPEC, "init_from": str(notes)}, 5)


def test_other_backbone_names_the_keys_and_the_backbone_to_use(tmp_path):
    """The failure the issue measured (a resnet checkpoint into another trunk): one error with
    the counts and the checkpoint's own backbone, not a torch key dump."""
    path, _ = _checkpoint(tmp_path)
    with pytest.raises(InitFromError) as err:
        build_model({**SPEC, "backbone": "resnet34", "init_from": str(path)}, 5)
    msg = str(err.value)
    assert str(path) in msg and "does not fit the model's backbone + neck" in msg
    assert "missing key(s): backbone.layer1.2." in msg
    assert "trained with model.backbone='resnet18', this config builds 'resnet34'" in msg


def test_projection_width_mismatch_is_reported_as_shapes(tmp_path):
    path, _ = _checkpoint(tmp_path, embedding_dim=32)
    with pytest.raises(InitFromError, match=r"shape mismatch\(es\): projection\.weight: file \(32, 512\) vs model \(16, 512\)"):
        build_model({**SPEC, "embedding_dim": 16, "init_from": str(path)}, 5)


def test_pretrained_is_not_loaded_when_init_from_sets_the_backbone(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("model.init_from overwrites the backbone: no ImageNet download")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", forbidden)
    path, saved = _checkpoint(tmp_path)
    model = build_model({**SPEC, "pretrained": "imagenet", "init_from": str(path)}, 5)
    assert torch.equal(model.state_dict()["backbone.conv1.weight"], saved["backbone.conv1.weight"])
