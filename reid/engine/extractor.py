"""``reid.FeatureExtractor``: retrieval features of tracklets from a trained model, the way the
run's own evaluation computes them.

    from reid import FeatureExtractor
    extractor = FeatureExtractor("runs/default-x/best.pt")      # or an export folder, or a model
    v = extractor(["t/000.jpg", "t/001.jpg"])                   # one tracklet -> [D]
    m = extractor([paths_a, frames_b])                          # tracklets (paths or [T,H,W,3] uint8) -> [N, D]
    names, feats = extractor.folder("tracklets/")               # DIR/<tracklet>/<frames> -> names, [N, D]

Every input goes through :func:`reid.eval.extract.extract_features`, the function the trainer's
evaluation and :func:`reid.engine.evaluation.features_from_checkpoint` use: the run's test
transform (resize + normalise at the run's input size), ``max_frames`` evenly spaced frames per
tracklet (default: the run's ``eval.max_frames``), at most ``chunk`` frames per backbone pass
(default: the run's ``eval.chunk``), one vector per tracklet from the model's aggregation
(``bn_feat``). So on a checkpoint's own test tracklets the features equal the evaluation's (tested
bit for bit).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reid.engine import builders
from reid.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_CHUNK = 32  # a bare model has no run settings
DEFAULT_SIZE = (256, 128)  # height, width of a bare model's test transform


class ExtractorInputError(UserError, ValueError):
    """An input :class:`FeatureExtractor` cannot read; the message names the item and what to pass."""


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class FeatureExtractor:
    """Retrieval features from a checkpoint (``best.pt``), an export folder (``reid export
    --format safetensors``: ``model.json`` + ``model.safetensors``, no pickle) or a model.

    Args:
        checkpoint_or_model: a checkpoint path, an export folder, or a
            :class:`reid.models.VideoReIDModel` (then ``height`` / ``width`` set the transform).
        device: torch device (default: CUDA when available, else CPU).
        max_frames: evenly spaced frames per tracklet (default: the run's ``eval.max_frames``;
            None there means every frame).
        chunk: frames per backbone pass (default: the run's ``eval.chunk``, 32 for a model).
        progress: a tqdm bar over tracklets.
    """

    def __init__(self, checkpoint_or_model: str | Path | nn.Module, device: str | torch.device | None = None,
                 max_frames: int | None = None, chunk: int | None = None, *, progress: bool = False,
                 height: int = DEFAULT_SIZE[0], width: int = DEFAULT_SIZE[1]) -> None:
        from reid.data.transforms import build_clip_transform

        self.settings: dict[str, Any] = {"protocol": None, "metric": "cosine", "max_frames": None,
                                         "chunk": DEFAULT_CHUNK, "dataset": None}
        if isinstance(checkpoint_or_model, nn.Module):
            self.model = checkpoint_or_model
            self.transform = build_clip_transform(False, height, width)
        else:
            self.model, self.transform = self._load(Path(checkpoint_or_model))
        if max_frames is not None:
            self.settings["max_frames"] = max_frames
        if chunk is not None:
            self.settings["chunk"] = chunk
        for key in ("max_frames", "chunk"):
            if self.settings[key] is not None and int(self.settings[key]) < 1:
                raise ExtractorInputError(f"FeatureExtractor: {key}={self.settings[key]} must be >= 1")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.progress = progress
        self.model.eval()

    def _load(self, path: Path):
        from reid.data.transforms import build_clip_transform
        from reid.engine.evaluation import load_model_from_checkpoint, run_settings_of

        if path.is_dir():  # an export folder: weights-only, rebuilt from model.json
            from reid.engine.export import load_weights_only

            model, meta = load_weights_only(path)
            inp, ev = meta.get("input", {}), meta.get("eval", {})
            self.settings.update(protocol=ev.get("protocol"), metric=ev.get("metric", "cosine"),
                                 max_frames=ev.get("max_frames"))
            return model, build_clip_transform(False, int(inp.get("height", DEFAULT_SIZE[0])),
                                               int(inp.get("width", DEFAULT_SIZE[1])))
        model, ckpt = load_model_from_checkpoint(path)  # errors name the file
        data_cfg, eval_cfg = run_settings_of(ckpt)
        self.settings.update(protocol=data_cfg.protocol, metric=eval_cfg.metric, max_frames=eval_cfg.max_frames,
                             chunk=eval_cfg.chunk)
        return model, builders.build_test_transform(data_cfg)

    @property
    def feat_dim(self) -> int:
        return int(self.model.feat_dim)

    # ------------------------------------------------------------------ inputs -> tracklets
    def _tracklets(self, items: Sequence) -> tuple[list, dict[str, np.ndarray]]:
        """Tracklet objects for the extractor, and the in-memory frames by name."""
        from reid.data.tracklet import Tracklet

        tracklets, frames = [], {}
        for i, item in enumerate(items):
            if isinstance(item, (np.ndarray, torch.Tensor)):
                arr = np.asarray(item.cpu() if isinstance(item, torch.Tensor) else item)
                if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8 or len(arr) == 0:
                    raise ExtractorInputError(f"tracklet {i}: frame arrays must be [T, H, W, 3] uint8 RGB with "
                                              f"T >= 1, got shape {arr.shape} dtype {arr.dtype}")
                names = tuple(f"<array {i}>/{j}" for j in range(len(arr)))
                frames.update(zip(names, arr))
            elif isinstance(item, (str, Path)):
                raise ExtractorInputError(f"tracklet {i}: {item} is one path; pass each tracklet as a list of "
                                          "frame paths (or call the extractor on one list for one tracklet)")
            else:
                names = tuple(str(p) for p in item)
                if not names:
                    raise ExtractorInputError(f"tracklet {i}: no frames")
                missing = [p for p in names if not Path(p).is_file()]
                if missing:
                    raise ExtractorInputError(f"tracklet {i}: frame not found: {missing[0]}"
                                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
            tracklets.append(Tracklet(frames=names, pid=0, camid=0, tracklet_id=i, row=i))
        return tracklets, frames

    def extract(self, tracklets: Sequence) -> np.ndarray:
        """``[N, D]`` float32: one vector per tracklet (a list of frame paths or a
        ``[T, H, W, 3]`` uint8 array each)."""
        from reid.data.frames import read_frame
        from reid.eval.extract import extract_features

        items, in_memory = self._tracklets(tracklets)
        if not items:
            return np.zeros((0, self.feat_dim), np.float32)

        def reader(name: str) -> np.ndarray:
            return in_memory[name] if name in in_memory else read_frame(name)

        return extract_features(self.model, items, self.transform, device=self.device,
                                chunk=int(self.settings["chunk"]), progress=self.progress,
                                max_frames=self.settings["max_frames"], reader=reader if in_memory else None)

    def __call__(self, inputs) -> np.ndarray:
        """One tracklet (a list of frame paths, or one ``[T, H, W, 3]`` array) -> ``[D]``; a list
        of tracklets -> ``[N, D]``. For a folder of tracklet folders use :meth:`folder`."""
        if isinstance(inputs, (str, Path)):
            hint = "extractor.folder(DIR)" if Path(inputs).is_dir() else "extractor([path, ...])"
            raise ExtractorInputError(f"{inputs}: pass a list of frame paths (one tracklet) or use {hint}")
        if isinstance(inputs, (np.ndarray, torch.Tensor)) and np.ndim(inputs) == 4:
            return self.extract([inputs])[0]
        inputs = list(inputs)
        if inputs and all(isinstance(x, (str, Path)) for x in inputs):
            return self.extract([inputs])[0]
        return self.extract(inputs)

    def folder(self, root: str | Path) -> tuple[list[str], np.ndarray]:
        """``(names, [N, D])`` for ``root/<tracklet>/<frames>``: sub-folders by name, frames by
        file name (``.jpg .jpeg .png .bmp .webp``)."""
        names, tracklets = self.scan(root)
        return names, self.extract(tracklets)

    @staticmethod
    def scan(root: str | Path) -> tuple[list[str], list[list[str]]]:
        """The tracklet folders of ``root`` and their frame paths (errors name the folder)."""
        root = Path(root)
        if not root.is_dir():
            raise ExtractorInputError(f"{root}: not a folder (expected DIR/<tracklet>/<frames>.jpg)")
        subdirs = sorted(p for p in root.iterdir() if p.is_dir())
        if not subdirs:
            found = "image files but no tracklet folders" if _image_files(root) else "no tracklet folders"
            raise ExtractorInputError(f"{root}: holds {found}; expected one sub-folder of frames per tracklet "
                                      "(DIR/<tracklet>/<frames>.jpg)")
        empty = [p for p in subdirs if not _image_files(p)]
        if empty:
            raise ExtractorInputError(f"{empty[0]}: no frames ({', '.join(IMAGE_SUFFIXES)}); remove it or add frames"
                                      + (f" ({len(empty) - 1} more empty folders)" if len(empty) > 1 else ""))
        return [p.name for p in subdirs], [[str(f) for f in _image_files(p)] for p in subdirs]


__all__ = ["FeatureExtractor", "ExtractorInputError", "IMAGE_SUFFIXES"]
