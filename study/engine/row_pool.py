"""Evaluation rows in several worker processes at once: `study.compare --eval-workers N`.

A comparison's evaluation phase is dozens of independent rows (a method, its parameters, a seed).
Run one after another in the driver, each row gets every core, but the proxy's small CNN cannot
use two cores well: two one-thread rows side by side finish sooner than the same rows in turn.
This pool runs them that way, each worker with `cores // workers` torch threads, which is also
how the studies' trials ran (one core per trial), so time/Retrain compares like with like when
Retrain is trained in a worker too (every row records its thread count and Retrain's, and the
table notes a seed where they differ).

Workers are spawned (no forked torch or Ray state), keep each seed's prepared data, models and
held-out judge once built, and return finished rows to the driver, which alone writes the run
log: a row is recorded the moment it returns, so Ctrl+C (which ends the workers) loses only the
rows in flight. Two workers that need the same seed's models wait on the artifact cache's
per-key lock instead of training them twice.
"""
from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from typing import Iterator

import torch

from study.core.progress import set_quiet

_state: dict = {}  # per worker: the experiment, the cache, and each seed's (prepared, judge)


@dataclass(frozen=True)
class RowTask:
    """One evaluation row to run: its run-log key (method, seed, params...) and its probes."""

    method: str
    params: dict
    key: dict
    probes: object  # a seed_runs.RowProbes


def threads_per_worker(workers: int) -> int:
    return max(1, len(os.sched_getaffinity(0)) // workers)


def _start_worker(experiment: dict, cache_dir: str, threads: int, quiet: bool) -> None:
    torch.set_num_threads(threads)
    set_quiet(quiet)
    _state.update(experiment=experiment, cache_dir=cache_dir, seeds={})


def _seed_state(seed: int, heldout: bool):
    from study.core.cache import ArtifactCache
    from study.evaluation.heldout import RetrainFreeJudge
    from study.experiment.config import resolve_experiment
    from study.experiment.prepare import prepare

    cache = ArtifactCache(_state["cache_dir"])
    prepared, judge = _state["seeds"].get(seed, (None, None))
    if prepared is None:
        log = lambda message: print(f"  [seed {seed}] {message}", flush=True)  # noqa: E731
        prepared = prepare(resolve_experiment(None, _state["experiment"], {"seed": seed}), cache, log=log)
    if heldout and judge is None:
        judge = RetrainFreeJudge(prepared, cache)
    _state["seeds"][seed] = (prepared, judge)
    return prepared, judge


def _run_task(task: RowTask) -> dict:
    from study.engine.seed_runs import evaluation_row

    prepared, judge = _seed_state(task.key["seed"], task.probes.heldout)
    return evaluation_row(prepared, task.method, task.params, task.key, task.probes, judge=judge)


def rows_in_workers(tasks: list[RowTask], workers: int, experiment: dict, cache_dir: str,
                    quiet: bool = False) -> Iterator[dict]:
    """Run `tasks` in `workers` spawned processes; yield each finished row as it returns (in any
    order). An error in a row, or Ctrl+C in the driver, ends every worker."""
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(workers, initializer=_start_worker,
                        initargs=(experiment, cache_dir, threads_per_worker(workers), quiet))
    try:
        yield from pool.imap_unordered(_run_task, tasks)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
