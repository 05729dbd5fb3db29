"""The GPU benchmark script (``tools/benchmark.py gpu``): its CPU dry run keeps working in CI.

No timing is asserted: the dry run checks that every code path runs and that the report names
what a CPU cannot measure."""

from __future__ import annotations

import json

import pytest

from reid.benchmarks import gpu


@pytest.mark.slow  # ~35 s on 2 busy cores: three trainer set-ups and an extraction
def test_dry_run_writes_json_and_markdown_with_every_measurement(tmp_path, capsys):
    out = tmp_path / "gpu"
    assert gpu.main(["--dry-run", "--out", str(out)]) == 0

    report = json.loads((out / "gpu_benchmark.json").read_text())
    assert {"kind", "dry_run", "note", "command", "environment", "sizes", "knn", "train", "extract",
            "total_s"} <= set(report)
    assert report["dry_run"] is True and "dry run" in report["kind"]
    assert report["sizes"] == gpu.DRY

    knn = report["knn"]
    assert {"gallery", "queries", "dim", "k", "cpu_s", "gpu_s", "speedup"} <= set(knn)
    assert knn["gallery"] == gpu.DRY["gallery"] and knn["cpu_s"] > 0
    # CI's faiss is the CPU build: the GPU side is reported as skipped, with its reason
    assert isinstance(knn["gpu_s"], str) and knn["gpu_s"].startswith("skipped: ")

    train = {r["mode"]: r for r in report["train"]}
    assert set(train) == set(gpu.TRAIN_MODES)
    for mode in ("fp32", "channels_last"):  # both run on CPU, through Trainer.run_step
        r = train[mode]
        assert r["clips_per_s"] > 0 and r["clips_per_step"] == gpu.DRY["p"] * gpu.DRY["k_per_id"]
        assert r["frames_per_clip"] == gpu.DRY["clip_length"]
        assert r["peak_mib"].startswith("skipped: ")
    assert "CUDA-only" in train["bf16"]["skipped"]

    extract = {r["mode"]: r for r in report["extract"]}
    assert extract["fp32"]["frames"] > 0 and extract["fp32"]["frames_per_s"] > 0
    assert "CUDA-only" in extract["bf16"]["skipped"]

    md = (out / "gpu_benchmark.md").read_text()
    assert md.startswith("# GPU benchmark (dry run, CPU, tiny sizes)")
    for heading in ("## kNN", "## Training", "## Extraction"):
        assert heading in md
    assert "| bf16 | skipped: " in md
    assert "gpu_benchmark.json" in capsys.readouterr().out


def _gpu_shaped_report() -> dict:
    """A report as a GPU run produces it (numbers, no skips), for the markdown layout."""
    return {
        "kind": "full size, GPU", "dry_run": False, "note": "full size on one GPU",
        "command": "python tools/benchmark.py gpu", "total_s": 200.0, "sizes": gpu.FULL,
        "environment": {"device": "GPU", "torch": "2", "faiss": "1.15", "date": "2026-12-01"},
        "knn": {"gallery": 1_000_000, "queries": 10_000, "dim": 256, "k": 100, "index": "IndexFlatIP",
                "cpu_s": 20.0, "gpu_s": 0.5, "speedup": 40.0, "top1_agreement": 1.0},
        "train": [{"mode": m, "clips_per_step": 32, "frames_per_clip": 4, "s_per_step": s,
                   "clips_per_s": 32 / s, "peak_mib": 9000.0, "steps": 10}
                  for m, s in (("fp32", 0.2), ("bf16", 0.1), ("channels_last", 0.16))],
        "extract": [{"mode": m, "tracklets": 400, "frames": 5000, "s": s, "frames_per_s": 5000 / s, "peak_mib": 2000.0}
                    for m, s in (("fp32", 2.0), ("bf16", 1.0))],
    }


def test_markdown_of_a_gpu_run_has_ratios_against_fp32_and_peak_memory():
    md = gpu.markdown(_gpu_shaped_report())
    assert "| 20.000 | 0.500 | 40.0 | 1.0000 |" in md  # faiss cpu s, gpu s, speed-up, agreement
    assert "| bf16 | 0.1000 | 320.0 | 2.00 | 9000 |" in md  # clips/s and its ratio to fp32
    assert "| channels_last | 0.1600 | 200.0 | 1.25 | 9000 |" in md
    assert "| bf16 | 400 | 5000 | 1.000 | 5000.0 | 2000 |" in md
    assert "skipped" not in md


def test_full_sizes_are_the_issue_s():
    assert (gpu.FULL["gallery"], gpu.FULL["queries"], gpu.FULL["dim"]) == (1_000_000, 10_000, 256)
    assert (gpu.FULL["backbone"], gpu.FULL["height"], gpu.FULL["width"], gpu.FULL["clip_length"]) == (
        "resnet50", 256, 128, 4)


def test_tools_benchmark_routes_gpu_to_the_script():
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parents[1] / "tools" / "benchmark.py"
    done = subprocess.run([sys.executable, str(tool), "gpu", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: tools/benchmark.py gpu") and "--dry-run" in done.stdout
