"""Trainer hook of the noisy-identity study (added by the front door, :func:`reid.studies.hooks.study_hooks`, whenever ``cfg.noise`` is set).

* ``on_fit_start``: applies the noise (or re-applies ``cfg.noise.manifest``) to
  ``trainer.data.train`` before the loaders exist, writes ``noise_manifest.json`` in the run's
  output dir (background crops for ``outlier_frames`` go under ``noise_backgrounds/`` there).
* ``on_batch_end``: collects per-example ``p_i`` (probability of the *training* label) and
  ``w_i`` (the scheme's weight) from ``losses["id_loss"].last_stats``, keyed by
  ``batch["index"]`` so they can be split into clean and noisy tracklets. If the loss does not
  publish per-example tensors, both come from :func:`reid.losses.example_weights_of` on
  ``outputs["logits"]`` (the loss's ``weight_scheme``, or its closed-form gradient norm).
* ``on_epoch_end``: stores that epoch's clean/noisy histograms (``pw_histograms.json``).
* ``on_evaluate``: the three-number report's training part (:func:`reid.studies.fit.fit_report`)
  from :func:`reid.studies.predict.predict_train_split` (eval mode, no augmentation): ``noisy_fit``,
  ``clean_fit``, ``correction_rate``, ``train_acc``; merged into the logged metrics, so
  ``final.json``'s ``best`` and ``final`` entries carry them.
* trajectories (:mod:`reid.studies.trajectories`): per batch the noisy share of ``sum w_i``,
  per evaluation ``p_i`` / ``w_i`` of every training tracklet; ``trajectories.npz`` at the end.
  With ``eval.validation`` the arrays follow the training tracklets left after the carve.
* ``on_fit_end``: writes ``pw_distributions.png`` and adds a ``noise`` section to ``final.json``
  stating the reporting convention: ``best`` = the evaluation with the highest mAP (the IMAE/DM
  papers' convention), ``final`` = the last evaluation (ProSelfLC's convention).

Distributed runs: batch statistics are those seen by rank 0 (a 1/world_size sample of each epoch).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from reid.atomic import atomic_write_json
from reid.data.noise import NoiseConfig, NoiseManifest, apply_noise
from reid.losses import example_weights_of
from reid.studies.fit import fit_report
from reid.studies.predict import predict_train_split
from reid.studies.trajectories import TrajectoryRecorder

P_EDGES = np.linspace(0.0, 1.0, 21)
FIT_KEYS = ("noisy_fit", "clean_fit", "correction_rate", "train_acc")


class NoiseHook:
    def __init__(self, cfg: NoiseConfig | dict) -> None:
        self.cfg = cfg if isinstance(cfg, NoiseConfig) else NoiseConfig.model_validate(cfg)
        self.manifest: NoiseManifest | None = None
        self.true_labels: np.ndarray | None = None
        self.noisy_labels: np.ndarray | None = None
        self.noisy_mask: np.ndarray | None = None
        self.records: list[dict] = []  # per-epoch p/w histograms
        self.fit_history: list[dict] = []  # per-evaluation fit numbers
        self._batch: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.trajectories: TrajectoryRecorder | None = None
        self._restricted = False

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _is_main(trainer) -> bool:
        dist = getattr(trainer, "dist", None)
        return True if dist is None else bool(getattr(dist, "is_main", True))

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer) -> None:
        clean = list(trainer.data.train)
        num_classes = int(getattr(trainer, "num_classes", None) or trainer.data.num_train_ids)
        out_dir = Path(trainer.output_dir)
        noisy, manifest = apply_noise(clean, self.cfg, num_classes, background_dir=out_dir / "noise_backgrounds")
        trainer.data.train = noisy
        self.manifest = manifest
        self.true_labels = np.asarray([t.label for t in clean], dtype=np.int64)
        self.noisy_labels = np.asarray([t.label for t in noisy], dtype=np.int64)
        self.noisy_mask = manifest.noisy_mask()
        if self._is_main(trainer):
            manifest.save(out_dir / "noise_manifest.json")
            logger = getattr(trainer, "logger", None)
            if logger is not None:
                logger.info("noise: %s (manifest %s)", json.dumps(manifest.summary()), out_dir / "noise_manifest.json")

    def _sync(self, trainer) -> None:
        """After ``eval.validation`` held identities out (``trainer.train_keep_index``), the
        per-example arrays follow the training list that is left (once)."""
        keep = getattr(trainer, "train_keep_index", None)
        if keep is not None and not self._restricted:
            self.true_labels, self.noisy_labels = self.true_labels[keep], self.noisy_labels[keep]
            self.noisy_mask = self.noisy_mask[keep]
            self._restricted = True
        if self.trajectories is None:
            self.trajectories = TrajectoryRecorder(self.noisy_mask, self.noisy_labels)

    def on_train_start(self, trainer) -> None:
        self._sync(trainer)

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self._batch = []

    def on_batch_end(self, trainer, batch, outputs, losses) -> None:
        index = batch["index"]
        index = index.detach().cpu().numpy() if torch.is_tensor(index) else np.asarray(index)
        labels = batch["label"]
        loss_obj = losses.get("id_loss") if isinstance(losses, dict) else None
        stats = getattr(loss_obj, "last_stats", None) or {}
        p, w = stats.get("p"), stats.get("w")
        n = index.shape[0]
        if not (torch.is_tensor(p) and p.numel() == n):
            logits = outputs["logits"].detach().float()
            lab = labels.to(logits.device) if torch.is_tensor(labels) else torch.as_tensor(labels, device=logits.device)
            p = torch.softmax(logits, dim=1).gather(1, lab.long()[:, None]).squeeze(1)
        if not (torch.is_tensor(w) and w.numel() == n):
            lab = labels.to(outputs["logits"].device) if torch.is_tensor(labels) else torch.as_tensor(labels)
            p, w = example_weights_of(trainer.id_loss, outputs["logits"].detach().float(), lab.long())
        w_np = w.detach().float().cpu().numpy().reshape(-1)
        self._batch.append((index, p.detach().float().cpu().numpy().reshape(-1), w_np))
        self._sync(trainer)
        self.trajectories.add_batch(w_np, self.noisy_mask[index])

    def on_epoch_end(self, trainer, epoch: int) -> None:
        if not self._batch:
            return
        idx = np.concatenate([b[0] for b in self._batch])
        p = np.concatenate([b[1] for b in self._batch])
        w = np.concatenate([b[2] for b in self._batch])
        self._batch = []
        self.records.append(pw_histogram_record(epoch + 1, p, w, self.noisy_mask[idx]))
        self.trajectories.close_epoch(epoch + 1)
        if self._is_main(trainer):
            atomic_write_json(Path(trainer.output_dir) / "pw_histograms.json", self.records, indent=None)

    def on_evaluate(self, trainer, epoch: int, metrics: dict) -> dict:
        self._sync(trainer)
        logits = torch.as_tensor(np.asarray(predict_train_split(trainer)), dtype=torch.float64)
        pred = logits.argmax(dim=1).numpy()
        rep = fit_report(pred, self.noisy_labels, self.true_labels, self.noisy_mask)
        out = {k: rep[k] for k in FIT_KEYS}
        # trajectory point: eval-mode p_i of the training label and w_i = w(p_i) of the id loss
        p, w = example_weights_of(trainer.id_loss, logits, torch.as_tensor(self.noisy_labels))
        traj = self.trajectories.add_evaluation(epoch + 1, p.numpy(), w.detach().cpu().numpy())
        out.update(auc_p=traj["auc_p"], auc_w=traj["auc_w"])
        self.fit_history.append({"epoch": epoch + 1, "mAP": metrics.get("mAP"), "val_mAP": metrics.get("val_mAP"), **out})
        return out

    def on_fit_end(self, trainer, final: dict) -> None:
        out_dir = Path(trainer.output_dir)
        if self.records:
            from reid.studies.plots import plot_pw_distributions

            plot_pw_distributions(self.records, out_dir / "pw_distributions.png", title=f"{_loss_name(trainer.cfg.loss.id)}: clean vs noisy tracklets")
        if self.trajectories is not None and self._is_main(trainer):
            self.trajectories.save(out_dir / "trajectories.npz")
        section = {
            "trajectories": str(out_dir / "trajectories.npz"),
            "trajectory_curves": self.trajectories.curves() if self.trajectories is not None else None,
            "config": self.cfg.model_dump(mode="json"),
            "manifest": str(out_dir / "noise_manifest.json"),
            "summary": self.manifest.summary() if self.manifest else None,
            "reporting": "best = the evaluation with the highest mAP (IMAE/DM papers' convention); "
                         "final = the last evaluation (ProSelfLC's convention). noisy_fit: accuracy of the "
                         "noisy subset against its noisy labels (lower = more robust); clean_fit: accuracy of "
                         "the clean subset; predictions in eval mode without augmentation.",
            "fit_history": self.fit_history,
        }
        for which in ("best", "best_by_val", "final"):
            m = final.get(which) or {}
            section[which] = {k: m.get(k) for k in ("mAP", "rank1", *FIT_KEYS)}
        final["noise"] = section


def _loss_name(id_cfg) -> str:
    return id_cfg.scheme if id_cfg.name == "weighted_ce" else id_cfg.name


def pw_histogram_record(epoch: int, p: np.ndarray, w: np.ndarray, noisy: np.ndarray) -> dict:
    """Clean/noisy histograms of ``p_i`` (20 bins on [0, 1]) and ``w_i`` (20 bins on [0, max w])."""
    noisy = np.asarray(noisy, dtype=bool)
    w_edges = np.linspace(0.0, float(max(w.max(initial=0.0), 1e-12)), 21)

    def h(v, e):
        return np.histogram(np.clip(v, e[0], e[-1]), bins=e)[0].tolist()

    return {
        "epoch": epoch,
        "p_edges": P_EDGES.tolist(), "p_hist_clean": h(p[~noisy], P_EDGES), "p_hist_noisy": h(p[noisy], P_EDGES),
        "w_edges": w_edges.tolist(), "w_hist_clean": h(w[~noisy], w_edges), "w_hist_noisy": h(w[noisy], w_edges),
        "mean_p_clean": float(p[~noisy].mean()) if (~noisy).any() else float("nan"),
        "mean_p_noisy": float(p[noisy].mean()) if noisy.any() else float("nan"),
    }


__all__ = ["NoiseHook", "pw_histogram_record"]
