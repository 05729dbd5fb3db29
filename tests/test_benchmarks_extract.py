"""The extraction benchmark runs end to end at tiny size and compares the same frames."""

from __future__ import annotations

import json


def test_extract_benchmark_smoke(tiny_synthetic_mars, capsys):
    from reid.benchmarks.extract import main

    rc = main(["--root", str(tiny_synthetic_mars), "--size", "32x16", "--frames", "12", "--chunk", "4",
               "--workers", "0", "--max-frames", "all,2", "--repeats", "1", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    all_frames, evenly = report["results"]
    assert all_frames["mode"] == "all" and evenly["mode"] == "max_frames=2"
    assert all_frames["tracklets"] == evenly["tracklets"] > 0
    assert all_frames["frames"] >= 12 and evenly["frames"] <= 2 * evenly["tracklets"] < all_frames["frames"]
    for r in (all_frames, evenly):
        assert r["model_fps"] > 0 and r["extract_fps"] > 0 and 0 < r["ratio"] < 100
        assert len(r["rounds"]) == 1 and r["startup_s"] > 0
