"""Per-seed runs in several worker processes at once: `study.compare --eval-workers N` and
`bench/dau_ablations.py --workers N`.

A comparison's evaluation phase is dozens of independent rows (a method, its parameters, a seed).
Run one after another in the driver, each row gets every core, but the proxy's small CNN cannot
use two cores well: two one-thread runs side by side finish no later than the same runs in turn,
and sooner where a run is bound by Python or by scikit-learn. This pool runs them that way, each
worker with `cores // workers` torch threads, which is also how the studies' trials ran (one core
per trial), so time/Retrain compares like with like when Retrain is trained in a worker too
(every row records its thread count and Retrain's, and the table notes a seed where they differ).

Workers are spawned (no forked torch or Ray state) and keep each seed's prepared data and models
(`worker_prepared`) once built. A task is a picklable object with a `seed`; the function run on
it is a module-level function (so a spawned worker can import it). Results go back to the
driver, which alone writes files: a result is recorded the moment it returns. Workers ignore
SIGINT, so Ctrl+C reaches the driver alone: the first stops handing out tasks and waits for the
runs in flight (a DAU row on the proxy is about 25 minutes of work one would rather keep), a
second ends the workers at once and loses those runs. Either way the run ends as interrupted.
Two workers that need the same seed's models wait on the artifact cache's per-key lock instead
of training them twice.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

import torch

from study.core.progress import Log, set_quiet
from study.core.stopping import stop_after_run_in_flight
from study.engine.seed_runs import RowProbes
from study.experiment.prepare import Prepared

T = TypeVar("T")
R = TypeVar("R")
_state: dict = {}  # per worker: the cache folder, its PreparedSeeds and each seed's held-out judge


@dataclass(frozen=True)
class RowTask:
    """One evaluation row of a comparison: its run-log key (method, seed, params...) and its probes."""

    method: str
    params: dict
    key: dict
    probes: RowProbes

    @property
    def seed(self) -> int:
        return int(self.key["seed"])


def threads_per_worker(workers: int) -> int:
    return max(1, len(os.sched_getaffinity(0)) // workers)


class PreparedSeeds:
    """`experiment` (a dict, as `ExperimentConfig.as_dict` gives) prepared per seed, each seed once:
    data, split, original and Retrain (`prepare`, on `device`). Called with a seed, as a `prepared_for`."""

    def __init__(self, experiment: dict, cache_dir: str, log: Log = print, label_seeds: bool = False,
                 device: str = "cpu"):
        self.experiment, self.cache_dir, self.log, self.label_seeds = experiment, cache_dir, log, label_seeds
        self.device = device
        self.prepared: dict[int, Prepared] = {}

    def __call__(self, seed: int) -> Prepared:
        from study.core.cache import ArtifactCache
        from study.experiment.config import resolve_experiment
        from study.experiment.prepare import prepare

        if seed not in self.prepared:
            log = (lambda message: self.log(f"  [seed {seed}] {message}")) if self.label_seeds else self.log
            config = resolve_experiment(None, self.experiment, {"seed": seed})
            self.prepared[seed] = prepare(config, ArtifactCache(self.cache_dir), device=self.device, log=log)
        return self.prepared[seed]


def _start_worker(experiment: dict, cache_dir: str, threads: int, quiet: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides what Ctrl+C stops
    torch.set_num_threads(threads)
    set_quiet(quiet)
    log = lambda message: print(message, flush=True)  # noqa: E731
    _state.update(cache_dir=cache_dir, prepared=PreparedSeeds(experiment, cache_dir, log, label_seeds=True), judges={})


def worker_prepared(seed: int) -> Prepared:
    """In a worker: the pool's experiment at `seed`, prepared once (data, split, original, Retrain)."""
    return _state["prepared"](seed)


def _worker_judge(seed: int):
    from study.core.cache import ArtifactCache
    from study.evaluation.heldout import RetrainFreeJudge

    if seed not in _state["judges"]:
        _state["judges"][seed] = RetrainFreeJudge(worker_prepared(seed), ArtifactCache(_state["cache_dir"]))
    return _state["judges"][seed]


def evaluation_task(task: RowTask) -> dict:
    """In a worker: one comparison row (`seed_runs.evaluation_row`), with the seed's held-out judge."""
    from study.engine.seed_runs import evaluation_row

    judge = _worker_judge(task.seed) if task.probes.heldout else None
    return evaluation_row(worker_prepared(task.seed), task.method, task.params, task.key, task.probes, judge=judge)


def run_in_workers(function: Callable[[T], R], tasks: list[T], workers: int, experiment: dict, cache_dir: str,
                   quiet: bool = False, log: Log = print) -> Iterator[R]:
    """`function(task)` for every task in `workers` spawned processes that share `experiment` (a
    task's seed replaces its seed) and the artifact cache; yields each result as it returns (in any
    order). Tasks are handed out one per idle worker, so that Ctrl+C (in the main thread) can stop
    before the next: the results in flight are still yielded, then KeyboardInterrupt is raised. An
    error in a task, a second Ctrl+C or the caller leaving the loop ends every worker at once."""
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(workers, initializer=_start_worker,
                        initargs=(experiment, cache_dir, threads_per_worker(workers), quiet))
    waiting, in_flight, announced = deque(tasks), [], False
    with stop_after_run_in_flight() as stop:
        try:
            while waiting or in_flight:
                while waiting and not stop.requested and len(in_flight) < workers:
                    in_flight.append(pool.apply_async(function, (waiting.popleft(),)))
                if stop.requested and not announced:
                    log(f"stopping: {len(in_flight)} run(s) in flight will finish and be kept, {len(waiting)} not "
                        "started (Ctrl+C again abandons the runs in flight)")
                    waiting.clear()
                    announced = True
                if not in_flight:  # stopped with every run handed out already returned
                    break
                ready = [result for result in in_flight if result.ready()]
                if not ready:
                    in_flight[0].wait(0.2)
                    continue
                for result in ready:
                    in_flight.remove(result)
                    yield result.get()
            pool.close()
            stop.raise_if_requested()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()


def rows_in_workers(tasks: list[RowTask], workers: int, experiment: dict, cache_dir: str,
                    quiet: bool = False, log: Log = print) -> Iterator[dict]:
    """Comparison rows in workers (`evaluation_task` per task), each yielded as it returns."""
    return run_in_workers(evaluation_task, tasks, workers, experiment, cache_dir, quiet, log)
