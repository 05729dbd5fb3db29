"""Backbone weights: local torchvision state dict round trip, clear errors, no implicit download."""

from __future__ import annotations
from urllib.error import URLError

import pytest
import torch
import torchvision

from reid.models import PretrainedWeightsError, build_model
from reid.models.backbones import build_backbone


@pytest.fixture(scope="module")
def resnet18_state():
    torch.manual_seed(123)
    return torchvision.models.resnet18(weights=None).state_dict()


@pytest.fixture()
def state_file(tmp_path, resnet18_state):
    path = tmp_path / "resnet18_custom.pth"
    torch.save(resnet18_state, path)
    return path


def test_local_state_dict_round_trip(state_file, resnet18_state):
    model = build_model({"backbone": "resnet18", "pretrained": str(state_file), "last_stride": 1}, 4)
    loaded = model.backbone.state_dict()
    assert set(loaded) == {k for k in resnet18_state if not k.startswith("fc.")}
    for key, value in loaded.items():
        assert torch.equal(value, resnet18_state[key]), key
    # and it differs from a fresh random init: the file was actually used
    fresh = build_model({"backbone": "resnet18"}, 4).backbone.state_dict()
    assert not torch.equal(fresh["conv1.weight"], loaded["conv1.weight"])


def test_wrapped_and_ddp_prefixed_state_dict_loads(tmp_path, resnet18_state):
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in resnet18_state.items()}}, path)
    model = build_model({"backbone": "resnet18", "pretrained": path}, 4)
    assert torch.equal(model.backbone.layer3[0].conv1.weight, resnet18_state["layer3.0.conv1.weight"])


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "resnet50.pth"
    with pytest.raises(PretrainedWeightsError, match="nowhere/resnet50.pth.*does not exist"):
        build_model({"backbone": "resnet18", "pretrained": str(path)}, 4)


def test_missing_and_unexpected_keys_are_listed(tmp_path, resnet18_state):
    state = dict(resnet18_state)
    del state["layer2.0.bn1.running_var"]
    state["layer9.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(PretrainedWeightsError) as err:
        build_model({"backbone": "resnet18", "pretrained": str(path)}, 4)
    msg = str(err.value)
    assert "broken.pth" in msg
    assert "1 missing key(s): layer2.0.bn1.running_var" in msg
    assert "1 unexpected key(s): layer9.weight" in msg


def test_wrong_architecture_reports_shape_mismatch(state_file):
    # resnet18 weights into a resnet34: the extra blocks of resnet34 are named as missing
    with pytest.raises(PretrainedWeightsError, match="resnet18_custom.pth.*missing key"):
        build_model({"backbone": "resnet34", "pretrained": str(state_file)}, 4)


def test_non_tensor_file_is_rejected(tmp_path):
    path = tmp_path / "notes.pth"
    torch.save({"conv1.weight": [1, 2, 3]}, path)
    with pytest.raises(PretrainedWeightsError, match="notes.pth.*conv1.weight"):
        build_model({"backbone": "resnet18", "pretrained": str(path)}, 4)


def test_garbage_file_is_rejected(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(PretrainedWeightsError, match="garbage.pth.*could not be read"):
        build_model({"backbone": "resnet18", "pretrained": str(path)}, 4)


def test_imagenet_download_failure_says_what_to_do(monkeypatch):
    """'imagenet' goes through torchvision's download; offline it must fail with instructions.
    The download function itself is replaced: nothing touches the network in this test."""
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise URLError("no internet")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(PretrainedWeightsError) as err:
        build_model({"backbone": "resnet18", "pretrained": "imagenet"}, 4)
    msg = str(err.value)
    assert calls and calls[0].endswith(".pth"), "the torchvision weights API should have been used"
    assert "no internet" in msg and "resnet18" in msg
    assert "local path" in msg and "torch.save" in msg


def test_imagenet_weights_go_through_the_same_strict_loader(monkeypatch, resnet18_state):
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", lambda *a, **k: resnet18_state)
    model = build_model({"backbone": "resnet18", "pretrained": "imagenet"}, 4)
    assert torch.equal(model.backbone.conv1.weight, resnet18_state["conv1.weight"])


def test_default_build_never_downloads(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("build_model must not download without pretrained='imagenet'")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", forbidden)
    backbone = build_backbone("resnet18")
    assert backbone.out_channels == 512
    build_model({"backbone": "resnet18"}, 2)


def test_safetensors_file_loads_without_pickle(tmp_path, resnet18_state):
    from safetensors.torch import save_file

    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in resnet18_state.items()}, str(path))
    model = build_model({"backbone": "resnet18", "pretrained": str(path)}, 4)
    assert torch.equal(model.backbone.layer4[1].conv2.weight, resnet18_state["layer4.1.conv2.weight"])


def test_unreadable_safetensors_file_names_the_format(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(PretrainedWeightsError, match="broken.safetensors: could not be read as a safetensors file"):
        build_model({"backbone": "resnet18", "pretrained": str(path)}, 4)


def test_timm_spelling_on_a_torchvision_backbone_means_its_imagenet_weights(monkeypatch, resnet18_state):
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", lambda *a, **k: resnet18_state)
    model = build_model({"backbone": "resnet18", "pretrained": "timm"}, 4)
    assert torch.equal(model.backbone.conv1.weight, resnet18_state["conv1.weight"])
