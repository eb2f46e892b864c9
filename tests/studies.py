"""Helpers for the tests that run small Ray Tune studies on digits."""
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import FAST_EPOCHS
from tests.processes import TAG_VARIABLE

TINY_SPACE = {
    "description": "tiny DAU space for tests",
    "experiment": {"preset": "digits", "forget": "random:10", "seeds": [0]},
    "method": "dau",
    "fixed": {"epochs": 2, "attacker_pretrain_iters": 5, "noise_copies": 2, "batch_size": 128},
    "search": {"lr": {"loguniform": [1e-2, 3e-1]}, "alpha": {"uniform": [0.1, 1.0]}},
    "study": {"num_samples": 3, "max_concurrent": 2},
}


def write_space(folder: Path, **changes) -> Path:
    space = {**TINY_SPACE, **changes}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def tune_cli(*args, cache, tag: str | None = None, **kwargs):
    """`python -m study.tune ...` on digits; with `tag`, every process it starts carries it (tests.processes)."""
    command = [sys.executable, "-m", "study.tune", *args, "--cache-dir", str(cache), "--epochs", str(FAST_EPOCHS),
               "--quiet"]
    if tag is not None:
        kwargs["env"] = {**(kwargs.get("env") or os.environ), TAG_VARIABLE: tag}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
