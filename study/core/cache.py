"""Content-addressed artifact cache: each trained model is built once per key and reused.

An entry is a folder named by the SHA-256 of its key. It is built in a private temporary
folder and moved into place with one atomic `rename`, so a crash mid-save leaves no entry
that later loads as valid; a per-key `flock` stops two processes (two Ray trials) from
training the same model at once: the second waits and then reads the first one's result.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator

DEFAULT_CACHE_DIR = os.environ.get("DAU_CACHE_DIR", str(Path.home() / ".cache" / "dau-study"))


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]


def source_digest(*modules: ModuleType) -> str:
    """Short digest of the source of `modules`: an artifact keyed with it is rebuilt when that code changes."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def array_digest(array) -> str:
    """Short digest of an index array, so keys stay small but still name the exact split."""
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.int64).tobytes()).hexdigest()[:16]


def state_digest(state: dict) -> str:
    """SHA-256 (16 hex digits) of a state dict's tensors, by name, dtype, shape and bytes: the same for
    the same weights wherever they were trained or saved, different for a model rebuilt under the same
    cache key on another machine or thread count (float sums depend on both)."""
    import torch

    sha = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        sha.update(name.encode() + b"\0" + str(tensor.dtype).encode() + str(tuple(tensor.shape)).encode())
        sha.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()[:16]


class ArtifactCache:
    def __init__(self, root: str | os.PathLike = DEFAULT_CACHE_DIR):
        self.root = Path(root)

    def entry_path(self, key: dict) -> Path:
        return self.root / key_digest(key)

    def has(self, key: dict) -> bool:
        return self.entry_path(key).is_dir()

    @contextmanager
    def _lock(self, digest: str) -> Iterator[None]:
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{digest}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def locked(self, key: dict) -> Iterator[None]:
        """Hold `key`'s lock for work that builds several entries in one pass (DAU's attacker
        snapshots): a second process asking for the same work waits, then finds the entries."""
        with self._lock(self.entry_path(key).name):
            yield

    def get_or_build(self, key: dict, build: Callable[[Path], None]) -> tuple[Path, bool]:
        """Return (entry folder, whether it was built now); `build(folder)` writes the files."""
        final = self.entry_path(key)
        if final.is_dir():
            return final, False
        digest = final.name
        with self._lock(digest):
            if final.is_dir():  # another process built it while we waited
                return final, False
            staging = self.root / f".staging-{digest}-{uuid.uuid4().hex[:8]}"
            staging.mkdir(parents=True)
            try:
                build(staging)
                (staging / "key.json").write_text(json.dumps(key, indent=2, sort_keys=True, default=str))
                os.rename(staging, final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return final, True
