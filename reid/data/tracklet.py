"""The unit of video ReID data: a tracklet (a time-ordered run of person crops of one identity
seen by one camera) and the three splits a benchmark is made of.

Every dataset reader in ``reid.data`` (MARS, custom CSV manifests, the synthetic generator's
output read back through the MARS reader) produces these types; everything downstream
(samplers, clip datasets, the trainer, the evaluator) consumes only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from reid.errors import UserError


@dataclass(frozen=True)
class Tracklet:
    """One tracklet.

    Attributes:
        frames: absolute paths of the frames, in temporal order.
        pid: person id exactly as the dataset gives it (MARS test split: -1 junk, 0 distractor).
        camid: camera id exactly as the dataset gives it (MARS: 1..6).
        tracklet_id: the dataset's own tracklet identifier (MARS: the ``T<4 digits>`` number
            within (pid, camera); custom manifests: the ``tracklet_id`` column).
        row: 0-based row of this tracklet in its source table (MARS: row of
            ``tracks_*_info.mat``; custom: order of first appearance). Used in error messages
            and to address tracklets in noise manifests.
        label: contiguous training label in ``[0, num_train_ids)`` for the training split (pids
            sorted ascending, then enumerated); -1 for query/gallery tracklets.
    """

    frames: tuple[str, ...]
    pid: int
    camid: int
    tracklet_id: int | str
    row: int
    label: int = -1

    def __len__(self) -> int:
        return len(self.frames)

    def with_label(self, label: int) -> "Tracklet":
        return replace(self, label=label)


@dataclass
class VideoReIDData:
    """Train / query / gallery splits of one dataset under one evaluation protocol.

    ``protocol`` is the name of the :class:`reid.protocols.Protocol` that built query and
    gallery: ``official`` keeps the queries inside the gallery (MARS-evaluation MATLAB code);
    ``torchreid`` removes them and drops junk (pid -1) tracklets from the gallery. The same object
    holds the junk rules applied at scoring time.
    """

    name: str
    root: Path
    protocol: str
    train: list[Tracklet]
    query: list[Tracklet]
    gallery: list[Tracklet]
    num_train_ids: int
    # training label -> original pid, so reports and noise manifests can name real ids
    label_to_pid: dict[int, int] = field(default_factory=dict)
    # report of frames dropped under the corrupt-frame policy ``skip`` (None when nothing was
    # scanned); see ``reid.data.frames``
    frame_issues: object | None = None
    # the corrupt-frame policy the reader applied (``reid.data.frames.CORRUPT_POLICIES``); the
    # datasets built from this data take the same (``TrainClipDataset(..., corrupt=data.corrupt)``)
    corrupt: str = "error"

    @classmethod
    def from_tracklets(cls, name: str, root: Path, protocol: str, train: list[Tracklet],
                       query: list[Tracklet], gallery: list[Tracklet],
                       frame_issues: object | None = None, corrupt: str = "error") -> "VideoReIDData":
        """The splits of a reader, with training labels assigned by :func:`assign_train_labels`
        (every reader goes through here, so labels mean the same thing for every format)."""
        train, label_to_pid = assign_train_labels(train)
        return cls(name=name, root=root, protocol=protocol, train=train, query=query, gallery=gallery,
                   num_train_ids=len(label_to_pid), label_to_pid=label_to_pid, frame_issues=frame_issues,
                   corrupt=corrupt)

    def summary(self) -> dict:
        def frames(ts: list[Tracklet]) -> int:
            return sum(len(t) for t in ts)

        return {
            "name": self.name,
            "protocol": self.protocol,
            "train_tracklets": len(self.train),
            "train_ids": self.num_train_ids,
            "train_frames": frames(self.train),
            "query_tracklets": len(self.query),
            "gallery_tracklets": len(self.gallery),
        }


def assign_train_labels(train: list[Tracklet]) -> tuple[list[Tracklet], dict[int, int]]:
    """Give training tracklets contiguous labels: sorted unique pids -> 0..n-1.

    Returns the relabelled tracklets and the ``label -> pid`` map. Pids themselves are kept.
    """
    pids = sorted({t.pid for t in train})
    pid_to_label = {pid: i for i, pid in enumerate(pids)}
    return [t.with_label(pid_to_label[t.pid]) for t in train], {i: p for p, i in pid_to_label.items()}


class DatasetError(UserError, ValueError):
    """A dataset failed validation. The message names the file and, where it applies, the row
    or line, and says what to do."""


__all__ = ["Tracklet", "VideoReIDData", "assign_train_labels", "DatasetError", "Path"]
