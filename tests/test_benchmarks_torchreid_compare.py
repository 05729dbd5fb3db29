"""The torchreid comparison benchmark's skip path (torchreid absent) and its variant parsing; the
comparison itself needs torchreid and real sizes, so it runs as a benchmark, not here."""

from __future__ import annotations

import sys

from reid.benchmarks import torchreid_compare


def test_without_torchreid_prints_one_install_line_and_exits_0(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torchreid", None)  # makes `import torchreid` fail, installed or not
    assert torchreid_compare.import_torchreid() is None
    assert torchreid_compare.main(["--steps", "1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [torchreid_compare.INSTALL_HINT]
    assert "pip install torchreid==0.2.5" in out[0]


def test_cli_area_is_registered_and_skips(monkeypatch, capsys):
    from reid.cli.benchmark import AREAS, main

    monkeypatch.setitem(sys.modules, "torchreid", None)
    assert "torchreid_compare" in AREAS
    assert main(["torchreid_compare"]) == 0
    assert "skipped, torchreid is not installed" in capsys.readouterr().out


def test_variants_are_override_lists_after_the_common_ones():
    parse = torchreid_compare._variants
    assert parse(None, ["a=1"]) == [["a=1"]]
    assert parse("; train.channels_last=true optim.impl=fused", ["a=1"]) == [
        ["a=1"], ["a=1", "train.channels_last=true", "optim.impl=fused"]]
