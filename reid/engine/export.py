"""Export a trained checkpoint for inference: weights-only safetensors, ONNX, TorchScript.

Every format writes ``model.json`` (:func:`export_meta`: the run's model config, ``num_classes``,
the input size and clip length, the test transform, the reid version) next to its artifact:

* ``safetensors``: ``model.safetensors``, the model's ``state_dict`` only (no optimiser, no RNG,
  no pickle). :func:`load_weights_only` rebuilds the model from ``model.json`` and loads it with
  ``safetensors.torch.load_file``;
* ``onnx``: ``model.onnx`` (torch's ``torch.export``-based exporter), inputs ``frames [B, T, 3, H,
  W]`` float32 and ``mask [B, T]`` bool, output ``features [B, D]``; the batch is dynamic, ``T``
  fixed at export time;
* ``torchscript``: ``model.ts`` (``torch.jit.trace``), same inputs and output.

The graph is :class:`reid.models.video_model.RetrievalFeatures` (no data-dependent shapes: every
frame goes through the backbone, padding is removed by masked arithmetic). After writing, ONNX
(through onnxruntime) and TorchScript are checked against the PyTorch model's own
``forward(frames, mask)["bn_feat"]`` on a fresh input with another batch size and padded frames:
the largest absolute difference must stay within :data:`TOLERANCE`.

Clip length: ``eval.max_frames`` of the run when set (the frames per tracklet its own evaluation
used), else ``data.clip_length``. A tracklet with fewer frames is padded and masked; one with more
is sampled evenly to ``T`` frames, as the run's evaluation does.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

import reid
from reid.atomic import atomic_write, atomic_write_json
from reid.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from reid.engine.evaluation import load_model_from_checkpoint, run_settings_of
from reid.engine.preflight import EVAL_KEYS, check_checkpoint
from reid.errors import UserError
from reid.models import build_model
from reid.models.config import ModelConfig
from reid.models.video_model import RetrievalFeatures, VideoReIDModel

FORMATS = ("safetensors", "onnx", "torchscript")
FILES = {"safetensors": "model.safetensors", "onnx": "model.onnx", "torchscript": "model.ts"}
META_FILE = "model.json"
META_FORMAT = "reid-model"
META_VERSION = 1
TOLERANCE = 1e-4  # max |exported - PyTorch| on the check input (float32 features)
EXPORT_BATCH = 2  # example batch while exporting: 1 would let the exporter specialise the batch to 1
CHECK_BATCH = 3  # another batch size for the check, so a frozen batch dimension is caught


class ExportError(UserError, ValueError):
    """An export cannot be done or a weights-only folder cannot be read; the message names the
    file or option and what to do."""


class ExportMismatchError(RuntimeError):
    """An exported graph's features differ from PyTorch's by more than :data:`TOLERANCE` (a bug)."""


# ---------------------------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------------------------


def export_meta(ckpt: dict, model: VideoReIDModel, clip_length: int | None = None) -> dict[str, Any]:
    """The ``model.json`` content for a checkpoint (module docstring); ``clip_length`` replaces
    the run's default clip length."""
    data_cfg, eval_cfg = run_settings_of(ckpt)
    if clip_length is None:
        clip_length = eval_cfg.max_frames or data_cfg.clip_length
    if int(clip_length) < 1:
        raise ExportError(f"--clip-length {clip_length}: must be >= 1")
    model_cfg = ModelConfig.from_any(ckpt["config"]["model"], strict=False).model_dump()
    for key in ("pretrained", "init_from"):  # every weight is in the export: nothing to load at build time
        if key in model_cfg:
            model_cfg[key] = None
    return {
        "format": META_FORMAT,
        "format_version": META_VERSION,
        "reid_version": reid.__version__,
        "model": model_cfg,
        "num_classes": int(ckpt["num_classes"]),
        "feat_dim": int(model.feat_dim),
        "feature": "bn_feat" if model.bnneck is not None else "feat",
        "input": {"frames": ["B", int(clip_length), 3, data_cfg.height, data_cfg.width], "frames_dtype": "float32",
                  "mask": ["B", int(clip_length)], "mask_dtype": "bool", "height": data_cfg.height,
                  "width": data_cfg.width, "clip_length": int(clip_length), "channels": "RGB"},
        "test_transform": {"resize": [data_cfg.height, data_cfg.width], "interpolation": "bilinear",
                           "scale": 1 / 255, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                           "formula": "x = (rgb / 255 - mean) / std per channel, after the resize"},
        "eval": {"metric": eval_cfg.metric, "max_frames": eval_cfg.max_frames, "protocol": data_cfg.protocol},
        "source": {"epoch": ckpt.get("epoch"), "global_step": ckpt.get("global_step")},
    }


