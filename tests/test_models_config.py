"""ModelConfig (the one model config type), the model registries and the classifier heads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from reid.models import AGGREGATORS, BACKBONES, CLASSIFIERS, ModelConfig
from reid.models.heads import CosineClassifier, LinearClassifier
from reid.registry import Registry


def test_registries_are_registries():
    for registry, names in ((BACKBONES, {"resnet18", "resnet34", "resnet50", "resnet101"}),
                            (AGGREGATORS, {"mean", "max", "quality", "id_quality", "attention"}),
                            (CLASSIFIERS, {"linear", "cosine"})):
        assert isinstance(registry, Registry) and set(registry) == names


@pytest.mark.parametrize("key, value, choice", [("backbone", "resnet7", "resnet18"), ("aggregation", "meen", "mean"),
                                                ("classifier", "arc", "cosine")])
def test_unknown_names_list_the_choices(key, value, choice):
    with pytest.raises(ValueError, match=rf"unknown \w+ '{value}' \(choices: .*{choice}"):
        ModelConfig(**{key: value})
    with pytest.raises(ValueError, match=rf"model\.{key}: unknown"):
        ModelConfig.from_any({key: value})
    cfg = ModelConfig()
    with pytest.raises(ValueError, match="choices"):  # validate_assignment
        setattr(cfg, key, value)


def test_from_any_reads_configs_mappings_objects_and_paths(tmp_path):
    cfg = ModelConfig(aggregation="max")
    assert ModelConfig.from_any(cfg) is cfg
    assert ModelConfig.from_any(None) == ModelConfig()
    assert ModelConfig.from_any({"pretrained": tmp_path / "w.pth"}).pretrained == str(tmp_path / "w.pth")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['aggregaton'\].*'aggregation'"):
        ModelConfig.from_any({"aggregaton": "max"})
    assert ModelConfig.from_any({"aggregaton": "max"}, strict=False) == ModelConfig()
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        ModelConfig(aggregaton="max")


def test_importing_the_config_does_not_import_torch():
    root = Path(__file__).resolve().parents[1]
    code = "import sys, reid.models.config; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_cosine_classifier_reproduces_the_classification_study_head():
    """The study's former CosineHead: W = torch.randn(C, D), z = s * <f/|f|, W_c/|W_c|>."""
    torch.manual_seed(3)
    expected_weight = torch.randn(7, 12)
    torch.manual_seed(3)
    head = CosineClassifier(12, 7, 16.0)
    assert torch.equal(head.weight.data, expected_weight)
    f = torch.randn(5, 12)
    expected = 16.0 * F.linear(F.normalize(f, dim=1), F.normalize(expected_weight, dim=1))
    assert torch.equal(head(f), expected)


def test_classifier_heads_init_and_dtypes():
    torch.manual_seed(0)
    linear = LinearClassifier(64, 10)
    assert linear.bias is None and 0.0005 < float(linear.weight.detach().std()) < 0.002  # Bag of Tricks N(0, 0.001^2)
    assert set(dict(linear.named_parameters())) == {"weight"}
    biased = LinearClassifier(4, 3, init_std=0.5, bias=True)
    assert torch.equal(biased.bias.data, torch.zeros(3))
    x = torch.randn(2, 4, dtype=torch.float64)
    assert biased(x).dtype == torch.float64  # float32 parameters, float64 input
    cosine = CosineClassifier(4, 3, scale=5.0)
    torch.testing.assert_close(cosine(x), 5.0 * cosine.cosine(x))
    assert cosine(x).abs().max() <= 5.0 + 1e-9


def test_init_from_and_timm_backbones_are_config_keys(tmp_path):
    cfg = ModelConfig.from_any({"backbone": "timm:resnet10t", "init_from": str(tmp_path / "best.pt"),
                                "pretrained": "timm"})
    assert (cfg.backbone, cfg.init_from, cfg.pretrained) == ("timm:resnet10t", str(tmp_path / "best.pt"), "imagenet")
    with pytest.raises(ValueError, match="did you mean 'init_form' -> 'init_from'"):
        ModelConfig.from_any({"init_form": "best.pt"})


def test_torchvision_backbones_never_import_timm():
    """timm is imported only for a ``timm:`` backbone: the main job (resnet18) starts as before."""
    root = Path(__file__).resolve().parents[1]
    code = ("import sys; from reid.models import ModelConfig, build_model; "
            "build_model(ModelConfig(backbone='resnet18'), 3); assert 'timm' not in sys.modules, 'timm imported'")
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
