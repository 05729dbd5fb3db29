"""What every command shares: user errors as one line with exit status 2, shipped configs by name.

A user error is any :class:`reid.errors.UserError` (config, dataset, checkpoint, unknown choice,
evaluation input, run folder, ...) or an ``OSError`` the user can fix (disk full, permission
denied, read-only file system, a missing file or folder). :func:`guarded` prints it as
``error: <message>`` on stderr and returns 2, without a traceback; ``--debug`` (or
``REID_DEBUG=1``) lets it propagate with its traceback. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import os
import sys
from pathlib import Path
from typing import Callable

from reid.errors import UserError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention

# OSErrors that mean "fix your disk, path or permissions", not "reid has a bug"
USER_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EACCES, errno.EPERM, errno.EROFS,
               errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}


class UsageError(UserError, ValueError):
    """A command-line argument is invalid or contradicts another; the message names the option."""


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of the one-line message "
                             "(also REID_DEBUG=1)")


def debug_requested(args: argparse.Namespace | None = None) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("REID_DEBUG", "") not in ("", "0")


def describe_os_error(exc: OSError) -> str:
    """One line for a user-fixable OSError: what happened, to which file, what to do."""
    target = exc.filename if exc.filename is not None else "?"
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return (f"no space left on the device while writing {target}: free some space, or point "
                "output_dir (or the dataset folder) at another disk")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{exc.strerror}: {target}: choose a folder you can write to (e.g. output_dir=...)"
    return f"{exc.strerror}: {target}"


def fail(message: str) -> int:
    """Print ``error: message`` on stderr; the exit status of a user error."""
    message = message.removeprefix("error: ")
    print(f"error: {message}", file=sys.stderr, flush=True)
    return EXIT_USER_ERROR


def guarded(body: Callable[[], int | None], debug: bool = False) -> int:
    """Run ``body`` and return its exit status; a user error becomes one line and status 2,
    Ctrl-C one line and status 130. With ``debug`` both keep their traceback."""
    try:
        return int(body() or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except UserError as exc:
        if debug:
            raise
        return fail(str(exc))
    except OSError as exc:
        if debug or exc.errno not in USER_ERRNOS:
            raise
        return fail(describe_os_error(exc))


def shipped_config_names(prefix: str = "") -> list[str]:
    """Names accepted by ``--config`` (``default``, ``schemes/imae``, ...), optionally filtered."""
    from reid.configs import shipped_configs

    return [n for n in shipped_configs() if n.startswith(prefix)]


def resolve_config(name_or_path: str | os.PathLike) -> Path:
    """A ``--config`` value as a file: an existing path as is, else a shipped config's name
    (``mars_resnet50``, ``schemes/imae``, with or without ``.yaml`` or ``configs/``), resolved by
    :func:`reid.configs.config_path`. Raises :class:`UsageError` naming ``--config``, listing the
    shipped names and the closest one."""
    from reid.configs import ConfigNotFoundError, config_path

    try:
        return config_path(name_or_path)
    except ConfigNotFoundError as exc:
        text = str(name_or_path).removesuffix(".yaml").removeprefix("configs/")
        close = difflib.get_close_matches(text, shipped_config_names(), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UsageError(f"--config {name_or_path}: {exc}.{hint}") from None


__all__ = ["EXIT_USER_ERROR", "EXIT_INTERRUPTED", "UsageError", "add_debug_flag",
           "debug_requested", "describe_os_error", "fail", "guarded", "resolve_config", "shipped_config_names"]