def read_meta(folder: str | Path) -> dict[str, Any]:
    """``model.json`` of an export folder, checked; errors name the file (and the JSON line)."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise ExportError(f"{path}: not found; export a checkpoint first (reid export --checkpoint best.pt "
                          f"--format safetensors --out {folder})")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise ExportError(f"{path}: not a reid model description (key 'format' must be {META_FORMAT!r})")
    if meta.get("format_version", 0) > META_VERSION:
        raise ExportError(f"{path}: format_version {meta['format_version']} is newer than this reid reads "
                          f"({META_VERSION}); upgrade reid")
    missing = [k for k in ("model", "num_classes") if k not in meta]
    if missing:
        raise ExportError(f"{path}: lacks key(s) {missing}")
    return meta


# ---------------------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------------------


def _safetensors():
    try:
        import safetensors.torch
    except ImportError:
        raise ExportError("the safetensors format needs the 'safetensors' package: "
                          "pip install 'reid[export]' (or pip install safetensors)") from None
    return safetensors.torch


def save_weights_only(model: VideoReIDModel, folder: Path) -> Path:
    """``model.state_dict()`` as ``folder/model.safetensors`` (atomic write)."""
    st = _safetensors()
    # contiguous copies: safetensors refuses views and shared storage
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    blob = st.save(state, metadata={"format": "pt", "producer": f"reid {reid.__version__}"})
    return atomic_write(folder / FILES["safetensors"], lambda handle: handle.write(blob), binary=True)


def load_weights_only(folder: str | Path, device: str | torch.device = "cpu") -> tuple[VideoReIDModel, dict]:
    """``(model in eval mode, meta)`` from an export folder's ``model.json`` and
    ``model.safetensors``, without unpickling anything. Errors are :class:`ExportError` naming
    the file."""
    folder = Path(folder)
    meta = read_meta(folder)
    path = folder / FILES["safetensors"]
    if not path.is_file():
        raise ExportError(f"{path}: not found; write it with reid export --format safetensors --out {folder}")
    st = _safetensors()
    try:
        state = st.load_file(str(path), device=str(device))
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file fails in several ways
        raise ExportError(f"{path}: cannot read it as safetensors ({type(exc).__name__}: {exc})") from None
    try:
        model = build_model(meta["model"], int(meta["num_classes"]), strict=False)
    except ValueError as exc:
        raise ExportError(f"{folder / META_FILE}: key 'model': {' '.join(str(exc).split())}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(f"{path}: the weights do not match the model described in {folder / META_FILE} "
                          f"({' '.join(str(exc).split())[:400]})") from None
    return model.to(device).eval(), meta


# ---------------------------------------------------------------------------------------------
# graphs: ONNX and TorchScript
# ---------------------------------------------------------------------------------------------


def example_inputs(meta: dict, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``frames [batch, T, 3, H, W]`` and a ``mask`` whose clips have 1..T real frames."""
    inp = meta["input"]
    t = inp["clip_length"]
    gen = torch.Generator().manual_seed(seed)
    frames = torch.randn(batch, t, 3, inp["height"], inp["width"], generator=gen)
    lengths = torch.arange(batch) % t + 1  # clip b has (b mod T) + 1 real frames, then padding
    mask = torch.arange(t)[None, :] < lengths[:, None]
    return frames, mask


def _onnx_export(wrapper: RetrievalFeatures, meta: dict, path: Path) -> None:
    missing = [name for name in ("onnx", "onnxscript") if not _importable(name)]
    if missing:
        raise ExportError(f"ONNX export needs {' and '.join(missing)}: pip install 'reid[export]' "
                          "(or pip install onnx onnxscript onnxruntime)")
    frames, mask = example_inputs(meta, EXPORT_BATCH)
    batch = torch.export.Dim("batch")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with _quiet():
            program = torch.onnx.export(
                wrapper, (frames, mask), input_names=["frames", "mask"], output_names=["features"],
                dynamic_shapes={"frames": {0: batch}, "mask": {0: batch}}, dynamo=True, verbose=False,
                external_data=False)
    except Exception as exc:  # noqa: BLE001 - torch.export reports unsupported code in many types
        raise ExportError(f"ONNX export of model.aggregation={meta['model']['aggregation']!r} failed "
                          f"({_first_line(exc)}); --format torchscript or "
                          "safetensors work for every model") from None
    program.save(str(tmp), external_data=False)
    tmp.replace(path)


