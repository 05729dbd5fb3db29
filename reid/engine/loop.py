"""The training loop: it loops, steps and calls hooks; everything else is a hook.

In the style of detectron2's ``engine/train_loop.py``: :class:`TrainLoop` owns the epoch /
iteration loop and one optimiser step (:meth:`TrainLoop.run_step`: forward, losses, non-finite
policy, backward, clip, step, schedule). Evaluation, checkpoints, metric records, the progress
bar and the final report are hooks (:mod:`reid.engine.hooks`), assembled by
:func:`reid.engine.trainer.build_hooks`. The components (model, losses, optimiser, loader...) are
built by the subclass :class:`reid.engine.trainer.Trainer`.

Per step::

    out   = model(frames [B,T,3,H,W], mask [B,T], label)      (autocast on CUDA when train.amp)
    L     = loss.id.weight * L_id(out["logits"], y) + loss.metric.weight * L_rank(out["feat"], y)
    if not finite(L): nan_policy skip -> drop the step (counted) | stop -> checkpoint + raise
    backward (GradScaler for fp16), unscale, ||g||_2 (clipped to <= train.grad_clip when set)
    if not finite(||g||_2) or not finite(BN statistics): the same policy, before the optimiser step (fp16: the GradScaler's own
        inf/NaN skip handles it, that is how its loss scale is tuned)
    optimiser step; if a parameter is now NaN/inf: stop (NonFiniteParametersError)
    scheduler.step() when sched.interval == "iteration"

An epoch without one successful optimiser step raises :class:`NoTrainingStepError` (no
evaluation of a model that stopped training presented as trained, no results table). A dropped
step restores the buffers the forward pass changed (batch-norm statistics), so ``nan_stop.pt``
and a skip leave the exact state before the step.

Losses run in float32 on the upcast logits/embeddings: the weighting core's exponentials
(IMAE/DM) must not be evaluated in half precision.

Hook events (every method optional; epochs are 0-based, logs and ``final.json`` count from 1):

* ``on_fit_start(trainer)``: components exist, the training loader does not yet (a hook may
  replace ``trainer.data.train``); all ranks;
* ``on_train_start(trainer)``: everything is built and a resume checkpoint loaded; all ranks;
* ``on_epoch_start(trainer, epoch)``, ``on_batch_end(trainer, batch, outputs, losses)``,
  ``on_epoch_end(trainer, epoch)``: all ranks. ``batch`` is the collated dict (``index``,
  ``label``, ``row``, ...), ``outputs`` the model's dict, ``losses`` holds ``total``, ``id``,
  ``metric`` (floats) and the loss objects ``id_loss``, ``metric_loss``;
* ``on_evaluate(trainer, epoch, metrics) -> dict | None``: rank 0, after each retrieval
  evaluation (``epoch = -1``: the untrained network); returned keys join the logged metrics;
* ``on_fit_end(trainer, final)``: rank 0, with the final report (hooks may add keys).

A stateful hook defines ``state_key`` plus ``state_dict()`` / ``load_state_dict(state)``; its state
travels in the checkpoint under ``hooks/<state_key>``, so resume stays exact.
"""

from __future__ import annotations

from typing import Any

import torch

from reid.engine.distributed import any_rank, barrier

HOOK_METHODS = ("on_fit_start", "on_train_start", "on_epoch_start", "on_batch_end", "on_epoch_end",
                "on_evaluate", "on_fit_end")


class NonFiniteLossError(RuntimeError):
    """Raised under ``train.nan_policy: stop`` after the state was saved to ``nan_stop.pt`` (a
    non-finite loss or gradient norm), and by :class:`NonFiniteParametersError`."""


class NonFiniteParametersError(NonFiniteLossError):
    """A parameter became NaN/inf after an optimiser step (whatever ``train.nan_policy``)."""


class NoTrainingStepError(RuntimeError):
    """A whole epoch went by without one successful optimiser step (every step non-finite)."""


