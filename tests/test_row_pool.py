"""`study.compare --eval-workers`: rows run in spawned workers are the rows the driver would run."""
from __future__ import annotations

import pytest
import torch

from study.core.errors import UserError
from study.engine.row_pool import RowTask, rows_in_workers, threads_per_worker
from study.engine.seed_runs import RowProbes, evaluation_row
from study.records.run_log import run_key

COMPARED = ("UA", "RA", "TA", "MIA-Efficacy", "avg_disparity", "relearn_UA")


def test_worker_rows_match_the_drivers_rows(digits_random, cache_dir):
    probes = RowProbes(relearn_steps=3)
    params = {"lr": 0.02, "epochs": 2}
    tasks = [RowTask(method, p, run_key("digits", "random:10", method, 0.0, 0, p), probes)
             for method, p in (("retrain", {}), ("ft", params))]
    rows = {row["method"]: row for row in rows_in_workers(tasks, 2, digits_random.config.as_dict(), str(cache_dir),
                                                           quiet=True)}
    assert set(rows) == {"retrain", "ft"}
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_worker(2))  # the workers' thread count, so the arithmetic is the same
    try:
        expected = {task.method: evaluation_row(digits_random, task.method, task.params, task.key, probes)
                    for task in tasks}
    finally:
        torch.set_num_threads(threads)
    for method, row in rows.items():
        assert row["threads"] == threads_per_worker(2)
        assert row["params"] == expected[method]["params"] and row["seed"] == 0
        for column in COMPARED:
            assert row[column] == pytest.approx(expected[method][column], abs=1e-6), (method, column)
    assert rows["ft"]["avg_disparity"] > 0 and rows["retrain"]["avg_disparity"] == 0


def test_an_error_in_a_worker_reaches_the_driver(digits_random, cache_dir):
    task = RowTask("no-such-method", {}, run_key("digits", "random:10", "no-such-method", 0.0, 0, {}), RowProbes())
    with pytest.raises(UserError, match="no-such-method"):
        list(rows_in_workers([task], 2, digits_random.config.as_dict(), str(cache_dir), quiet=True))
