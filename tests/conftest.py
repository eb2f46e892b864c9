"""Shared fixtures: a small, fast digits experiment with its own artifact cache."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys

import pytest
import torch

from study.core.cache import ArtifactCache
from study.experiment.config import experiment_from_preset
from study.experiment.prepare import prepare
from tests.processes import TAG_VARIABLE, new_tag, survivors

TEST_THREADS = max(1, min(2, os.cpu_count() or 1))
torch.set_num_threads(TEST_THREADS)

FAST_EPOCHS = 8  # enough for digits to reach ~97% test accuracy with the small CNN

# Each method at settings that run in seconds on digits (the suite's smoke runs, CPU and CUDA).
FAST_METHOD_PARAMS = {
    "ft": {"epochs": 1}, "ga": {"epochs": 1}, "neggrad+": {"epochs": 1}, "rl": {"epochs": 1},
    "l1-sparse": {"epochs": 1}, "salun": {"epochs": 1}, "scrub": {"epochs": 1, "max_epochs": 1},
    "ff": {"num_samples": 64, "alpha": 1e-6}, "iu": {"num_samples": 64}, "ssd": {"alpha": 2.0},
    "scissorhands": {"epochs": 1},
    "lotus": {"epochs": 1, "lr": 1e-3}, "sfr-on": {"iters": 10},
    "regun": {"epochs": 1}, "amun": {"epochs": 1, "attack_steps": 5, "max_rounds": 2},
    "dau": {"attacker_pretrain_iters": 5, "epochs": 1, "noise_copies": 2},
}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("artifact-cache")


@pytest.fixture(scope="session")
def digits_random(cache_dir):
    return prepare(experiment_from_preset("digits", epochs=FAST_EPOCHS), ArtifactCache(cache_dir), log=lambda s: None)


@pytest.fixture(scope="session")
def digits_classwise(cache_dir):
    return prepare(experiment_from_preset("digits", epochs=FAST_EPOCHS, forget="class:3"), ArtifactCache(cache_dir),
                   log=lambda s: None)


@pytest.fixture(scope="session")
def digits_sparse(cache_dir):
    return prepare(experiment_from_preset("digits", epochs=FAST_EPOCHS, sparsity=0.9), ArtifactCache(cache_dir),
                   log=lambda s: None)


@pytest.fixture(scope="session")
def finished_study(tmp_path_factory, digits_random, cache_dir):
    """A finished 3-trial DAU study on digits that logged both objectives: (root, study dir, stdout)."""
    from tests.studies import tune_cli, write_space

    root = tmp_path_factory.mktemp("study")
    space = write_space(root)
    tag = new_tag()
    result = tune_cli("--space", str(space), "--storage", str(root / "studies"), "--name", "tiny",
                      "--retrain-free-score", cache=cache_dir, tag=tag)
    assert result.returncode == 0, result.stderr[-3000:]
    # what the study left running, for test_a_finished_study_leaves_no_process
    (root / "survivors.json").write_text(json.dumps(survivors(tag)))
    return root, root / "studies" / "tiny", result.stdout


# Every process the suite starts inherits this tag, so that processes left running at its end are found.
SUITE_TAG = new_tag()
os.environ[TAG_VARIABLE] = SUITE_TAG


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when a process the suite started outlives it (Ray's monitors, a stray worker)."""
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except ImportError:
        pass
    # multiprocessing's resource tracker is this process's own helper: it ends when pytest does
    left = survivors(SUITE_TAG, grace_s=30.0, ignore="resource_tracker")
    if not left:
        return
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    print(f"\nerror: {len(left)} process(es) started by the tests were still running at the end (now killed):\n"
          + "\n".join(f"  {pid}: {line}" for pid, line in sorted(left.items())), file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
