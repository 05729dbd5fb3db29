"""Training engine: typed configs, the trainer loop with hooks, checkpoints, distributed helpers.

    from reid.engine import load_config, train
    cfg = load_config("configs/default.yaml", ["optim.lr=0.001", "train.epochs=5"])
    final = train(cfg)          # the content of <output_dir>/final.json

``reid.engine.loop`` is the loop (and the hook events), ``reid.engine.hooks`` the default hooks,
``reid.engine.trainer`` builds a run and assembles them (``build_hooks``), ``reid.engine.config``
is the schema. Study hooks come from the caller: ``train(cfg, hooks=study_hooks(cfg))``.
"""

from __future__ import annotations

from pathlib import Path

from reid.engine.config import Config, ConfigError, load_config


def train(cfg: Config, hooks: list | tuple = (), resume: str | Path | None = None, overwrite: bool = False) -> dict:
    """Train ``cfg`` (optionally continuing from ``resume``: a run folder or checkpoint file) and
    return the final report (also written to ``<output_dir>/final.json``).

    A folder that already holds a run is refused (:class:`reid.engine.run_folder.RunFolderError`)
    unless ``resume`` continues it or ``overwrite=True``. Errors a front end should map to exit
    codes: ``RunFolderError`` and every other :class:`reid.errors.UserError` (2),
    :class:`reid.engine.loop.NonFiniteLossError` (3, incl. ``NonFiniteParametersError``),
    :class:`reid.engine.loop.NoTrainingStepError` (no step succeeded: no results)."""
    from reid.engine.trainer import Trainer

    return Trainer(cfg, hooks=hooks, resume=resume, overwrite=overwrite).fit()


__all__ = ["Config", "ConfigError", "load_config", "train"]
