"""Export (reid.engine.export, reid export): weights-only safetensors + model.json, ONNX, TorchScript.

CPU, resnet18 at 64x32, clips of 2..4 frames. Every exported graph must give the PyTorch model's
retrieval features within 1e-4, for batch sizes other than the one it was exported with and for
clips with padded frames.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from reid.cli.export import main as export_main
from reid.engine.export import (
    ExportError, example_inputs, export_checkpoint, load_weights_only, read_meta, run_exported,
)
from reid.errors import UserError
from reid.models import AGGREGATORS, ModelConfig, build_model
from reid.models.video_model import RetrievalFeatures

H, W = 64, 32
NUM_CLASSES = 5
TOL = 1e-4


def tiny_model(aggregation: str = "mean", **kw):
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", aggregation=aggregation, **kw)
    model = build_model(cfg, NUM_CLASSES)
    with torch.no_grad():  # non-trivial BN statistics: identity BN would prove less
        model.bnneck.bn.running_mean.uniform_(-0.5, 0.5)
        model.bnneck.bn.running_var.uniform_(0.5, 2.0)
    return model.eval(), cfg


def write_checkpoint(path, aggregation="mean", max_frames=3, clip_length=2, **kw):
    model, cfg = tiny_model(aggregation, **kw)
    ckpt = {"model": model.state_dict(), "num_classes": NUM_CLASSES, "epoch": 1, "global_step": 10,
            "config": {"model": cfg.model_dump(), "data": {"height": H, "width": W, "clip_length": clip_length},
                       "eval": {"max_frames": max_frames}}}
    torch.save(ckpt, path)
    return path, model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


def clips(batch, t, seed):
    """Random clips with 1..t real frames each; padded frames hold garbage (large values)."""
    frames, mask = example_inputs({"input": {"clip_length": t, "height": H, "width": W}}, batch, seed)
    frames[~mask] = 1e3
    return frames, mask


def reference(model, frames, mask):
    with torch.no_grad():
        return model(frames, mask)["bn_feat"].numpy()


# -- the export path of the model --------------------------------------------------------------


@pytest.mark.parametrize("agg", sorted(AGGREGATORS))
def test_retrieval_features_equal_forward_with_padding(agg):
    model, _ = tiny_model(agg)
    frames, mask = clips(4, 3, seed=2)
    frames[0, 2] = float("nan")  # a NaN padded frame must not leak into the feature
    assert not mask[0, 2]
    with torch.no_grad():
        got = RetrievalFeatures(model)(frames, mask)
        float_mask = RetrievalFeatures(model)(frames, mask.float())
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), reference(model, frames, mask), atol=TOL, rtol=0)
    torch.testing.assert_close(float_mask, got, rtol=0, atol=0)


# -- safetensors + model.json ------------------------------------------------------------------


def test_safetensors_round_trip_without_pickle(checkpoint, tmp_path, monkeypatch):
    path, model = checkpoint
    result = export_checkpoint(path, "safetensors", tmp_path)
    assert result["max_abs_diff"] == 0.0
    weights = tmp_path / "model.safetensors"
    raw = weights.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    assert raw[8:9] == b"{" and json.loads(raw[8:8 + header_len])["__metadata__"]["format"] == "pt"

    def no_pickle(*args, **kwargs):
        raise AssertionError("weights-only loading must not unpickle")

    monkeypatch.setattr(torch, "load", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    from safetensors.torch import load_file

    state = load_file(str(weights))
    assert set(state) == set(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(state[key], value), key
    loaded, meta = load_weights_only(tmp_path)
    assert not loaded.training
    frames, mask = clips(3, 3, seed=4)
    np.testing.assert_array_equal(reference(loaded, frames, mask), reference(model, frames, mask))
    assert meta["num_classes"] == NUM_CLASSES and meta["model"]["backbone"] == "resnet18"


def test_model_json_describes_the_input(checkpoint, tmp_path):
    path, _ = checkpoint
    export_checkpoint(path, "safetensors", tmp_path)
    meta = read_meta(tmp_path)
    assert meta["input"]["clip_length"] == 3  # the run's eval.max_frames
    assert (meta["input"]["height"], meta["input"]["width"]) == (H, W)
    assert meta["feat_dim"] == 512 and meta["feature"] == "bn_feat"
    assert meta["model"]["pretrained"] is None and meta["model"]["aggregation"] == "mean"
    assert meta["test_transform"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    import reid

    assert meta["reid_version"] == reid.__version__
    export_checkpoint(path, "safetensors", tmp_path, clip_length=2, verify=False)
    assert read_meta(tmp_path)["input"]["clip_length"] == 2


def test_clip_length_falls_back_to_the_training_clip(tmp_path):
    path, _ = write_checkpoint(tmp_path / "ck.pt", max_frames=None, clip_length=4)
    result = export_checkpoint(path, "safetensors", tmp_path / "out", verify=False)
    assert result["clip_length"] == 4


def test_export_does_not_depend_on_the_init_checkpoint(checkpoint, tmp_path):
    """A run initialised from another checkpoint (model.init_from) exports a self-contained
    folder: model.json says init_from null, so loading never reads that file again."""
    source, _ = checkpoint
    init = tmp_path / "init.pt"
    init.write_bytes(source.read_bytes())
    path, model = write_checkpoint(tmp_path / "run.pt", init_from=str(init))
    export_checkpoint(path, "safetensors", tmp_path / "out", verify=False)
    init.unlink()
    assert read_meta(tmp_path / "out")["model"]["init_from"] is None
    loaded, _ = load_weights_only(tmp_path / "out")
    frames, mask = clips(2, 3, seed=3)
    np.testing.assert_array_equal(reference(loaded, frames, mask), reference(model, frames, mask))


def test_weights_only_folder_errors_name_the_file(checkpoint, tmp_path):
    path, _ = checkpoint
    with pytest.raises(ExportError, match=r"model\.json: not found"):
        load_weights_only(tmp_path)
    export_checkpoint(path, "safetensors", tmp_path, verify=False)
    meta_path = tmp_path / "model.json"
    good = meta_path.read_text()
    meta_path.write_text(good.replace('"num_classes": 5', '"num_classes": 5,,'))
    with pytest.raises(ExportError, match=r"model\.json: line \d+: invalid JSON"):
        load_weights_only(tmp_path)
    meta_path.write_text(good.replace('"num_classes": 5', '"num_classes": 7'))  # classifier shape differs
    with pytest.raises(ExportError, match=r"model\.safetensors: the weights do not match"):
        load_weights_only(tmp_path)
    meta_path.write_text(good)
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(ExportError, match=r"model\.safetensors: cannot read it as safetensors"):
        load_weights_only(tmp_path)


# -- TorchScript ------------------------------------------------------------------------------


@pytest.mark.parametrize("agg", sorted(AGGREGATORS))
def test_torchscript_round_trip_every_aggregation(agg, tmp_path):
    path, model = write_checkpoint(tmp_path / "ck.pt", agg, max_frames=3)
    result = export_checkpoint(path, "torchscript", tmp_path / "out")
    assert result["max_abs_diff"] <= TOL
    for batch in (1, 5):  # exported with batch 2: the batch is not frozen in the trace
        frames, mask = clips(batch, 3, seed=batch)
        got = run_exported("torchscript", tmp_path / "out" / "model.ts", frames, mask)
        np.testing.assert_allclose(got, reference(model, frames, mask), atol=TOL, rtol=0)


@pytest.mark.parametrize("t", [2, 4])
def test_torchscript_clip_lengths(checkpoint, tmp_path, t):
    path, model = checkpoint
    export_checkpoint(path, "torchscript", tmp_path, clip_length=t)
    assert read_meta(tmp_path)["input"]["clip_length"] == t
    frames, mask = clips(3, t, seed=7)
    got = run_exported("torchscript", tmp_path / "model.ts", frames, mask)
    np.testing.assert_allclose(got, reference(model, frames, mask), atol=TOL, rtol=0)


# -- ONNX -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_onnx_round_trip_dynamic_batch(checkpoint, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'reid[export]')")
    pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript (pip install 'reid[export]')")
    path, model = checkpoint
    result = export_checkpoint(path, "onnx", tmp_path)
    assert result["max_abs_diff"] <= TOL
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    frames_in, mask_in = session.get_inputs()
    assert (frames_in.name, frames_in.type, mask_in.name, mask_in.type) == (
        "frames", "tensor(float)", "mask", "tensor(bool)")
    assert isinstance(frames_in.shape[0], str) and frames_in.shape[1:] == [3, 3, H, W]  # dynamic B, fixed T
    assert session.get_outputs()[0].name == "features"
    for batch in (1, 4):
        frames, mask = clips(batch, 3, seed=10 + batch)
        got = session.run(["features"], {"frames": frames.numpy(), "mask": mask.numpy()})[0]
        np.testing.assert_allclose(got, reference(model, frames, mask), atol=TOL, rtol=0)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [None, b"", b"not a checkpoint at all"])
def test_bad_checkpoint_is_one_line_user_error(tmp_path, content, capsys):
    path = tmp_path / "best.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError) as info:
        export_checkpoint(path, "safetensors", tmp_path / "out")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    rc = export_main(["--checkpoint", str(path), "--format", "onnx", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --checkpoint") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_checkpoint_without_model_keys(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(UserError, match=r"lacks key\(s\) \['model', 'config', 'num_classes'\]"):
        export_checkpoint(path, "torchscript", tmp_path / "out")


def test_cli_exports_and_reports_sizes(checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    rc = export_main(["--checkpoint", str(path), "--format", "safetensors", "--out", str(tmp_path), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert rc == 0 and result["max_abs_diff"] == 0.0
    assert result["files"][str(tmp_path / "model.safetensors")] == (tmp_path / "model.safetensors").stat().st_size
    assert export_main(["--checkpoint", str(path), "--format", "onnx", "--out", str(tmp_path),
                        "--clip-length", "0"]) == 2
