"""``reid extract`` / tools/extract.py (issue 12): a folder of tracklet folders -> an npz of one
vector per tracklet carrying protocol / metric / dataset; the same vectors as the API and as an
export folder; input errors are one line, exit 2, before the model is loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from reid import cli
from test_eval_extract import MODEL_CFG, H, W, model  # noqa: F401


@pytest.fixture(scope="module")
def setup(tmp_path_factory, model):  # noqa: F811
    root = tmp_path_factory.mktemp("extract")
    ckpt = root / "best.pt"
    torch.save({"model": model.state_dict(), "num_classes": 3, "epoch": 1,
                "config": {"model": dict(MODEL_CFG), "data": {"height": H, "width": W, "protocol": "torchreid"},
                           "eval": {"max_frames": 3, "chunk": 8, "metric": "euclidean"}}}, ckpt)
    folder = root / "tracklets"
    rng = np.random.default_rng(0)
    import cv2

    for name, n in (("p1_t0", 2), ("p1_t1", 5), ("p2_t0", 1)):
        (folder / name).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(folder / name / f"{i:03d}.png"), rng.integers(0, 255, (40, 20, 3), dtype=np.uint8))
    return ckpt, folder


def run(capsys, *argv):
    code = cli.main(["extract", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_extract_writes_features_with_provenance(setup, tmp_path, capsys):
    from reid.engine.extractor import FeatureExtractor

    ckpt, folder = setup
    out = tmp_path / "feats.npz"
    code, stdout, err = run(capsys, "--checkpoint", ckpt, "--input", folder, "--out", out, "--device", "cpu",
                            "--no-progress")
    assert code == 0, err
    assert "wrote 3 tracklet features (D=24)" in stdout
    with np.load(out, allow_pickle=False) as data:
        assert data["names"].tolist() == ["p1_t0", "p1_t1", "p2_t0"]
        assert str(data["protocol"]) == "torchreid" and str(data["metric"]) == "euclidean"
        assert str(data["dataset"]) == "tracklets"
        assert data["frame_offsets"].tolist() == [0, 2, 7, 8]
        names, feats = FeatureExtractor(ckpt, device="cpu").folder(folder)
        np.testing.assert_array_equal(data["features"], feats)


def test_an_export_folder_gives_the_checkpoint_features(setup, tmp_path):
    pytest.importorskip("safetensors")
    from reid.engine.export import export_checkpoint
    from reid.engine.extractor import FeatureExtractor

    ckpt, folder = setup
    export_checkpoint(ckpt, "safetensors", tmp_path / "exported", verify=False)
    from_export = FeatureExtractor(tmp_path / "exported", device="cpu")
    assert from_export.settings["max_frames"] == 3 and from_export.settings["metric"] == "euclidean"
    np.testing.assert_allclose(from_export.folder(folder)[1], FeatureExtractor(ckpt, device="cpu").folder(folder)[1],
                               atol=1e-6, rtol=0)


@pytest.mark.parametrize("case, needle", [
    ("absent_input", "not a folder"),
    ("flat_input", "image files but no tracklet folders"),
    ("bad_out", "must end in .npz"),
    ("absent_checkpoint", "--checkpoint"),
    ("max_frames", "--max-frames 0: must be >= 1"),
])
def test_errors_are_one_line_exit_2(setup, tmp_path, capsys, case, needle):
    ckpt, folder = setup
    args = {"--checkpoint": ckpt, "--input": folder, "--out": tmp_path / "f.npz"}
    extra = []
    if case == "absent_input":
        args["--input"] = tmp_path / "nowhere"
    elif case == "flat_input":
        flat = tmp_path / "flat"
        flat.mkdir()
        shutil.copy(next((folder / "p1_t0").iterdir()), flat / "0.png")
        args["--input"] = flat
    elif case == "bad_out":
        args["--out"] = tmp_path / "f.txt"
    elif case == "absent_checkpoint":
        args["--checkpoint"] = tmp_path / "none.pt"
    else:
        extra = ["--max-frames", "0"]
    code, _, err = run(capsys, *[x for kv in args.items() for x in kv], *extra)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "f.npz").exists()


def test_the_tool_wrapper_and_command_list():
    text = (Path(__file__).resolve().parents[1] / "tools" / "extract.py").read_text()
    assert "from reid.cli.extract import main" in text and 'prog="tools/extract.py"' in text
    assert "extract" in cli.COMMANDS and "reid extract" in cli.usage()
