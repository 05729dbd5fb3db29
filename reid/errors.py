"""The base class of every error a user can fix (bad input, not a bug).

Command-line front ends print such an error as one line and exit with status 2, before any work
where it can be detected that early; anything else is a bug and keeps its traceback. Each
concrete error also derives from the built-in type it always was (``ValueError``, ``OSError``,
``RuntimeError``), so existing ``except`` clauses keep working.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a config key, a dataset file, a checkpoint, a CLI argument. The message names
    the file, line or key and says what to do."""


__all__ = ["UserError"]
