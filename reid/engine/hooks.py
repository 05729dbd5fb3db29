"""The trainer's default hooks: metric records, progress bar, evaluation (with the untrained
baseline and best tracking), checkpoints and the final report. Assembled in one place,
:func:`reid.engine.trainer.build_hooks`; the event contract is in :mod:`reid.engine.loop`.
"""

from __future__ import annotations

import time
from typing import Any

from tqdm import tqdm

from reid.atomic import atomic_write_json
from reid.engine.distributed import barrier
from reid.engine.report import format_final_table, numeric_metrics


VALIDATION_KEYS = ("mAP", "rank1", "rank5", "mINP", "queries")  # logged as val_<key>


class MetricsWriterHook:
    """``train`` records in ``metrics.jsonl`` / TensorBoard every ``train.log_every`` steps (and
    at the last iteration of an epoch), and the per-epoch summary line in ``train.log``."""

    def __init__(self, log_every: int) -> None:
        self.log_every = log_every

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self.loss_sum, self.steps, self.clips, self.clips_since_log = 0.0, 0, 0, 0
        self.t_start = self.t_log = time.perf_counter()

    def on_batch_end(self, trainer, batch, outputs, losses) -> None:
        n = batch["frames"].shape[0]
        value = losses["total"]
        self.loss_sum += value
        self.steps += 1
        self.clips += n
        self.clips_since_log += n
        if trainer.global_step % self.log_every == 0 or trainer.iteration == trainer.iters_per_epoch - 1:
            now = time.perf_counter()
            self.rate = self.clips_since_log * trainer.dist.world_size / max(now - self.t_log, 1e-9)
            self.t_log, self.clips_since_log = now, 0
            record = {
                "epoch": trainer.epoch + 1,
                "lr": trainer.last_step["lr"],
                "loss": value,
                "id_loss": losses["id"],
                "metric_loss": losses["metric"],
                "clips_per_s": self.rate,
            }
            if trainer.last_step.get("grad_norm") is not None:
                record["grad_norm"] = float(trainer.last_step["grad_norm"])
            for key, stat in (getattr(trainer.id_loss, "last_stats", None) or {}).items():
                if isinstance(stat, (int, float)):
                    record[f"id/{key}"] = float(stat)
            trainer.metrics.write("train", trainer.global_step, **record)

    def on_epoch_end(self, trainer, epoch: int) -> None:
        seconds = time.perf_counter() - self.t_start
        rate = self.clips * trainer.dist.world_size / max(seconds, 1e-9)
        trainer.logger.info("epoch %d/%d: loss %.4f, %d steps, %.1f clips/s, lr %.3g",
                            epoch + 1, trainer.epochs, self.loss_sum / max(self.steps, 1), self.steps, rate,
                            trainer.optimizer.param_groups[0]["lr"])


class ProgressBarHook:
    """A tqdm bar per epoch (rank 0, ``train.progress``) showing the loss and clips/s."""

    def __init__(self, enabled: bool, refresh_every: int) -> None:
        self.enabled = enabled
        self.refresh_every = refresh_every
        self.bar = None

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self.bar = tqdm(total=trainer.iters_per_epoch, desc=f"epoch {epoch + 1}/{trainer.epochs}",
                        disable=not (trainer.dist.is_main and self.enabled), dynamic_ncols=True, leave=False)
        self.t_last, self.clips = time.perf_counter(), 0

    def on_batch_end(self, trainer, batch, outputs, losses) -> None:
        self.bar.update(1)
        self.clips += batch["frames"].shape[0]
        if trainer.global_step % self.refresh_every == 0:
            now = time.perf_counter()
            rate = self.clips * trainer.dist.world_size / max(now - self.t_last, 1e-9)
            self.t_last, self.clips = now, 0
            self.bar.set_postfix(loss=f"{losses['total']:.4f}", clips_s=f"{rate:.1f}")

    def on_epoch_end(self, trainer, epoch: int) -> None:
        self.bar.close()