class TrainLoop:
    """Epochs of ``iters_per_epoch`` optimiser steps with hook dispatch.

    A subclass provides :meth:`setup` (sets ``model``, ``ddp_model``, ``id_loss``,
    ``metric_loss``, ``optimizer``, ``scheduler``, ``scaler``, ``iters_per_epoch``,
    ``total_steps``, ``start_epoch``, ``epochs``), :meth:`train_loader`, :meth:`final_report`,
    :meth:`save_checkpoint`, and the attributes ``cfg``, ``dist``, ``device``, ``logger``.
    """

    def __init__(self) -> None:
        self.hooks: list = []
        self.epoch = 0
        self.iteration = 0  # position in the current epoch (skipped steps count)
        self.global_step = 0
        self.nan_skipped = 0
        self.steps_succeeded = 0  # optimiser steps taken in this process (resume: since the resume)
        self._steps_at_epoch_start = 0
        self.last_step: dict[str, Any] = {}  # lr / grad_norm of the last step, for writer hooks

    # ------------------------------------------------------------------ hooks
    def call_hooks(self, name: str, *args) -> list:
        """Call ``name`` on every hook that defines it, in order; returns their results."""
        results = []
        for hook in self.hooks:
            method = getattr(hook, name, None)
            if method is not None:
                results.append(method(self, *args))
        return results

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict:
        """Train ``epochs`` epochs (from ``start_epoch``) and return the final report."""
        try:
            return self._fit()
        finally:
            self.teardown()

    def _fit(self) -> dict:
        self.setup()  # builds the components; calls on_fit_start before the loader exists
        self.call_hooks("on_train_start")
        self.before_epochs()
        for epoch in range(self.start_epoch, self.epochs):
            self.epoch = epoch
            self.call_hooks("on_epoch_start", epoch)
            self._steps_at_epoch_start = self.steps_succeeded
            self.run_epoch(epoch)
            self.require_progress(epoch)
            self.epoch = epoch + 1
            self.call_hooks("on_epoch_end", epoch)
            barrier(self.dist)
        final = None
        if self.dist.is_main:
            final = self.final_report()
            self.call_hooks("on_fit_end", final)
        barrier(self.dist)
        return final if final is not None else {}

    def run_epoch(self, epoch: int) -> None:
        self.ddp_model.train()
        for it, batch in enumerate(self.train_loader(epoch)):
            if it >= self.iters_per_epoch:
                break
            self.iteration = it
            step = self.run_step(batch, epoch, it)
            if step is None:  # non-finite loss, skipped under nan_policy=skip
                continue
            self.call_hooks("on_batch_end", batch, step["outputs"], step["losses"])
        if self.cfg.sched.interval == "epoch":
            self.scheduler.step()

    # ------------------------------------------------------------------ one step
    def autocast(self):
        """The autocast context of forward passes (disabled unless ``train.amp`` on CUDA)."""
        if self.amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def forward(self, batch: dict) -> tuple[dict, torch.Tensor]:
        """The model's outputs (``logits``, ``feat``, ...) and the labels of a collated batch.
        Video clips: ``model(frames [B,T,3,H,W], mask [B,T], label)``; a subclass training
        another kind of model overrides this."""
        frames = batch["frames"].to(self.device, non_blocking=True)
        mask = batch["mask"].to(self.device, non_blocking=True)
        labels = batch["label"].to(self.device, non_blocking=True)
        with self.autocast():
            outputs = self.ddp_model(frames, mask, labels)
        return outputs, labels

    def compute_losses(self, outputs: dict, labels: torch.Tensor) -> dict:
        """Weighted sum of the id loss on ``logits`` and the ranking loss on ``feat`` (float32)."""
        cfg = self.cfg.loss
        if hasattr(self.id_loss, "set_progress"):
            self.id_loss.set_progress(self.global_step, self.total_steps)
        total = outputs["logits"].new_zeros((), dtype=torch.float32)
        id_value = metric_value = None
        if cfg.id.weight > 0:
            id_value = self.id_loss(outputs["logits"].float(), labels)
            total = total + cfg.id.weight * id_value
        if self.metric_loss is not None:
            # a ranking loss that weights pairs by the identity classifier (OSM + CAA) declares it
            extra = {"logits": outputs["logits"].float()} if getattr(self.metric_loss, "needs_logits", False) else {}
            metric_value = self.metric_loss(outputs["feat"].float(), labels, **extra)
            total = total + cfg.metric.weight * metric_value
        return {"total": total, "id": id_value, "metric": metric_value}

    def run_step(self, batch: dict, epoch: int = 0, it: int = 0) -> dict | None:
        """One optimiser step on a collated batch (the unit the benchmark times).

        Returns ``{"outputs", "losses", "lr", "grad_norm"}`` (``losses`` in the hook format), or
        None when the loss was non-finite and ``nan_policy: skip`` dropped the step (``stop``
        raises :class:`NonFiniteLossError`). A dropped step leaves no trace: the forward pass's
        buffer updates (batch-norm running statistics) are undone too."""
        buffers = [b for b in self.model.buffers()]
        saved = [b.clone() for b in buffers]  # a few KB: BN statistics move in the forward pass
        outputs, labels = self.forward(batch)
        losses = self.compute_losses(outputs, labels)
        total = losses["total"]
        if any_rank(not bool(torch.isfinite(total)), self.dist, self.device):
            return self._drop_step(epoch, it, total, "loss", buffers, saved)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)  # clip and log true gradient norms under fp16
        lr_used = self.optimizer.param_groups[0]["lr"]  # the rate this step applies
        grad_norm = None
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.cfg.train.grad_clip is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.train.grad_clip)
        elif not self.scaler.is_enabled():
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        # fp16: an inf/NaN gradient is the GradScaler's signal to skip and lower its scale
        bad_grad = grad_norm is not None and not self.scaler.is_enabled() and not bool(torch.isfinite(grad_norm))
        bad_buffers = not _all_finite([b for b in buffers if b.is_floating_point()])
        if any_rank(bad_grad or bad_buffers, self.dist, self.device):
            what = "gradient norm" if bad_grad or not bad_buffers else "batch-norm statistics"
            return self._drop_step(epoch, it, grad_norm if bad_grad else float("inf"), what, buffers, saved)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.check_parameters(epoch, it)
        self.steps_succeeded += 1
        if self.cfg.sched.interval == "iteration":
            self.scheduler.step()
        self.global_step += 1
        self.last_step = {"lr": lr_used, "grad_norm": grad_norm}
        hook_losses = {
            "total": float(total.detach()),
            "id": None if losses["id"] is None else float(losses["id"].detach()),
            "metric": None if losses["metric"] is None else float(losses["metric"].detach()),
            "id_loss": self.id_loss,
            "metric_loss": self.metric_loss,
        }
        return {"outputs": outputs, "losses": hook_losses, "lr": lr_used, "grad_norm": grad_norm}

    def _drop_step(self, epoch: int, it: int, value, what: str, buffers: list, saved: list) -> None:
        for buf, old in zip(buffers, saved):
            buf.copy_(old)
        self.non_finite_what = what
        self.non_finite(epoch, it, value if isinstance(value, torch.Tensor) else torch.tensor(value))
        return None

    def non_finite(self, epoch: int, it: int, total: torch.Tensor) -> None:
        """Apply ``train.nan_policy`` to a step whose loss (or, ``self.non_finite_what``, gradient
        norm) is NaN/inf on any rank. Nothing was applied yet: the parameters and the optimiser
        state are those before the step, which is what ``nan_stop.pt`` holds."""
        what = getattr(self, "non_finite_what", "loss")
        self.optimizer.zero_grad(set_to_none=True)
        where = f"epoch {epoch + 1}, iteration {it + 1}, global step {self.global_step}"
        if self.cfg.train.nan_policy == "skip":
            self.nan_skipped += 1
            self.logger.warning("non-finite %s (%s) at %s: step skipped (%d skipped so far)",
                                what, float(total.detach()), where, self.nan_skipped)
            self.metrics.write("event", self.global_step, epoch=epoch + 1,
                               message=f"non-finite {what} at {where}: step skipped", nan_skipped=self.nan_skipped)
            if self.cfg.sched.interval == "iteration":
                self.scheduler.step()  # the schedule follows the iteration clock, skipped or not
            return
        path = self.save_checkpoint("nan_stop.pt")
        message = (f"non-finite {what} ({float(total.detach())}) at {where}; train.nan_policy=stop: "
                   f"state before this step saved to {path or self.output_dir / 'nan_stop.pt'}. "
                   "Lower optim.lr, set train.grad_clip, or use model.classifier=cosine for IMAE/DM.")
        self.logger.error(message)
        self.metrics.write("event", self.global_step, epoch=epoch + 1, message=message)
        raise NonFiniteLossError(message)

    def check_parameters(self, epoch: int, it: int) -> None:
        """Stop when the step just taken left a NaN/inf parameter (e.g. a finite but huge update,
        ``lr * g`` overflowing float32): nothing after it could be trusted. One fused reduction
        per step (``_foreach_norm``; NaN and inf propagate into the norms)."""
        params = [p.detach() for p in self.model.parameters()]
        if not any_rank(not _all_finite(params), self.dist, self.device):
            return
        bad = [name for name, p in self.model.named_parameters() if not bool(torch.isfinite(p).all())]
        message = (f"parameters became non-finite after the optimiser step at epoch {epoch + 1}, iteration "
                   f"{it + 1} (global step {self.global_step + 1}): {', '.join(bad[:5])}"
                   f"{' ...' if len(bad) > 5 else ''}. The last checkpoint (last.pt) holds finite weights. "
                   "Lower optim.lr or set train.grad_clip.")
        self.logger.error(message)
        self._event(epoch, message)
        raise NonFiniteParametersError(message)

    def require_progress(self, epoch: int) -> None:
        """Raise :class:`NoTrainingStepError` when a whole epoch took no optimiser step (every
        step non-finite and skipped): the weights no longer move, and evaluating them as a
        trained model would report results of a run that did not train."""
        if self.steps_succeeded > self._steps_at_epoch_start or self.iters_per_epoch == 0:
            return
        message = (f"no optimiser step succeeded in epoch {epoch + 1} (all {self.iters_per_epoch} steps had "
                   f"non-finite values and were skipped; {self.steps_succeeded} steps succeeded in "
                   "this run): stopping without results. Lower optim.lr, set train.grad_clip, or use "
                   "model.classifier=cosine for IMAE/DM.")
        self.logger.error(message)
        self._event(epoch, message)
        raise NoTrainingStepError(message)

    def _event(self, epoch: int, message: str) -> None:
        metrics = getattr(self, "metrics", None)  # loops without a metrics writer log only
        if metrics is not None:
            metrics.write("event", self.global_step, epoch=epoch + 1, message=message)

    # ------------------------------------------------------------------ provided by the subclass
    def setup(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def before_epochs(self) -> None:
        """Called after ``on_train_start`` hooks, right before the first epoch."""

    def train_loader(self, epoch: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def final_report(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def save_checkpoint(self, name: str):  # pragma: no cover - abstract
        raise NotImplementedError

    def teardown(self) -> None:
        """Release logging / process-group resources (always called by :meth:`fit`)."""


def _all_finite(tensors: list) -> bool:
    """No NaN/inf in any of ``tensors``: one fused max-abs reduction (NaN and inf propagate)."""
    if not tensors:
        return True
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(tensors, float("inf")))).all())


__all__ = ["TrainLoop", "NonFiniteLossError", "NonFiniteParametersError", "NoTrainingStepError", "HOOK_METHODS"]
