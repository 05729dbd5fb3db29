"""Run records: ``train.log`` (python logging), ``metrics.jsonl`` and TensorBoard events.

``metrics.jsonl`` holds one JSON object per line with a ``type``:

* ``train``: ``epoch``, ``step`` (global optimiser step), ``lr``, ``loss``, ``id_loss``,
  ``metric_loss``, ``clips_per_s`` and the id loss's float ``last_stats`` prefixed ``id/``;
* ``eval``: ``epoch``, ``step``, the retrieval report (``protocol``, ``metric``, ``mAP``,
  ``rank1`` ...) plus whatever hooks' ``on_evaluate`` returned;
* ``event``: ``message`` (skipped non-finite steps, stop, resume).

Only rank 0 writes; other ranks get a logger that prints warnings only.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

LOGGER_NAME = "reid.train"


def setup_logging(output_dir: Path | None, is_main: bool) -> logging.Logger:
    """Console (stdout) + ``train.log`` for rank 0; warnings only for other ranks."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    # records logged with extra={"file_only": True} (e.g. the final table, already printed
    # plainly) go to train.log only, so the console does not show them twice
    console.addFilter(lambda record: not getattr(record, "file_only", False))
    logger.addHandler(console)
    if is_main and output_dir is not None:
        file_handler = logging.FileHandler(output_dir / "train.log")
        file_handler.setFormatter(fmt)
        logger.addHandler(file_handler)
    return logger


def close_logging() -> None:
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def _plain(value: Any) -> Any:
    """JSON-safe scalar: tensors/numpy to float, non-finite floats to strings (JSON has no NaN)."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsWriter:
    """Appends records to ``metrics.jsonl`` and mirrors numeric fields to TensorBoard.

    TensorBoard is optional: when ``torch.utils.tensorboard`` cannot be imported (``tensorboard``
    not installed) one line is logged and only ``metrics.jsonl`` is written. :meth:`tell` is the
    file's size after the last record; a checkpoint stores it and a resumed run
    :meth:`truncate`-s the file back to it, so the records of a re-run stretch are not repeated.
    """

    def __init__(self, output_dir: Path | None, enabled: bool, tensorboard: bool = True) -> None:
        self.enabled = enabled and output_dir is not None
        self._jsonl = None
        self._tb = None
        if not self.enabled:
            return
        self.path = output_dir / "metrics.jsonl"
        self._jsonl = open(self.path, "a", buffering=1)
        if not tensorboard:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # an optional extra: keep training without it
            logging.getLogger(LOGGER_NAME).info(
                "tensorboard not installed (pip install tensorboard): records go to metrics.jsonl only")
            return
        self._tb = SummaryWriter(log_dir=str(output_dir / "tensorboard"))

    def tell(self) -> int:
        """Bytes of ``metrics.jsonl`` written so far (0 when disabled)."""
        if self._jsonl is None:
            return 0
        self._jsonl.flush()
        return self._jsonl.tell()

    def truncate(self, size: int) -> int:
        """Cut ``metrics.jsonl`` back to ``size`` bytes (the records after a checkpoint); returns
        how many bytes were dropped."""
        if self._jsonl is None:
            return 0
        self._jsonl.flush()
        current = self._jsonl.tell()
        if 0 <= size < current:
            self._jsonl.truncate(size)
            self._jsonl.seek(size)
            return current - size
        return 0

    def write(self, record_type: str, step: int, **fields: Any) -> None:
        if not self.enabled:
            return
        record = {"type": record_type, "step": step, **{k: _plain(v) for k, v in fields.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if key in ("type", "step", "epoch"):
                    continue
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(f"{record_type}/{key}", value, step)

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


__all__ = ["LOGGER_NAME", "setup_logging", "close_logging", "MetricsWriter"]
