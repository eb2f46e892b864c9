"""All-or-nothing outputs: write under a temporary name, rename when complete.

A crash (or a UserError) half-way leaves nothing that looks finished; the previous folder or
file, if there was one, stays until the new one is complete.
"""
from __future__ import annotations

import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside `out`; on success it replaces `out`, on error it is removed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_file_atomically(target: Path, content: str | bytes) -> None:
    """Write `content` (text, or bytes) to `target` all at once: a crash mid-write leaves the previous
    file (or none), never a partial one that would later be read as a result."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    if isinstance(content, bytes):
        partial.write_bytes(content)
    else:
        partial.write_text(content)
    partial.replace(target)
