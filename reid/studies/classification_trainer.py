"""The classification study on the engine's training loop (:class:`reid.engine.loop.TrainLoop`).

One step is the video trainer's step (:meth:`TrainLoop.run_step`: forward, ``loss.id.weight *
L_id(logits)``, non-finite check, backward, optimiser step, per-iteration schedule); the parts
come from the same places: the identity loss from ``reid.losses.ID_LOSSES`` (through
:func:`reid.engine.builders.build_id_loss`), SGD and the schedule from :mod:`reid.engine.optim`.
:func:`engine_config` maps a :class:`~reid.studies.classification.ClassificationConfig` onto the
engine's :class:`~reid.engine.config.Config` sections the loop reads.

Per epoch, :class:`EpochRecordHook` collects the ``p_i`` / ``w_i`` the loss saw and, in eval mode
without augmentation, records test accuracy, the three-number report
(:func:`reid.studies.fit.fit_report`) and the clean/noisy histograms
(:func:`reid.studies.noise_hook.pw_histogram_record`, the same record as the ReID noise study).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
from tqdm import tqdm

from reid.engine.builders import build_id_loss
from reid.engine.config import Config
from reid.engine.distributed import DistInfo
from reid.engine.loop import TrainLoop
from reid.engine.optim import build_optimizer, build_scheduler
from reid.losses import example_weights_of
from reid.studies.classification_config import ClassificationConfig
from reid.studies.classification_data import augment, load_noisy_splits, predict
from reid.studies.classification_model import build_classification_model
from reid.studies.fit import fit_report
from reid.studies.noise_hook import pw_histogram_record
from reid.studies.schemes import id_loss_of
from reid.studies.trajectories import TrajectoryRecorder


SUMMARY_KEYS = ("test_acc", "noisy_fit", "clean_fit", "correction_rate", "train_acc")


def engine_config(cfg: ClassificationConfig) -> Config:
    """The engine sections of a study run: ``loss.id`` (``id_loss_of(scheme.name)`` with the
    scheme's params, no ranking loss), ``optim`` (SGD, Nesterov momentum), ``sched`` (per
    iteration; ``step`` = x0.1 at 1/3 and 2/3 of training) and ``train`` (no clipping; a
    non-finite loss stops the run)."""
    loss_name, scheme = id_loss_of(cfg.scheme.name)
    sched = {"name": cfg.lr_schedule, "interval": "iteration", "warmup_epochs": cfg.warmup_epochs,
             "min_lr_factor": 0.0}  # the study anneals to 0 (not the video default 0.01)
    if cfg.lr_schedule == "step":
        sched.update(milestones=[cfg.epochs / 3, 2 * cfg.epochs / 3], gamma=0.1)
    return Config.model_validate({
        "name": "classification",
        "seed": cfg.seed,
        "loss": {"id": {"name": loss_name, "scheme": scheme, "normalize": cfg.scheme.normalize or cfg.normalize, "params": cfg.scheme.params},
                 "metric": {"name": "none"}},
        "optim": {"name": "sgd", "lr": cfg.lr, "momentum": cfg.momentum, "nesterov": True,
                  # torch's per-tensor SGD, as when the recorded studies ran (fused rounds differently)
                  "weight_decay": cfg.weight_decay, "impl": "auto"},
        "sched": sched,
        "train": {"epochs": cfg.epochs, "device": "cpu", "grad_clip": None, "nan_policy": "stop"},
    })


class ClassificationTrainer(TrainLoop):
    """Trains the study network (:func:`~reid.studies.classification_model.build_classification_model`)
    on noisy image labels (CPU).

    Batches: one random permutation of the training images per epoch, ``batch_size`` images per
    step, augmented (:func:`~reid.studies.classification_data.augment`); one generator seeded
    with ``cfg.seed`` draws both, in step order. ``history`` holds the per-epoch records."""

    def __init__(self, cfg: ClassificationConfig, hooks: list | tuple = ()) -> None:
        super().__init__()
        self.study = cfg
        self.cfg = engine_config(cfg)
        self.hooks = list(hooks)
        self.dist = DistInfo()
        self.device = torch.device("cpu")
        self.logger = logging.getLogger("reid.studies.classification")
        self.amp_dtype = None
        self.resumed = False
        self.history: list[dict] = []

    def setup(self) -> None:
        study = self.study
        if study.num_threads:
            torch.set_num_threads(study.num_threads)
        torch.manual_seed(study.seed)  # the model's initialisation
        self.data = load_noisy_splits(study)
        self.num_classes = self.data.num_classes
        self.model = build_classification_model(study, self.num_classes)
        self.ddp_model = self.model
        self.id_loss = build_id_loss(self.cfg.loss.id, self.num_classes)
        self.metric_loss = None
        self.optimizer = build_optimizer(self.cfg.optim, self.model.parameters())
        self.scaler = torch.amp.GradScaler("cuda", enabled=False)
        self.generator = torch.Generator().manual_seed(study.seed)  # batches and augmentation
        n_train = self.data.train_images.shape[0]
        # a last batch of one image would crash BatchNorm in training mode: that image is left out
        # of the epoch (the order is reshuffled every epoch); other sizes keep every image
        self.iters_per_epoch = n_train // study.batch_size if n_train % study.batch_size == 1 else \
            math.ceil(n_train / study.batch_size)
        self.epochs = study.epochs
        self.start_epoch = 0
        self.total_steps = self.epochs * self.iters_per_epoch
        self.scheduler = build_scheduler(self.cfg.sched, self.optimizer, self.epochs, self.iters_per_epoch)
        self.trajectories = TrajectoryRecorder(self.data.noisy_mask, self.data.noisy_labels)
        self.call_hooks("on_fit_start")
        self.t_start = time.time()

    def train_loader(self, epoch: int):
        n, size = self.data.train_images.shape[0], self.study.batch_size
        order = torch.randperm(n, generator=self.generator)
        for b in range(self.iters_per_epoch):
            index = order[b * size : (b + 1) * size]
            images = self.data.train_images[index]
            if self.study.augment:
                images = augment(images, self.generator)
            yield {"image": images, "label": self.data.train_labels[index], "index": index}

    def forward(self, batch: dict) -> tuple[dict, torch.Tensor]:
        labels = batch["label"].to(self.device)
        with self.autocast():
            logits = self.ddp_model(batch["image"].to(self.device))
        self.last_logits = logits
        return {"logits": logits}, labels

    def non_finite(self, epoch: int, it: int, total: torch.Tensor) -> None:
        """The study stops at the first non-finite loss (nothing to save: no checkpoints)."""
        self.optimizer.zero_grad(set_to_none=True)
        raise FloatingPointError(
            f"scheme {self.study.scheme.display}: non-finite {getattr(self, 'non_finite_what', 'loss')} "
            f"at epoch {epoch} step {self.global_step} "
            f"(max |logit| {self.last_logits.detach().abs().max().item():.3g})"
        )

    def evaluate_epoch(self, epoch: int) -> dict:
        """Test accuracy, validation accuracy (against the held-out *noisy* labels, when
        ``validation`` is set), the fit report, and the per-example ``p_i`` / ``w_i`` trajectory
        point (:mod:`reid.studies.trajectories`) of the current model (eval mode, no augmentation)."""
        batch = self.study.eval_batch_size
        test_pred = predict(self.model, self.data.test_images, batch).argmax(1)
        out = {"test_acc": float((test_pred == self.data.test_labels).float().mean())}
        if self.data.val_images is not None:
            val_pred = predict(self.model, self.data.val_images, batch).argmax(1)
            out["val_acc"] = float((val_pred == self.data.val_labels).float().mean())
        train_logits = predict(self.model, self.data.train_images, batch)
        train_pred = train_logits.argmax(1).numpy()
        p, w = example_weights_of(self.id_loss, train_logits.double(), self.data.train_labels)
        traj = self.trajectories.add_evaluation(epoch, p.numpy(), w.detach().numpy())
        return {**out, **fit_report(train_pred, self.data.noisy_labels, self.data.true_labels, self.data.noisy_mask),
                "auc_p": traj["auc_p"], "auc_w": traj["auc_w"]}

    def final_report(self) -> dict:
        """``history``, ``final`` (last epoch, ProSelfLC's convention), ``best_by_val`` (highest
        validation accuracy on the held-out noisy labels, earliest on ties; None without
        ``validation``), ``best_by_test`` (highest test accuracy: an **oracle**, the DM/IMAE
        papers' convention; ``best`` is the same entry, kept for older readers) and the sizes."""
        best = max(self.history, key=lambda r: r["test_acc"])
        last = self.history[-1]
        by_val = None
        if "val_acc" in last:
            v = max(self.history, key=lambda r: r["val_acc"])
            by_val = {"epoch": v["epoch"], "val_acc": v["val_acc"], **{k: v[k] for k in SUMMARY_KEYS}}
        return {
            "best_by_val": by_val,
            "best_by_test": {"epoch": best["epoch"], "oracle": True, **{k: best[k] for k in SUMMARY_KEYS}},
            "num_val": int(self.data.val_images.shape[0]) if self.data.val_images is not None else 0,
            "trajectory_curves": self.trajectories.curves(),
            "scheme": self.study.scheme.display,
            "config": self.study.model_dump(mode="json"),
            "num_train": int(self.data.train_images.shape[0]),
            "num_noisy": int(self.data.noisy_mask.sum()),
            "num_test": int(self.data.test_images.shape[0]),
            "history": self.history,
            "best": {"epoch": best["epoch"], **{k: best[k] for k in SUMMARY_KEYS}},
            "final": {"epoch": last["epoch"], **{k: last[k] for k in SUMMARY_KEYS}},
            "seconds": time.time() - self.t_start,
        }

    def save_checkpoint(self, name: str):
        return None  # study cells are short and rerun whole; the runner resumes per cell


def per_example_pw(loss, logits: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``p_i`` and ``w_i`` of the last forward: from ``loss.last_stats`` when the loss publishes
    per-example tensors, else :func:`reid.losses.example_weights_of` (``w_i = w(p_i)`` of the
    loss's own ``weight_scheme``, or the loss's closed-form gradient norm when it has none)."""
    stats = getattr(loss, "last_stats", None) or {}
    p, w = stats.get("p"), stats.get("w")
    n = labels.shape[0]
    if not (torch.is_tensor(p) and p.numel() == n):
        p = torch.softmax(logits.detach().double(), dim=1).gather(1, labels[:, None]).squeeze(1)
    if not (torch.is_tensor(w) and w.numel() == n):
        p, w = example_weights_of(loss, logits.detach().double(), labels)
    return p.detach().float().cpu().numpy().reshape(-1), w.detach().float().cpu().numpy().reshape(-1)


class EpochRecordHook:
    """Appends one record per epoch to ``trainer.history``: ``epoch``, ``lr`` (of the epoch's last
    step), mean ``loss``, ``test_acc``, the fit report, the clean/noisy ``p_i`` / ``w_i``
    histograms of the epoch's training steps, and ``seconds`` since training started."""

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self.p, self.w, self.index, self.losses = [], [], [], []

    def on_batch_end(self, trainer, batch, outputs, losses) -> None:
        p, w = per_example_pw(losses["id_loss"], outputs["logits"], batch["label"])
        self.p.append(p), self.w.append(w), self.index.append(batch["index"].numpy())
        trainer.trajectories.add_batch(w, trainer.data.noisy_mask[batch["index"].numpy()])
        self.losses.append(losses["total"])

    def on_epoch_end(self, trainer, epoch: int) -> None:
        noisy = trainer.data.noisy_mask[np.concatenate(self.index)]
        trainer.history.append({
            "epoch": epoch + 1,
            "lr": trainer.last_step["lr"],
            "loss": float(np.mean(self.losses)),
            "grad_share_noisy": trainer.trajectories.close_epoch(epoch + 1),
            **trainer.evaluate_epoch(epoch + 1),
            **pw_histogram_record(epoch + 1, np.concatenate(self.p), np.concatenate(self.w), noisy),
            "seconds": time.time() - trainer.t_start,
        })


class EpochProgressHook:
    """A tqdm bar over epochs (``progress``) and, with ``log``, one line per epoch."""

    def __init__(self, progress: bool, log=None) -> None:
        self.progress, self.log = progress, log
        self.bar = None

    def on_train_start(self, trainer) -> None:
        self.bar = tqdm(total=trainer.epochs, desc=trainer.study.scheme.display, disable=not self.progress, leave=False)

    def on_epoch_end(self, trainer, epoch: int) -> None:
        rec = trainer.history[-1]
        self.bar.update(1)
        self.bar.set_postfix(test=f"{rec['test_acc']:.3f}", noisy_fit=f"{rec['noisy_fit']:.3f}",
                             clean_fit=f"{rec['clean_fit']:.3f}")
        if self.log is not None:
            self.log(f"    {trainer.study.scheme.display} epoch {epoch + 1}/{trainer.epochs}: loss {rec['loss']:.4f} "
                     f"test {rec['test_acc']:.4f} noisy_fit {rec['noisy_fit']:.4f} clean_fit {rec['clean_fit']:.4f} "
                     f"({rec['seconds']:.0f}s)")

    def on_fit_end(self, trainer, final: dict) -> None:
        self.bar.close()


__all__ = ["engine_config", "ClassificationTrainer", "EpochRecordHook", "EpochProgressHook", "per_example_pw"]
