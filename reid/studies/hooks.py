"""The front door's study hooks: config sections that belong to a study become trainer hooks
here, outside the engine (which never imports ``reid.studies``).

    from reid.engine import train
    from reid.studies.hooks import study_hooks
    final = train(cfg, hooks=study_hooks(cfg))     # what tools/train.py does
"""

from __future__ import annotations


def study_hooks(cfg) -> list:
    """Hooks for the study sections of ``cfg``: ``noise:`` -> :class:`~reid.studies.noise_hook.NoiseHook`."""
    hooks = []
    if cfg.noise is not None:
        from reid.studies.noise_hook import NoiseHook

        hooks.append(NoiseHook(cfg.noise))
    return hooks


__all__ = ["study_hooks"]
