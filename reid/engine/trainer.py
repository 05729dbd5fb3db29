"""The video ReID trainer: builds the components from a config, assembles the default hooks, and
runs :class:`reid.engine.loop.TrainLoop`.

``Trainer(cfg, hooks=[...]).fit() -> dict`` (the content of ``final.json``). One epoch is one
pass of the P x K identity sampler (``data.p`` identities x ``data.k`` tracklets per batch, one
clip of ``data.clip_length`` frames per tracklet), optionally capped by ``train.iters_per_epoch``.
The hook events are listed in :mod:`reid.engine.loop`; :func:`build_hooks` is the one place the
default hooks are put together.

Resume is exact: checkpoints are taken at epoch ends and hold the RNG states (python, numpy,
torch, CUDA), the sampler position, optimiser / scheduler / scaler states, the step counters and
every stateful hook's state; the PK sampler and the clip dataset derive their randomness from
``(seed, epoch, ...)`` and the DataLoader of each epoch gets a generator seeded from
``(seed, epoch, rank)`` (:func:`reid.engine.builders.build_train_loader`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from reid.engine import builders
from reid.engine.checkpoint import atomic_save, capture_rng_state, load_checkpoint, require_keys, restore_rng_state
from reid.engine.config import Config, save_config
from reid.engine.distributed import DistInfo, all_reduce_min, barrier, broadcast_object, cleanup, init_distributed
from reid.engine.evaluation import evaluate_retrieval
from reid.engine.hooks import CheckpointHook, EvalHook, FinalReportHook, MetricsWriterHook, ProgressBarHook
from reid.engine.loop import HOOK_METHODS, NonFiniteLossError, NonFiniteParametersError, NoTrainingStepError, TrainLoop
from reid.engine.metrics_log import MetricsWriter, close_logging, setup_logging
from reid.engine.report import METRIC_KEYS, build_final_report, format_final_table
from reid.engine.run_folder import RunFolder, RunFolderError, new_run_dir
from reid.errors import UserError


def build_hooks(cfg: Config, extra: list | tuple = ()) -> list:
    """The hooks of a run, in call order: writers first (the epoch line precedes everything
    else), then the caller's and ``train.hooks``, then checkpoints, evaluation and, last, the
    final report (so every other ``on_fit_end`` has added its keys before ``final.json`` is
    written). Checkpoints come before evaluation: a crash while evaluating epoch N never loses
    epoch N (a resumed run evaluates it first, :meth:`EvalHook.evaluate_pending`)."""
    user = list(extra) + [builders.import_object(spec)() for spec in cfg.train.hooks]
    return [
        MetricsWriterHook(cfg.train.log_every),
        ProgressBarHook(cfg.train.progress, cfg.train.log_every),
        *user,
        CheckpointHook(cfg.train.checkpoint_every),
        EvalHook(cfg.eval.every, cfg.eval.untrained),
        FinalReportHook(),
    ]


class Trainer(TrainLoop):
    """Trains ``cfg`` into ``cfg.output_dir``.

    Attributes available to hooks: ``cfg``, ``output_dir``, ``device``, ``dist`` (rank info),
    ``data`` (``VideoReIDData``), ``model`` (unwrapped), ``id_loss``, ``metric_loss``,
    ``optimizer``, ``scheduler``, ``epoch`` (current, 0-based), ``iteration``, ``global_step``,
    ``logger``, ``metrics`` (the :class:`MetricsWriter`), ``evaluation`` (the :class:`EvalHook`).

    Args:
        cfg: validated config.
        hooks: extra hook objects (see :mod:`reid.engine.loop`); ``cfg.train.hooks`` are added.
            Study hooks (e.g. the noise study's) are added by the caller, never by the engine.
        resume: a checkpoint file or a run directory (its ``last.pt``) to continue from.
        overwrite: start a new run in an ``output_dir`` that holds an old one (its artefacts are
            deleted first); without it such a folder is refused with :class:`RunFolderError`.
    """

    def __init__(self, cfg: Config, hooks: list | tuple = (), resume: str | Path | None = None,
                 overwrite: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.hooks = build_hooks(cfg, hooks)
        self.evaluation = next(h for h in self.hooks if isinstance(h, EvalHook))
        self.resume_path = _resolve_resume(resume) if resume is not None else None
        self.resumed = self.resume_path is not None
        self.overwrite = overwrite
        use_cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
        if cfg.train.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("train.device: 'cuda' requested but torch.cuda.is_available() is False")
        self.dist: DistInfo = init_distributed(use_cuda)
        self.device = torch.device(f"cuda:{self.dist.local_rank}" if use_cuda else "cpu")
        self._made_dir = False
        if cfg.output_dir is None and self.dist.is_main:  # a Config built in code rather than by load_config
            cfg.output_dir = str(new_run_dir("runs", cfg.name or "run"))  # claimed with mkdir: collision-free
            self._made_dir = True
        # one output directory for all ranks: rank 0's timestamped name wins
        self.output_dir = Path(broadcast_object(cfg.output_dir, self.dist))
        cfg.output_dir = str(self.output_dir)
        self.run_folder = RunFolder(self.output_dir)
        self.frame_check = None
        self.epochs = cfg.train.epochs
        self.iteration = 0
        self.model: torch.nn.Module | None = None
        self.data = None
        self._resume_rng = None

    # ------------------------------------------------------------------------------------------
    # setup
    # ------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Build everything ``fit`` needs (output dir, data, model, losses, optimiser, sampler,
        schedule, DDP wrapper) and load the resume checkpoint. Called by ``fit``; call it
        directly to drive :meth:`run_step` yourself (the benchmark does). Idempotent."""
        if getattr(self, "_is_setup", False):
            return
        self._is_setup = True
        self._t_fit, self._cpu_fit = time.perf_counter(), time.process_time()
        self._claim_folder()
        try:
            self._setup()
        except UserError:
            if self.dist.is_main and not self.resumed:  # nothing trained: leave no half run behind
                self.teardown()
                self.run_folder.discard()
            raise

    def _claim_folder(self) -> None:
        """Rank 0 takes the run folder's lock and checks it (:class:`RunFolder`); every rank
        raises the same :class:`RunFolderError` when that fails."""
        error = None
        if self.dist.is_main:
            try:
                self.run_folder.claim(resume=self.resumed, overwrite=self.overwrite)
                self.run_folder.created |= self._made_dir
            except RunFolderError as exc:
                error = str(exc)
        error = broadcast_object(error, self.dist)
        if error is not None:
            raise RunFolderError(error)

    def _setup(self) -> None:
        cfg = self.cfg
        is_main = self.dist.is_main
        if is_main:
            save_config(cfg, self.output_dir / "config.yaml")
        barrier(self.dist)
        self.logger = setup_logging(self.output_dir, is_main)
        self.metrics = MetricsWriter(self.output_dir, is_main)
        self.logger.info("run %s -> %s (world size %d, device %s)", cfg.name, self.output_dir,
                         self.dist.world_size, self.device)
        if cfg.train.deterministic:
            # warn_only: a few CUDA kernels have no deterministic version; they log instead of failing
            torch.use_deterministic_algorithms(True, warn_only=True)
            # torch then also fills every new tensor with NaN (so reads of uninitialised memory show):
            # a debug aid that changes no result of a correct kernel and cost ~11 % of a CPU step
            # (aten::fill_ over every activation and gradient buffer; docs/benchmarks.md, issue 14)
            torch.utils.deterministic.fill_uninitialized_memory = cfg.train.fill_uninitialized_memory
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
        self.logger.info("data: %s", json.dumps(self.data.summary()))
        self._check_frames()
        self._check_batch_shape()

        self.model = builders.build_model(cfg, self.num_classes).to(self.device)
        if cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if cfg.train.compile:
            # in place (nn.Module.compile): parameter names, hence checkpoints, stay those of the plain model;
            # only the backbone, the part with static shapes (the clip model indexes frames by the mask)
            self.model.backbone.compile()
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

        self.call_hooks("on_fit_start")  # may replace self.data.train: loaders come after
        self.validation_data = self._carve_validation()  # after the noise: held-out labels are the noisy ones

        self.train_dataset = builders.build_train_dataset(cfg.data, self.data.train, seed=cfg.seed,
                                                          corrupt=self.data.corrupt)
        self.sampler = self._build_sampler()
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

    def _check_frames(self) -> None:
        """``corrupt: error``: decode every frame before training (rank 0; cached, so a second run
        only stats the files); ``skip``: the loader already did, its summary goes to the log."""
        issues = self.data.frame_issues
        if issues is not None and (issues.dropped_frames or issues.dropped_tracklets):
            self.logger.warning("%s", issues.summary())
        elif issues is not None and issues.scanned:
            self.logger.info("%s", issues.summary())
        if self.data.corrupt != "error" or not getattr(self.cfg.data, "verify_frames", True) or not self.dist.is_main:
            return
        from reid.data.verify import verify_dataset_frames

        self.frame_check = verify_dataset_frames(self.data, progress=self.cfg.train.progress)
        fc = self.frame_check
        self.logger.info("frames verified: %d (%d decoded now, %d unchanged since an earlier check) in %.1f s; "
                         "cache %s", fc.frames, fc.decoded, fc.frames - fc.decoded, fc.seconds, fc.cache)

    def _carve_validation(self):
        """``eval.validation``: hold out training identities (by their training label, noisy where
        the noise hook changed it) as validation query/gallery tracklets (:mod:`reid.data.holdout`);
        the rest trains. ``train_keep_index`` maps the kept tracklets into the list the hooks saw in
        ``on_fit_start`` (None without validation). The classifier keeps its ``num_classes`` rows."""
        self.train_keep_index = None
        v = self.cfg.eval.validation
        if v is None:
            return None
        from dataclasses import replace

        from reid.data.holdout import holdout_identities

        held = holdout_identities(self.data.train, fraction=v.fraction, ids=v.ids, seed=v.seed,
                                  min_train_ids=self.cfg.data.p * self.dist.world_size)
        self.train_keep_index = held.train_index
        self.data.train = [self.data.train[i] for i in held.train_index]
        self.logger.info("validation: %d training identities held out (%d queries, %d gallery tracklets); "
                         "%d tracklets left to train on", len(held.labels), len(held.query), len(held.gallery),
                         len(self.data.train))
        return replace(self.data, name=f"{self.data.name}-validation", train=[], query=held.query,
                       gallery=held.gallery, protocol=held.protocol)

    def _build_sampler(self):
        from reid.data.sampling import PKSampler

        return PKSampler([t.label for t in self.data.train], self.cfg.data.p, self.cfg.data.k, seed=self.cfg.seed,
                         rank=self.dist.rank, world_size=self.dist.world_size)

    def _check_batch_shape(self) -> None:
        """``data.p`` (per rank) x world size must not exceed the training identities: checked
        before the model is built, naming the key."""
        n_ids = len({t.label for t in self.data.train})
        p, world = self.cfg.data.p, self.dist.world_size
        if p * world > n_ids:
            from reid.data.sampling import SamplerError

            raise SamplerError(
                f"data.p={p} identities per batch{f' x {world} ranks' if world > 1 else ''} exceeds the "
                f"{n_ids} training identities of {self.data.name}; set data.p <= {n_ids // world}")

    def train_loader(self, epoch: int):
        return builders.build_train_loader(
            self.train_dataset, self.sampler, epoch, seed=self.cfg.seed, rank=self.dist.rank,
            num_workers=self.cfg.data.num_workers, pin_memory=self.device.type == "cuda")

    def before_epochs(self) -> None:
        if self._resume_rng is not None:  # restored after all setup draws and the untrained evaluation
            restore_rng_state(self._resume_rng)
        # a checkpoint written right before an evaluation that never finished: evaluate it now,
        # after the RNG restore, so the rest of the run is the uninterrupted one
        self.evaluation.evaluate_pending(self)

    def evaluate(self) -> dict:
        """Retrieval metrics of the current model on query/gallery (rank 0, full test set)."""
        return self._retrieval(self.data, progress=self.cfg.train.progress)

    def evaluate_validation(self) -> dict | None:
        """Retrieval metrics on the validation split (None without ``eval.validation``)."""
        if getattr(self, "validation_data", None) is None:
            return None
        return self._retrieval(self.validation_data, progress=False)

    def _retrieval(self, data, progress: bool) -> dict:
        return evaluate_retrieval(self.model, data, self.cfg.data, self.cfg.eval, self.device,
                                  amp=self.amp_dtype is not None, num_workers=self.cfg.data.num_workers,
                                  progress=progress)

    def final_report(self) -> dict:
        return build_final_report(self, self.evaluation, time.perf_counter() - self._t_fit,
                                  time.process_time() - self._cpu_fit)

    def teardown(self) -> None:
        if hasattr(self, "metrics"):
            self.metrics.close()
        close_logging()
        self.run_folder.release()
        cleanup(self.dist)

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
            "nan_skipped": self.nan_skipped,
            "hooks": {h.state_key: h.state_dict() for h in self.hooks if getattr(h, "state_key", None)},
            "config": self.cfg.to_plain(),
            "num_classes": self.num_classes,
            # metrics.jsonl up to this state: a resumed run cuts the file back to it
            "metrics_bytes": self.metrics.tell(),
        }

    def save_checkpoint(self, name: str) -> Path | None:
        """Write the training state to ``output_dir/name`` atomically (rank 0 only)."""
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
        self.nan_skipped = int(ckpt.get("nan_skipped", 0))
        for hook in self.hooks:
            key = getattr(hook, "state_key", None)
            if key and key in (ckpt.get("hooks") or {}):
                hook.load_state_dict(ckpt["hooks"][key])
        self._resume_rng = ckpt["rng"]  # restored right before the loop (after all setup draws)
        if "metrics_bytes" in ckpt:  # drop the records of the stretch that will be re-run
            dropped = self.metrics.truncate(int(ckpt["metrics_bytes"]))
            if dropped:
                self.logger.info("metrics.jsonl: %d bytes of records after the checkpoint removed", dropped)
        self.logger.info("resumed from %s at epoch %d, step %d", path, self.epoch, self.global_step)
        self.metrics.write("event", self.global_step, message=f"resumed from {path}", epoch=self.epoch)


def _resolve_resume(resume: str | Path) -> Path:
    path = Path(resume)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}")
    return path


__all__ = ["Trainer", "build_hooks", "NonFiniteLossError", "NonFiniteParametersError", "NoTrainingStepError",
           "RunFolderError", "format_final_table", "METRIC_KEYS", "HOOK_METHODS"]
