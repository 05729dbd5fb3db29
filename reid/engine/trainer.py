"""The training loop: a small loop with clear hooks.

``Trainer(cfg, hooks=[...]).fit() -> dict`` (the content of ``final.json``). One epoch is one pass
of the P x K identity sampler (``data.p`` identities x ``data.k`` tracklets per batch, one clip of
``data.clip_length`` frames per tracklet), optionally capped by ``train.iters_per_epoch``.

Per step::

    out   = model(frames [B,T,3,H,W], mask [B,T], labels)      (autocast on CUDA when train.amp)
    L     = loss.id.weight * L_id(out["logits"], y) + loss.metric.weight * L_rank(out["feat"], y)
    if not finite(L): nan_policy skip -> drop the step (counted) | stop -> checkpoint + raise
    backward (GradScaler for fp16), unscale, clip ||g||_2 <= train.grad_clip, optimiser step,
    scheduler.step() when sched.interval == "iteration"

Losses run in float32 on the upcast logits/embeddings: the weighting core's exponentials
(IMAE/DM) must not be evaluated in half precision.

Hooks (any object; every method optional), called on every rank:

* ``on_fit_start(trainer)`` -- after data, model, losses and optimiser exist and *before* the
  training loader is built, so a hook may replace ``trainer.data.train`` (the noise study does);
* ``on_epoch_start(trainer, epoch)``;
* ``on_batch_end(trainer, batch, outputs, losses)`` -- ``batch`` is the collated dict (``index``
  = position of the tracklet in ``trainer.data.train``, ``labels``), ``outputs`` the model's dict,
  ``losses`` a dict with ``total``, ``id``, ``metric`` (floats) and the loss objects ``id_loss``,
  ``metric_loss`` (read ``losses["id_loss"].last_stats`` for per-example ``p`` and ``w``);
* ``on_epoch_end(trainer, epoch)``;
* ``on_evaluate(trainer, epoch, metrics) -> dict | None`` -- rank 0 only, after the retrieval
  evaluation (``epoch = -1`` for the untrained network evaluated before training); returned keys
  are merged into the logged metrics;
* ``on_fit_end(trainer, final)`` -- rank 0 only, before ``final.json`` is written (may add keys).

Epoch numbers given to hooks are 0-based; logs and ``final.json`` count epochs from 1.

Resume is exact: checkpoints are taken at epoch ends and hold the RNG states (python, numpy,
torch, CUDA), the sampler position, optimiser / scheduler / scaler states and the step counters;
the PK sampler and the clip dataset derive their randomness from ``(seed, epoch, ...)`` and the
DataLoader of each epoch gets a generator seeded from ``(seed, epoch, rank)``.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from reid.atomic import atomic_write_json
from reid.engine import builders
from reid.engine.checkpoint import (
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    require_keys,
    restore_rng_state,
)
from reid.engine.config import Config, save_config
from reid.engine.distributed import (
    DistInfo,
    all_reduce_min,
    any_rank,
    barrier,
    broadcast_object,
    cleanup,
    init_distributed,
)
from reid.engine.metrics_log import MetricsWriter, close_logging, setup_logging

METRIC_KEYS = ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP")
HOOK_METHODS = ("on_fit_start", "on_epoch_start", "on_batch_end", "on_epoch_end", "on_evaluate", "on_fit_end")


class NonFiniteLossError(RuntimeError):
    """Raised under ``train.nan_policy: stop`` after the state was saved to ``nan_stop.pt``."""


class Trainer:
    """Trains ``cfg`` into ``cfg.output_dir``.

    Attributes available to hooks: ``cfg``, ``output_dir``, ``device``, ``dist`` (rank info),
    ``data`` (``VideoReIDData``), ``model`` (unwrapped), ``id_loss``, ``metric_loss``,
    ``optimizer``, ``scheduler``, ``epoch`` (current, 0-based), ``global_step``, ``logger``,
    ``metrics`` (the :class:`MetricsWriter`).

    Args:
        cfg: validated config.
        hooks: hook objects (see module docstring); ``cfg.train.hooks`` and, when ``cfg.noise`` is
            set, ``reid.studies.noise_hook.NoiseHook(cfg.noise)`` are appended.
        resume: a checkpoint file or a run directory (its ``last.pt``) to continue from.
    """

    def __init__(self, cfg: Config, hooks: list | tuple = (), resume: str | Path | None = None) -> None:
        self.cfg = cfg
        self.hooks = list(hooks)
        for spec in cfg.train.hooks:
            self.hooks.append(builders.import_object(spec)())
        if cfg.noise is not None:
            from reid.studies.noise_hook import NoiseHook  # lazy: the study is optional

            self.hooks.append(NoiseHook(cfg.noise))
        self.resume_path = _resolve_resume(resume) if resume is not None else None
        use_cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
        if cfg.train.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("train.device: 'cuda' requested but torch.cuda.is_available() is False")
        self.dist: DistInfo = init_distributed(use_cuda)
        self.device = torch.device(f"cuda:{self.dist.local_rank}" if use_cuda else "cpu")
        if cfg.output_dir is None:  # a Config built in code rather than by load_config
            cfg.output_dir = str(Path("runs") / f"{cfg.name or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}")
        # one output directory for all ranks: rank 0's timestamped name wins
        self.output_dir = Path(broadcast_object(cfg.output_dir, self.dist))
        cfg.output_dir = str(self.output_dir)
        self.epoch = 0
        self.global_step = 0
        self.nan_skipped = 0
        self.best: dict[str, Any] = {"mAP": -1.0, "epoch": 0, "metrics": None}
        self.untrained: dict | None = None
        self.history: list[dict] = []
        self.model: torch.nn.Module | None = None
        self.data = None

    # ------------------------------------------------------------------------------------------
    # hooks
    # ------------------------------------------------------------------------------------------
    def _call_hooks(self, name: str, *args) -> list:
        results = []
        for hook in self.hooks:
            method = getattr(hook, name, None)
            if method is not None:
                results.append(method(self, *args))
        return results

    # ------------------------------------------------------------------------------------------
    # setup
    # ------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Build everything ``fit`` needs (output dir, data, model, losses, optimiser, sampler,
        schedule, DDP wrapper) and load the resume checkpoint. Called by ``fit``; call it
        directly to drive ``training_step`` yourself (the benchmark does). Idempotent."""
        if getattr(self, "_is_setup", False):
            return
        self._is_setup = True
        cfg = self.cfg
        is_main = self.dist.is_main
        if is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.output_dir / "config.yaml")
        barrier(self.dist)
        self.logger = setup_logging(self.output_dir, is_main)
        self.metrics = MetricsWriter(self.output_dir, is_main)
        self.logger.info("run %s -> %s (world size %d, device %s)", cfg.name, self.output_dir,
                         self.dist.world_size, self.device)
        if cfg.train.deterministic:
            # warn_only: a few CUDA kernels have no deterministic version; they log instead of failing
            torch.use_deterministic_algorithms(True, warn_only=True)
            if self.device.type == "cuda":
                torch.backends.cudnn.benchmark = False
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        builders.seed_everything(cfg.seed)

        # data: rank 0 first, so the synthetic dataset is generated once, then the others read it
        if is_main:
            self.data = builders.build_data(cfg.data, progress=cfg.train.progress)
        barrier(self.dist)
        if not is_main:
            self.data = builders.build_data(cfg.data, progress=False)
        self.num_classes = int(self.data.num_train_ids)
        summary = self.data.summary()
        self.logger.info("data: %s", json.dumps(summary))

        self.model = builders.build_model(cfg, self.num_classes).to(self.device)
        if cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.id_loss = builders.build_id_loss(cfg.loss.id, self.num_classes)
        self.metric_loss = builders.build_metric_loss(cfg.loss.metric)
        self.optimizer = builders.build_optimizer(cfg.optim, self.model.parameters())

        # amp: CUDA only (bf16 autocast; fp16 autocast + GradScaler)
        self.amp_dtype = None
        if cfg.train.amp != "none":
            if self.device.type != "cuda":
                self.logger.info("train.amp=%s ignored: mixed precision is CUDA-only, training in float32 on CPU",
                                 cfg.train.amp)
            else:
                self.amp_dtype = torch.bfloat16 if cfg.train.amp == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        self._call_hooks("on_fit_start")  # may replace self.data.train: loaders come after

        self.train_dataset = builders.build_train_dataset(cfg.data, self.data.train, seed=cfg.seed)
        from reid.data.sampling import PKSampler

        labels = [t.label for t in self.data.train]
        self.sampler = PKSampler(labels, cfg.data.p, cfg.data.k, seed=cfg.seed,
                                 rank=self.dist.rank, world_size=self.dist.world_size)
        n_iters = len(self.sampler)
        if cfg.train.iters_per_epoch is not None:
            n_iters = min(n_iters, cfg.train.iters_per_epoch)
        self.iters_per_epoch = all_reduce_min(n_iters, self.dist, self.device)
        self.scheduler = builders.build_scheduler(cfg.sched, self.optimizer, cfg.train.epochs, self.iters_per_epoch)
        self.total_steps = cfg.train.epochs * self.iters_per_epoch

        if self.dist.enabled:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                # with no id loss the classifier gets no gradient; DDP must be told or it hangs
                find_unused_parameters=cfg.train.find_unused_parameters or cfg.loss.id.weight == 0,
            )
        else:
            self.ddp_model = self.model
        self.start_epoch = 0
        if self.resume_path is not None:
            self._load_state(self.resume_path)

    # ------------------------------------------------------------------------------------------
    # checkpoints
    # ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(),
            "sampler": self.sampler.state_dict(batches_done=0),
            "epoch": self.epoch,  # epochs completed
            "global_step": self.global_step,
            "best": {"mAP": self.best["mAP"], "epoch": self.best["epoch"], "metrics": self.best["metrics"]},
            "untrained": self.untrained,
            "history": self.history,
            "nan_skipped": self.nan_skipped,
            "config": self.cfg.to_plain(),
            "num_classes": self.num_classes,
        }

    def save_checkpoint(self, name: str) -> Path | None:
        if not self.dist.is_main:
            return None
        path = atomic_save(self.state_dict(), self.output_dir / name)
        self.logger.info("checkpoint %s (epoch %d, step %d)", path, self.epoch, self.global_step)
        return path

    def _load_state(self, path: Path) -> None:
        ckpt = load_checkpoint(path, map_location=self.device)
        require_keys(ckpt, ("model", "optimizer", "scheduler", "rng", "sampler", "epoch", "global_step"), path)
        if int(ckpt.get("num_classes", self.num_classes)) != self.num_classes:
            raise RuntimeError(f"{path}: checkpoint has {ckpt['num_classes']} classes, the data has {self.num_classes}")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.sampler.load_state_dict(ckpt["sampler"])
        self.epoch = self.start_epoch = int(ckpt["epoch"])
        self.global_step = int(ckpt["global_step"])
        self.best = dict(ckpt.get("best") or self.best)
        self.untrained = ckpt.get("untrained")
        self.history = list(ckpt.get("history") or [])
        self.nan_skipped = int(ckpt.get("nan_skipped", 0))
        self._resume_rng = ckpt["rng"]  # restored right before the loop (after all setup draws)
        self.logger.info("resumed from %s at epoch %d, step %d", path, self.epoch, self.global_step)
        self.metrics.write("event", self.global_step, message=f"resumed from {path}", epoch=self.epoch)

    # ------------------------------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------------------------------
    def _loader(self, epoch: int):
        from reid.data.datasets import collate_clips, worker_init

        self.sampler.set_epoch(epoch)
        if hasattr(self.train_dataset, "set_epoch"):
            self.train_dataset.set_epoch(epoch)
        generator = torch.Generator()
        # worker base seeds depend on (seed, epoch, rank) only, never on how the run got here
        generator.manual_seed(int(np.random.SeedSequence([self.cfg.seed, epoch, self.dist.rank]).generate_state(1)[0]))
        return torch.utils.data.DataLoader(
            self.train_dataset,
            batch_sampler=self.sampler,
            collate_fn=collate_clips,
            num_workers=self.cfg.data.num_workers,
            worker_init_fn=worker_init,
            generator=generator,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast("cuda", dtype=self.amp_dtype)

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
            metric_value = self.metric_loss(outputs["feat"].float(), labels)
            total = total + cfg.metric.weight * metric_value
        return {"total": total, "id": id_value, "metric": metric_value}

    def training_step(self, batch: dict, epoch: int = 0, it: int = 0) -> dict | None:
        """One optimiser step on a collated batch (the unit the benchmark times).

        Returns ``{"outputs", "losses", "lr", "grad_norm"}``, or None when the loss was non-finite
        and ``nan_policy: skip`` dropped the step (``stop`` raises :class:`NonFiniteLossError`)."""
        cfg = self.cfg
        frames = batch["frames"].to(self.device, non_blocking=True)
        mask = batch["mask"].to(self.device, non_blocking=True)
        labels = batch["labels"].to(self.device, non_blocking=True)
        # hook contract names: position in trainer.data.train, training label, source row
        batch["index"], batch["label"] = batch["indices"], batch["labels"]
        batch["row"] = torch.tensor([self.data.train[i].row for i in batch["indices"].tolist()])
        with self._autocast():
            outputs = self.ddp_model(frames, mask, labels)
        losses = self.compute_losses(outputs, labels)
        total = losses["total"]
        if any_rank(not bool(torch.isfinite(total)), self.dist, self.device):
            self._non_finite(epoch, it, total)
            return None
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)  # clip and log true gradient norms under fp16
        lr_used = self.optimizer.param_groups[0]["lr"]  # the rate this step applies
        grad_norm = None
        if cfg.train.grad_clip is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if cfg.sched.interval == "iteration":
            self.scheduler.step()
        self.global_step += 1
        return {"outputs": outputs, "losses": losses, "lr": lr_used, "grad_norm": grad_norm}

    def train_one_epoch(self, epoch: int) -> dict:
        cfg = self.cfg
        self.ddp_model.train()
        loader = self._loader(epoch)
        bar = tqdm(
            total=self.iters_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
            disable=not (self.dist.is_main and cfg.train.progress),
            dynamic_ncols=True,
            leave=False,
        )
        loss_sum, steps, clips = 0.0, 0, 0
        t_start = t_log = time.perf_counter()
        clips_since_log = 0
        for it, batch in enumerate(loader):
            if it >= self.iters_per_epoch:
                break
            step = self.training_step(batch, epoch, it)
            if step is None:  # non-finite loss, skipped under nan_policy=skip
                continue
            frames, outputs, losses = batch["frames"], step["outputs"], step["losses"]
            total, lr_used, grad_norm = losses["total"], step["lr"], step["grad_norm"]
            value = float(total.detach())
            loss_sum += value
            steps += 1
            clips += frames.shape[0]
            clips_since_log += frames.shape[0]
            loss_info = {
                "total": value,
                "id": None if losses["id"] is None else float(losses["id"].detach()),
                "metric": None if losses["metric"] is None else float(losses["metric"].detach()),
                "id_loss": self.id_loss,
                "metric_loss": self.metric_loss,
            }
            self._call_hooks("on_batch_end", batch, outputs, loss_info)
            bar.update(1)
            if self.global_step % cfg.train.log_every == 0 or it == self.iters_per_epoch - 1:
                now = time.perf_counter()
                rate = clips_since_log * self.dist.world_size / max(now - t_log, 1e-9)
                t_log, clips_since_log = now, 0
                bar.set_postfix(loss=f"{value:.4f}", clips_s=f"{rate:.1f}")
                record = {
                    "epoch": epoch + 1,
                    "lr": lr_used,
                    "loss": value,
                    "id_loss": loss_info["id"],
                    "metric_loss": loss_info["metric"],
                    "clips_per_s": rate,
                }
                if grad_norm is not None:
                    record["grad_norm"] = float(grad_norm)
                for key, stat in (getattr(self.id_loss, "last_stats", None) or {}).items():
                    if isinstance(stat, (int, float)):
                        record[f"id/{key}"] = float(stat)
                self.metrics.write("train", self.global_step, **record)
        bar.close()
        if cfg.sched.interval == "epoch":
            self.scheduler.step()
        seconds = time.perf_counter() - t_start
        return {"loss": loss_sum / max(steps, 1), "steps": steps, "seconds": seconds,
                "clips_per_s": clips * self.dist.world_size / max(seconds, 1e-9)}

    def _non_finite(self, epoch: int, it: int, total: torch.Tensor) -> None:
        """Apply ``train.nan_policy`` to a step whose loss is NaN/inf (on any rank)."""
        self.optimizer.zero_grad(set_to_none=True)
        where = f"epoch {epoch + 1}, iteration {it + 1}, global step {self.global_step}"
        if self.cfg.train.nan_policy == "skip":
            self.nan_skipped += 1
            self.logger.warning("non-finite loss (%s) at %s: step skipped (%d skipped so far)",
                                float(total.detach()), where, self.nan_skipped)
            self.metrics.write("event", self.global_step, epoch=epoch + 1,
                               message=f"non-finite loss at {where}: step skipped", nan_skipped=self.nan_skipped)
            if self.cfg.sched.interval == "iteration":
                self.scheduler.step()  # the schedule follows the iteration clock, skipped or not
            return
        path = self.save_checkpoint("nan_stop.pt")
        message = (f"non-finite loss ({float(total.detach())}) at {where}; train.nan_policy=stop: "
                   f"state before this step saved to {path or self.output_dir / 'nan_stop.pt'}. "
                   "Lower optim.lr, set train.grad_clip, or use model.classifier=cosine for IMAE/DM.")
        self.logger.error(message)
        self.metrics.write("event", self.global_step, epoch=epoch + 1, message=message)
        raise NonFiniteLossError(message)

    # ------------------------------------------------------------------------------------------
    # evaluation
    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Retrieval metrics of the current model on query/gallery (rank 0, full test set).

        Each distinct test tracklet is extracted once (under the official protocol the queries
        are also gallery entries)."""
        from reid.eval import evaluate as retrieval_evaluate
        from reid.eval.extract import extract_query_gallery

        data = self.data
        query_feats, gallery_feats = extract_query_gallery(
            self.model, data, builders.build_test_transform(self.cfg.data), device=self.device,
            chunk=self.cfg.eval.chunk, num_workers=self.cfg.data.num_workers,
            progress=self.cfg.train.progress, max_frames=self.cfg.eval.max_frames,
            amp=self.amp_dtype is not None, corrupt=self.cfg.data.corrupt,
        )
        report = retrieval_evaluate(
            query_feats, gallery_feats,
            np.array([t.pid for t in data.query]), np.array([t.camid for t in data.query]),
            np.array([t.pid for t in data.gallery]), np.array([t.camid for t in data.gallery]),
            protocol=data.protocol, metric=self.cfg.eval.metric,
        )
        self.model.train()
        return report.to_dict()

    @torch.no_grad()
    def predict_train_split(self) -> np.ndarray:
        """Identity logits ``[N_train, C]`` of ``self.data.train`` in eval mode with the test
        transform (no augmentation), from ``eval.predict_frames`` evenly spaced frames of each
        tracklet. The noise study computes training accuracy on noisy/clean subsets from it."""
        from reid.data.datasets import TestTrackletDataset, collate_test

        dataset = TestTrackletDataset(self.data.train, builders.build_test_transform(self.cfg.data),
                                      mode="evenly", length=self.cfg.eval.predict_frames, corrupt=self.cfg.data.corrupt)
        loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=False,
                                             collate_fn=lambda b: collate_test(b, pad=True))
        was_training = self.model.training
        self.model.eval()
        out = []
        try:
            for batch in tqdm(loader, desc="predict train split", leave=False,
                              disable=not (self.dist.is_main and self.cfg.train.progress)):
                with self._autocast():
                    logits = self.model(batch["frames"].to(self.device), batch["mask"].to(self.device))["logits"]
                out.append(logits.float().cpu().numpy())
        finally:
            self.model.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, self.num_classes), np.float32)

    def _evaluate_and_log(self, epoch_done: int) -> dict | None:
        """Rank 0 evaluates; all ranks wait. Returns the merged metrics on rank 0."""
        metrics = None
        if self.dist.is_main:
            t0 = time.perf_counter()
            metrics = self.evaluate()
            for extra in self._call_hooks("on_evaluate", epoch_done - 1, metrics):
                if extra:
                    metrics.update(extra)
            # timing goes to the log only: metrics must be identical between identical runs
            self.metrics.write("eval", self.global_step, epoch=epoch_done,
                               eval_seconds=time.perf_counter() - t0, **metrics)
            self.logger.info("epoch %d eval [%s, %s]: mAP %.4f rank1 %.4f rank5 %.4f mINP %.4f",
                             epoch_done, metrics.get("protocol"), metrics.get("metric"), metrics["mAP"],
                             metrics["rank1"], metrics["rank5"], metrics.get("mINP", float("nan")))
        barrier(self.dist)
        return metrics

    # ------------------------------------------------------------------------------------------
    # fit
    # ------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        try:
            return self._fit()
        finally:
            if hasattr(self, "metrics"):
                self.metrics.close()
            close_logging()
            cleanup(self.dist)

    def _fit(self) -> dict:
        cfg = self.cfg
        t_fit, cpu_fit = time.perf_counter(), time.process_time()
        self.setup()
        if self.untrained is None and cfg.eval.untrained and self.resume_path is None:
            self.logger.info("evaluating the untrained network (baseline)")
            self.untrained = self._evaluate_and_log(0)
        if getattr(self, "_resume_rng", None) is not None:
            restore_rng_state(self._resume_rng)
        last_metrics = self.history[-1]["metrics"] if self.history else None
        for epoch in range(self.start_epoch, cfg.train.epochs):
            self.epoch = epoch
            self._call_hooks("on_epoch_start", epoch)
            stats = self.train_one_epoch(epoch)
            self.epoch = epoch + 1
            self.logger.info("epoch %d/%d: loss %.4f, %d steps, %.1f clips/s, lr %.3g",
                             epoch + 1, cfg.train.epochs, stats["loss"], stats["steps"], stats["clips_per_s"],
                             self.optimizer.param_groups[0]["lr"])
            self._call_hooks("on_epoch_end", epoch)
            is_last = epoch + 1 == cfg.train.epochs
            if is_last or (cfg.eval.every and (epoch + 1) % cfg.eval.every == 0):
                metrics = self._evaluate_and_log(epoch + 1)
                if metrics is not None:
                    last_metrics = metrics
                    self.history.append({"epoch": epoch + 1, "metrics": _numeric(metrics)})
                    if metrics["mAP"] > self.best["mAP"]:
                        self.best = {"mAP": float(metrics["mAP"]), "epoch": epoch + 1, "metrics": _numeric(metrics)}
                        self.save_checkpoint("best.pt")
            if is_last or (epoch + 1) % cfg.train.checkpoint_every == 0:
                self.save_checkpoint("last.pt")
            barrier(self.dist)

        final = None
        if self.dist.is_main:
            final = self._final_report(last_metrics, time.perf_counter() - t_fit, time.process_time() - cpu_fit)
            self._call_hooks("on_fit_end", final)
            atomic_write_json(self.output_dir / "final.json", final, indent=2)
            table = format_final_table(final)
            print(table, flush=True)
            for line in table.splitlines():
                self.logger.info(line, extra={"file_only": True})
        barrier(self.dist)
        return final if final is not None else {}

    def _final_report(self, last_metrics: dict | None, seconds: float, cpu_seconds: float) -> dict:
        cfg = self.cfg
        final_metrics = _numeric(last_metrics) if last_metrics else None
        headline = self.best["metrics"] if cfg.eval.report == "best" else final_metrics
        return {
            "name": cfg.name,
            "output_dir": str(self.output_dir),
            "protocol": (last_metrics or {}).get("protocol", self.data.protocol),
            "metric": cfg.eval.metric,
            "dataset": self.data.summary(),
            "reporting": cfg.eval.report,
            "headline": headline,
            "final": final_metrics,
            "final_epoch": self.epoch,
            "best": self.best["metrics"],
            "best_epoch": self.best["epoch"],
            "untrained": _numeric(self.untrained) if self.untrained else None,
            "history": self.history,
            "epochs": cfg.train.epochs,
            "global_step": self.global_step,
            "nan_skipped": self.nan_skipped,
            "world_size": self.dist.world_size,
            "device": str(self.device),
            "num_classes": self.num_classes,
            "wall_seconds": seconds,
            # CPU time of this process (all threads): on a shared machine wall time / load
            "cpu_seconds": cpu_seconds,
        }


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _numeric(metrics: dict | None) -> dict | None:
    """Metrics dict restricted to JSON-friendly scalars (drops nested objects)."""
    if metrics is None:
        return None
    out = {}
    for key, value in metrics.items():
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        if isinstance(value, (int, float, str, bool)) or value is None:
            out[key] = value
    return out


def _resolve_resume(resume: str | Path) -> Path:
    path = Path(resume)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}")
    return path


def format_final_table(final: dict) -> str:
    """The end-of-run table: untrained vs trained (final and best) retrieval metrics."""
    rows = []
    if final.get("untrained"):
        rows.append(("untrained (epoch 0)", final["untrained"]))
    if final.get("final"):
        rows.append((f"final (epoch {final['final_epoch']})", final["final"]))
    if final.get("best"):
        rows.append((f"best (epoch {final['best_epoch']})", final["best"]))
    header = f"{'model':<22}" + "".join(f"{k:>9}" for k in METRIC_KEYS)
    lines = [
        f"Retrieval on {final.get('dataset', {}).get('name', '?')} — protocol {final['protocol']}, "
        f"{final['metric']} distance, headline = {final['reporting']} checkpoint",
        header,
        "-" * len(header),
    ]
    for name, metrics in rows:
        cells = "".join(
            f"{100 * metrics[k]:>8.2f}%" if isinstance(metrics.get(k), (int, float)) and math.isfinite(metrics[k])
            else f"{'n/a':>9}" for k in METRIC_KEYS
        )
        lines.append(f"{name:<22}{cells}")
    q = (final.get("final") or {}).get("queries")
    nm = (final.get("final") or {}).get("queries_without_match")
    if q is not None:
        lines.append(f"queries: {q} ({nm} without a valid gallery match, excluded from mAP/CMC)")
    return "\n".join(lines)


__all__ = ["Trainer", "NonFiniteLossError", "format_final_table", "METRIC_KEYS", "HOOK_METHODS"]