def _torchscript_export(wrapper: RetrievalFeatures, meta: dict, path: Path) -> None:
    frames, mask = example_inputs(meta, EXPORT_BATCH)
    try:
        with _quiet():
            traced = torch.jit.trace(wrapper, (frames, mask), check_trace=False)
    except Exception as exc:  # noqa: BLE001 - a backbone with Python control flow fails in many types
        raise ExportError(f"TorchScript tracing of model.backbone={meta['model']['backbone']!r} failed "
                          f"({_first_line(exc)}); --format safetensors works for every model") from None
    with _quiet():
        atomic_write(path, lambda handle: torch.jit.save(traced, handle), binary=True)


def run_exported(fmt: str, path: Path, frames: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Features ``[B, D]`` computed by an exported file (onnxruntime on CPU for ONNX)."""
    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError:
            raise ExportError("checking the ONNX file needs onnxruntime: pip install 'reid[export]' "
                              "(or pass --no-verify)") from None
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(["features"], {"frames": frames.numpy(), "mask": mask.numpy()})[0]
    if fmt == "torchscript":
        with _quiet():
            loaded = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad():
            return loaded(frames, mask).numpy()
    if fmt == "safetensors":
        model, _ = load_weights_only(path.parent)
        with torch.no_grad():
            return model(frames, mask)["bn_feat"].numpy()
    raise ValueError(f"unknown format {fmt!r}")


def verify_export(fmt: str, path: Path, model: VideoReIDModel, meta: dict) -> float:
    """Largest ``|exported - PyTorch|`` over a check batch (:data:`CHECK_BATCH` clips, padded);
    raises :class:`ExportMismatchError` above :data:`TOLERANCE`."""
    frames, mask = example_inputs(meta, CHECK_BATCH, seed=1)
    with torch.no_grad():
        reference = model(frames, mask)["bn_feat"].numpy()
    got = run_exported(fmt, path, frames, mask)
    if got.shape != reference.shape:
        raise ExportMismatchError(f"{path}: features of shape {got.shape}, PyTorch gives {reference.shape}")
    diff = float(np.abs(got - reference).max())
    if not diff <= TOLERANCE:  # also catches NaN
        raise ExportMismatchError(f"{path}: features differ from PyTorch's by {diff:.3g} > {TOLERANCE}")
    return diff


# ---------------------------------------------------------------------------------------------
# front door
# ---------------------------------------------------------------------------------------------


def export_checkpoint(checkpoint: str | Path, fmt: str, out: str | Path, clip_length: int | None = None,
                      verify: bool = True) -> dict[str, Any]:
    """Export ``checkpoint`` (a file, or a run folder: its ``last.pt``) as ``fmt`` into folder
    ``out``: ``model.json`` plus the format's file (module docstring). Returns ``{"format",
    "files": {name: bytes}, "checkpoint", "checkpoint_bytes", "max_abs_diff" (None without
    ``verify``)}``. Bad input is a one-line :class:`reid.errors.UserError` naming the file."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: valid formats are {', '.join(FORMATS)}")
    path = check_checkpoint(checkpoint, "--checkpoint", EVAL_KEYS)
    model, ckpt = load_model_from_checkpoint(path)
    model = model.cpu().eval()
    meta = export_meta(ckpt, model, clip_length)
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"--out {folder}: exists and is not a folder")
    target = folder / FILES[fmt]
    if fmt == "safetensors":
        save_weights_only(model, folder)
    elif fmt == "onnx":
        _onnx_export(RetrievalFeatures(model).eval(), meta, target)
    else:
        _torchscript_export(RetrievalFeatures(model).eval(), meta, target)
    atomic_write_json(folder / META_FILE, meta)
    diff = verify_export(fmt, target, model, meta) if verify else None
    return {"format": fmt, "checkpoint": str(path), "checkpoint_bytes": path.stat().st_size,
            "files": {str(folder / name): (folder / name).stat().st_size for name in (FILES[fmt], META_FILE)},
            "max_abs_diff": diff, "clip_length": meta["input"]["clip_length"]}


@contextlib.contextmanager
def _quiet():
    """Silence torch's export chatter: jit's deprecation warnings, the exporter's notes, and the
    symbolic-shapes logger and torch.export's print of the partial graph to stderr before a
    failure (the failure itself still raises and is reported in one line)."""
    loggers = [logging.getLogger(name) for name in
               ("torch.fx.experimental.symbolic_shapes", "torch._export", "torch.export", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _first_line(exc: BaseException) -> str:
    """The first line of the innermost cause (the exporter wraps the real reason, e.g. a
    data-dependent guard, in generic "failed to export" errors)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


__all__ = ["ExportError", "ExportMismatchError", "FILES", "FORMATS", "META_FILE", "TOLERANCE",
           "example_inputs", "export_checkpoint", "export_meta", "load_weights_only", "read_meta",
           "run_exported", "save_weights_only", "verify_export"]
