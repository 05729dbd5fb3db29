"""Frames verified before training (decoded once, cached by size + mtime), and the one-line
message of a frame error raised inside a DataLoader worker."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

from reid.data.frames import FrameReadError, read_frame
from reid.data.tracklet import DatasetError
from reid.data.verify import verify_frames
from reid.errors import UserError


def _write_frames(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.jpg"
        cv2.imwrite(str(path), np.full((16, 8, 3), 10 * i, dtype=np.uint8))
        paths.append(str(path))
    return paths


def test_second_check_decodes_nothing_and_a_changed_file_is_decoded_again(tmp_path):
    paths = _write_frames(tmp_path / "data", 6)
    cache = tmp_path / "cache" / "verified.npz"
    first = verify_frames(paths, tmp_path / "data", cache=cache, progress=False)
    assert (first.frames, first.decoded) == (6, 6) and cache.is_file()
    second = verify_frames(paths + paths[:2], tmp_path / "data", cache=cache, progress=False)  # duplicates once
    assert (second.frames, second.decoded) == (6, 0)
    cv2.imwrite(paths[3], np.zeros((20, 10, 3), dtype=np.uint8))  # other size -> other key
    os.utime(paths[3], ns=(1, 1))
    assert verify_frames(paths, tmp_path / "data", cache=cache, progress=False).decoded == 1


def test_a_bad_frame_is_a_dataset_error_naming_the_file_and_is_never_cached(tmp_path):
    paths = _write_frames(tmp_path / "data", 4)
    open(paths[2], "wb").close()  # zero bytes
    cache = tmp_path / "verified.npz"
    with pytest.raises(DatasetError, match=r"1 of 4 frames.*002\.jpg: file is empty") as info:
        verify_frames(paths, tmp_path / "data", cache=cache, progress=False)
    assert isinstance(info.value, UserError) and "data.corrupt=skip" in str(info.value)
    with pytest.raises(DatasetError):  # still checked on the next run
        verify_frames(paths, tmp_path / "data", cache=cache, progress=False)


def test_default_cache_lives_in_a_writable_dataset_folder(tmp_path):
    paths = _write_frames(tmp_path / "data", 2)
    check = verify_frames(paths, tmp_path / "data", progress=False)
    assert check.cache == str((tmp_path / "data" / ".reid-verified-frames.npz").resolve())


class _OneFrame(torch.utils.data.Dataset):
    def __init__(self, path):
        self.path = path

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return torch.from_numpy(read_frame(self.path))


def test_frame_error_in_a_dataloader_worker_is_the_one_line_message(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    loader = torch.utils.data.DataLoader(_OneFrame(str(bad)), num_workers=1)
    with pytest.raises(FrameReadError) as info:
        next(iter(loader))
    message = str(info.value)
    # before: "cannot read frame Caught FrameReadError in DataLoader worker process 0 ..."
    assert message == f"cannot read frame {bad}: not a decodable image (corrupt or truncated file)"
    assert info.value.path == str(bad) and "\n" not in message


def test_frame_read_error_keeps_its_normal_form():
    err = FrameReadError("/x/y.jpg", "file does not exist")
    assert str(err) == "cannot read frame /x/y.jpg: file does not exist" and err.reason == "file does not exist"
    assert FrameReadError("/x/y.jpg").reason == "could not be decoded as an image"
