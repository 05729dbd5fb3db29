"""timm backbones (``model.backbone: timm:<name>``): the prefix resolver, last stride, the two
output paths (feature map / pooled tokens), local and hub weights, no implicit download, and an
end-to-end training run. Tiny timm models only (``resnet10t``, ``test_vit``, ``test_convnext``);
everything is random init and nothing touches the network."""

from __future__ import annotations

import pytest
import torch

timm = pytest.importorskip("timm")

from reid.models import BACKBONES, ModelConfig, PretrainedWeightsError, TimmBackboneError, build_model  # noqa: E402
from reid.models.backbones import build_backbone  # noqa: E402
from reid.models.timm_backbones import TimmBackbone  # noqa: E402


def test_prefix_resolves_any_timm_model_without_one_entry_per_model():
    assert set(BACKBONES) == {"resnet18", "resnet34", "resnet50", "resnet101"}
    assert BACKBONES.check("timm:resnet10t", key="model.backbone") == "timm:resnet10t"
    assert "timm:test_vit" in BACKBONES and "timm:no_such_model" not in BACKBONES
    assert ModelConfig(backbone="timm:resnet10t").backbone == "timm:resnet10t"
    # a pretrained tag is part of a timm name too
    assert ModelConfig(backbone="timm:resnet10t.c3_in1k").backbone == "timm:resnet10t.c3_in1k"


def test_unknown_timm_name_is_a_user_error_with_close_names():
    with pytest.raises(TimmBackboneError, match=r"model\.backbone: unknown timm model 'resnet10'.*timm:resnet10t"):
        BACKBONES.check("timm:resnet10", key="model.backbone")
    with pytest.raises(ValueError, match=r"model\.backbone: unknown timm model 'resnet10'"):
        ModelConfig.from_any({"backbone": "timm:resnet10"})


def test_unknown_plain_name_mentions_the_timm_prefix():
    with pytest.raises(ValueError, match=r"unknown backbone 'resnt18'.*timm:<name>"):
        ModelConfig(backbone="resnt18")


def test_resnet_last_stride_one_doubles_the_map_and_keeps_the_weights():
    x = torch.randn(2, 3, 64, 32)
    torch.manual_seed(0)
    s1 = build_backbone("timm:resnet10t", last_stride=1)
    torch.manual_seed(0)
    s2 = build_backbone("timm:resnet10t", last_stride=2)
    assert isinstance(s1, TimmBackbone) and not s1.pooled and s1.out_channels == 512
    # the stride change adds or removes no parameter: the same seed gives the same weights
    assert s1.state_dict().keys() == s2.state_dict().keys()
    assert all(torch.equal(v, s2.state_dict()[k]) for k, v in s1.state_dict().items())
    assert tuple(s2(x).shape) == (2, 512, 2, 1)  # total stride 32
    assert tuple(s1(x).shape) == (2, 512, 4, 2)  # total stride 16 (resnet10t's avg-down shortcut too)


def test_vit_uses_the_cls_token_at_any_input_size():
    backbone = build_backbone("timm:test_vit").eval()
    assert backbone.pooled and backbone.out_channels == backbone.model.embed_dim
    x = torch.randn(2, 3, 64, 32)  # not the model's 160x160: dynamic_img_size interpolates
    with torch.no_grad():
        out = backbone(x)
        cls = backbone.model.forward_features(x)[:, 0]  # final norm applied, CLS first
    assert tuple(out.shape) == (2, backbone.out_channels, 1, 1)
    assert torch.allclose(out.flatten(1), cls)


@pytest.mark.parametrize("name", ["timm:resnet10t", "timm:test_vit", "timm:test_convnext"])
def test_every_parameter_gets_a_gradient(name):
    """No parameter of the timm model sits unused (ConvNeXt's head norm, ViT's fc_norm): DDP
    refuses unused parameters and a pretrained head norm must keep its meaning."""
    model = build_model({"backbone": name, "classifier": "linear"}, 3)
    out = model(torch.randn(2, 2, 3, 64, 32), torch.ones(2, 2, dtype=torch.bool))
    (out["logits"].sum() + out["feat"].sum()).backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_timm_state_dict_loads_and_its_classifier_is_ignored(tmp_path, suffix):
    torch.manual_seed(1)
    source = timm.create_model("resnet10t", num_classes=1000)  # full timm model, ImageNet-style head
    state = source.state_dict()
    assert "fc.weight" in state
    path = tmp_path / f"resnet10t{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    model = build_model({"backbone": "timm:resnet10t", "pretrained": str(path)}, 4)
    loaded = model.backbone.model.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith("fc.")}
    assert all(torch.equal(v, state[k]) for k, v in loaded.items())


def test_local_file_of_another_architecture_names_the_keys(tmp_path):
    path = tmp_path / "convnext.pth"
    torch.save(timm.create_model("test_convnext").state_dict(), path)
    with pytest.raises(PretrainedWeightsError, match=r"convnext\.pth: the state dict does not fit.*missing key"):
        build_model({"backbone": "timm:resnet10t", "pretrained": str(path)}, 4)


def test_timm_and_imagenet_are_one_stored_spelling():
    assert ModelConfig(pretrained="timm").pretrained == "imagenet"
    assert ModelConfig(pretrained="ImageNet").pretrained == "imagenet"


def test_offline_hub_request_is_one_line_saying_what_to_do(monkeypatch, tmp_path):
    """``pretrained: timm`` goes through timm's real hub loader; huggingface_hub is put in offline
    mode with an empty cache, so this test never touches the network."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("no internet")))
    with pytest.raises(PretrainedWeightsError) as err:
        build_model({"backbone": "timm:resnet10t", "pretrained": "timm"}, 4)
    msg = str(err.value)
    assert "\n" not in msg, "one line"
    assert "downloading timm's weights of resnet10t failed" in msg
    assert "torch.save(timm.create_model('resnet10t', pretrained=True).state_dict()" in msg
    assert "set model.pretrained to its local path" in msg


def test_random_init_never_downloads(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a timm backbone must not download without model.pretrained")

    import timm.models._builder as builder

    monkeypatch.setattr(builder, "load_pretrained", forbidden)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", forbidden)
    build_model({"backbone": "timm:resnet10t"}, 2)


@pytest.mark.slow
def test_timm_backbone_trains_end_to_end_and_a_run_starts_from_its_checkpoint(tmp_path, tiny_synthetic_mars):
    """A timm ViT trains through ``reid.engine.train``; a second run with ``model.init_from`` set
    to the first run's checkpoint evaluates, untrained, exactly as the first run ended (same
    class count: every weight came from the checkpoint)."""
    from reid.engine import train
    from reid.engine.config import load_config

    common = [
        f"data.root={tiny_synthetic_mars}", "data.height=64", "data.width=32", "data.clip_length=2",
        "data.p=2", "data.k=2", "data.num_workers=0", "model.backbone=timm:test_vit", "train.epochs=1",
        "train.iters_per_epoch=1", "train.device=cpu", "train.progress=false", "eval.chunk=8",
    ]
    first = train(load_config(None, [*common, "eval.untrained=false", f"output_dir={tmp_path / 'first'}"]))
    assert first["final"]["mAP"] > 0
    checkpoint = tmp_path / "first" / "last.pt"
    second = train(load_config(None, [*common, "eval.untrained=true", f"model.init_from={checkpoint}",
                                      f"output_dir={tmp_path / 'second'}"]))
    assert second["untrained"]["mAP"] == pytest.approx(first["final"]["mAP"], abs=1e-9)
    assert second["untrained"]["rank1"] == pytest.approx(first["final"]["rank1"], abs=1e-9)