class EvalHook:
    """Retrieval evaluation every ``eval.every`` epochs and after the last one (rank 0 over the
    full test set, the other ranks wait), the untrained baseline before training, the history and
    the best evaluation by mAP (saved as ``best.pt``; selected on the test set, so an oracle) and,
    with ``eval.validation``, the best by validation mAP (``val_*`` metrics). Other hooks'
    ``on_evaluate`` results join the logged metrics."""

    state_key = "evaluation"

    def __init__(self, every: int, untrained: bool) -> None:
        self.every = every
        self.evaluate_untrained = untrained
        self.best: dict[str, Any] = {"mAP": -1.0, "epoch": 0, "metrics": None}
        # by validation mAP (eval.validation): what a user without test labels can select on
        self.best_val: dict[str, Any] = {"val_mAP": -1.0, "epoch": 0, "metrics": None}
        self.untrained: dict | None = None
        self.history: list[dict] = []
        self.last_metrics: dict | None = None

    # state --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"best": dict(self.best), "best_val": dict(self.best_val), "untrained": self.untrained,
                "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.best = dict(state.get("best") or self.best)
        self.best_val = dict(state.get("best_val") or self.best_val)
        self.untrained = state.get("untrained")
        self.history = list(state.get("history") or [])
        self.last_metrics = self.history[-1]["metrics"] if self.history else None

    # events -------------------------------------------------------------------------------
    def on_train_start(self, trainer) -> None:
        if self.untrained is None and self.evaluate_untrained and not trainer.resumed:
            trainer.logger.info("evaluating the untrained network (baseline)")
            self.untrained = self.evaluate_and_log(trainer, 0)

    def due(self, epoch_done: int, epochs: int) -> bool:
        """Whether the evaluation after ``epoch_done`` epochs is scheduled (every ``eval.every``
        epochs and after the last one)."""
        return epoch_done > 0 and (epoch_done == epochs or bool(self.every and epoch_done % self.every == 0))

    def on_epoch_end(self, trainer, epoch: int) -> None:
        if self.due(epoch + 1, trainer.epochs):
            self.evaluate_epoch(trainer, epoch + 1)

    def evaluate_pending(self, trainer) -> None:
        """After a resume: the checkpoint of epoch N is written before N's evaluation, so when
        that evaluation is due and not in the history (the run died while evaluating, or before
        the next checkpoint), run it now, before training goes on."""
        done = trainer.start_epoch
        if not trainer.resumed or not self.due(done, trainer.epochs):
            return
        if self.history and self.history[-1]["epoch"] >= done:
            return
        trainer.logger.info("evaluating epoch %d (its evaluation had not finished before the resume)", done)
        self.evaluate_epoch(trainer, done)

    def evaluate_epoch(self, trainer, epoch_done: int) -> None:
        metrics = self.evaluate_and_log(trainer, epoch_done)
        if metrics is None:  # ranks other than 0
            return
        self.last_metrics = metrics
        self.history.append({"epoch": epoch_done, "metrics": numeric_metrics(metrics)})
        if metrics["mAP"] > self.best["mAP"]:
            self.best = {"mAP": float(metrics["mAP"]), "epoch": epoch_done, "metrics": numeric_metrics(metrics)}
            trainer.save_checkpoint("best.pt")
        if metrics.get("val_mAP") is not None and metrics["val_mAP"] > self.best_val["val_mAP"]:
            self.best_val = {"val_mAP": float(metrics["val_mAP"]), "epoch": epoch_done,
                             "metrics": numeric_metrics(metrics)}

    def evaluate_and_log(self, trainer, epoch_done: int) -> dict | None:
        """Rank 0 evaluates; all ranks wait. Returns the merged metrics on rank 0."""
        metrics = None
        if trainer.dist.is_main:
            t0 = time.perf_counter()
            metrics = trainer.evaluate()
            validation = getattr(trainer, "evaluate_validation", lambda: None)()
            if validation is not None:
                metrics.update({f"val_{k}": validation[k] for k in VALIDATION_KEYS if k in validation})
            for extra in trainer.call_hooks("on_evaluate", epoch_done - 1, metrics):
                if extra:
                    metrics.update(extra)
            # timing goes to the log only: metrics must be identical between identical runs
            trainer.metrics.write("eval", trainer.global_step, epoch=epoch_done,
                                  eval_seconds=time.perf_counter() - t0, **metrics)
            trainer.logger.info("epoch %d eval [%s, %s]: mAP %.4f rank1 %.4f rank5 %.4f mINP %.4f",
                                epoch_done, metrics.get("protocol"), metrics.get("metric"), metrics["mAP"],
                                metrics["rank1"], metrics["rank5"], metrics.get("mINP", float("nan")))
        barrier(trainer.dist)
        return metrics


class CheckpointHook:
    """``last.pt`` every ``train.checkpoint_every`` epochs and after the last one, **before** the
    evaluation of that epoch (placed before :class:`EvalHook`), so a failing evaluation never
    loses the epoch; a resumed run evaluates such an epoch first (:meth:`EvalHook.evaluate_pending`).
    At the end of the run ``last.pt`` is written once more, holding the final evaluation."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_epoch_end(self, trainer, epoch: int) -> None:
        if epoch + 1 == trainer.epochs or (epoch + 1) % self.every == 0:
            trainer.save_checkpoint("last.pt")

    def on_fit_end(self, trainer, final: dict) -> None:
        trainer.save_checkpoint("last.pt")


class FinalReportHook:
    """Last of the hooks: writes ``final.json`` (after every other ``on_fit_end`` added its keys)
    and prints the results table."""

    def on_fit_end(self, trainer, final: dict) -> None:
        atomic_write_json(trainer.output_dir / "final.json", final, indent=2)
        table = format_final_table(final)
        print(table, flush=True)
        for line in table.splitlines():
            trainer.logger.info(line, extra={"file_only": True})


__all__ = ["MetricsWriterHook", "ProgressBarHook", "EvalHook", "CheckpointHook", "FinalReportHook"]
