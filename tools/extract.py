#!/usr/bin/env python
"""`reid extract` from a checkout, installed or not: the command lives in reid/cli/extract.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's reid, even when not installed
from reid.cli.extract import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="tools/extract.py"))
