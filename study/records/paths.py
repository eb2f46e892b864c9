"""Paths in kept records: relative, so that a kept folder can be moved, committed or shared.

A comparison's `compare.json`, its `configs/` and `table.md`, a study's `study.json` and a run
folder's `config.json` record the command that made them and the folders they point to. Written as
given, they held this machine's absolute paths (`/work/main/docs/...`) and broke when the folder
moved. A path inside the record's own folder is stored relative to that folder and read back against
it; a command's absolute paths under the directory it ran in are written relative to that directory
(as the command would be typed from there); anything else (a cache in /tmp, a dataset elsewhere) stays
as given, since only the user knows where it lives, and no table needs it to be read.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path


def relative_if_inside(path: str | os.PathLike, folder: str | os.PathLike) -> str:
    """`path` relative to `folder` when it lies inside it (either may be relative to the working
    directory), else `path` as given."""
    target, base = Path(os.path.abspath(path)), Path(os.path.abspath(folder))
    try:
        return str(target.relative_to(base))
    except ValueError:
        return str(path)


def stored_path(path: str | os.PathLike | None, folder: str | os.PathLike) -> str | None:
    """What a record in `folder` stores for a folder it points to (None stays None): the path relative
    to `folder` (`../other/studies/...` for one beside it), so that the two can move together."""
    return None if path is None else os.path.relpath(os.path.abspath(path), os.path.abspath(folder))


def read_path(stored: str | None, folder: str | os.PathLike) -> Path | None:
    """A path a record in `folder` stored, as a path to open: relative ones are read against `folder`."""
    if stored is None:
        return None
    path = Path(stored)
    return path if path.is_absolute() else Path(folder) / path


def portable_command(prefix: str, argv: list[str], cwd: str | os.PathLike | None = None) -> str:
    """`prefix` and `argv` as one command line, each absolute path under `cwd` (default: the working
    directory) written relative to it, so the recorded command runs from that directory anywhere."""
    cwd = os.path.abspath(cwd or os.getcwd())

    def token(arg: str) -> str:
        if arg.startswith("--") and "=" in arg:
            flag, value = arg.split("=", 1)
            return f"{flag}={token(value)}"
        return relative_if_inside(arg, cwd) if os.path.isabs(arg) else arg

    return " ".join([prefix, *(shlex.quote(token(arg)) for arg in argv)])
