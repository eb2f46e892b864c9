"""`study.compare --eval-workers`: rows run in spawned workers are the rows the driver would run."""
from __future__ import annotations

import os
import signal
import threading
import time

import pandas as pd
import pytest
import torch

from study.core.errors import UserError
from study.core.stopping import STOPPING, stop_after_run_in_flight
from study.engine.row_pool import RowTask, rows_in_workers, run_in_workers, threads_per_worker
from study.engine.seed_runs import RowProbes, evaluation_row, rows_per_seed
from study.records.run_log import RunLog, run_key

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


def test_ctrl_c_keeps_the_runs_in_flight_and_a_second_abandons_them(cache_dir):
    assert threading.current_thread() is threading.main_thread()  # where the pool's SIGINT handler goes
    handler = signal.getsignal(signal.SIGINT)
    messages: list[str] = []
    kept = []
    with pytest.raises(KeyboardInterrupt):
        for result in run_in_workers(abs, [-1, -2, -3, -4], 2, {}, str(cache_dir), quiet=True, log=messages.append):
            kept.append(result)
            if len(kept) == 1:
                os.kill(os.getpid(), signal.SIGINT)
    assert sorted(kept) == [1, 2]  # the two handed out before Ctrl+C; -3 and -4 never started
    assert "2 not started" in messages[0]

    def second_ctrl_c(message: str) -> None:  # called while the 30-second run is in flight
        os.kill(os.getpid(), signal.SIGINT)

    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        for _ in run_in_workers(time.sleep, [0, 30, 0], 2, {}, str(cache_dir), quiet=True, log=second_ctrl_c):
            os.kill(os.getpid(), signal.SIGINT)
    assert time.monotonic() - began < 20
    assert signal.getsignal(signal.SIGINT) is handler  # the pool's own handler is gone


def test_one_ctrl_c_in_process_asks_for_a_stop_and_a_second_stops_now():
    handler = signal.getsignal(signal.SIGINT)
    notes: list[str] = []
    with stop_after_run_in_flight(notes.append) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and notes == [STOPPING]  # no KeyboardInterrupt: the run goes on
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            stop.raise_if_requested()
    assert signal.getsignal(signal.SIGINT) is handler and notes == [STOPPING]


def test_the_in_process_loop_keeps_the_row_in_flight_when_ctrl_c_comes(digits_random, tmp_path):
    def prepared_for(seed):  # Ctrl+C arrives while seed 0's row is being prepared
        os.kill(os.getpid(), signal.SIGINT)
        return digits_random

    run_log = RunLog(tmp_path / "runs.csv")
    with stop_after_run_in_flight() as stop:
        with pytest.raises(KeyboardInterrupt):
            rows_per_seed("original", {}, [0, 1], "digits", "random:10", 0.0, prepared_for, run_log,
                          log=lambda message: None, stop=stop)
    kept = pd.read_csv(tmp_path / "runs.csv")
    assert list(kept["seed"]) == [0] and list(kept["method"]) == ["original"]


def test_a_chosen_configuration_equal_to_the_defaults_is_one_row_per_seed(tmp_path):
    """SFR-on's memorised-10% evaluation listed its chosen configuration and its (equal) defaults;
    the workers ran both, the same rows twice. Each run key is one task, with the chosen row's probes."""
    from study.engine.comparison import pending_row_tasks

    params = {"lr": 0.01, "iters": 1500}
    chosen, defaults = RowProbes(mia_subsets=5), RowProbes(mia_subsets=0)
    runs = [("retrain", {}, chosen), ("sfr-on", params, chosen), ("sfr-on", dict(reversed(params.items())), defaults),
            ("ft", {"lr": 0.1}, chosen), ("ft", {}, defaults)]
    run_log = RunLog(tmp_path / "runs.csv")

    def key_of(method, p, seed):
        return run_key("digits", "random:10", method, 0.0, seed, p)

    tasks, total = pending_row_tasks(runs, [1, 2], key_of, run_log)
    assert total == 8 and len(tasks) == 8
    sfr = [task for task in tasks if task.method == "sfr-on"]
    assert len(sfr) == 2 and all(task.probes.mia_subsets == 5 for task in sfr)
    assert len({tuple(sorted(task.key.items())) for task in tasks}) == 8


def test_ctrl_c_during_a_comparison_leaves_no_worker_and_no_table(cache_dir, tmp_path):
    """Ctrl+C while `study.compare --eval-workers 2` has rows in flight: the command ends with an
    error status, keeps the rows that finished, writes no table.md (an interrupted comparison must
    not look complete), and none of the processes it started (the spawned workers) outlives it."""
    import subprocess
    import sys

    from tests.conftest import FAST_EPOCHS
    from tests.processes import TAG_VARIABLE, new_tag, survivors

    tag, out = new_tag(), tmp_path / "out"
    command = [sys.executable, "-m", "study.compare", "--methods", "ft", "ga", "--budget", "0", "--eval-seeds",
               "1", "2", "--epochs", str(FAST_EPOCHS), "--eval-workers", "2", "--relearn", "0", "--no-heldout",
               "--cache-dir", str(cache_dir), "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, TAG_VARIABLE: tag})
    seen = []
    for line in process.stdout:  # the rows are handed to the workers right after this line
        seen.append(line)
        if line.startswith("evaluation:"):
            break
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=300)
    assert process.returncode != 0, "".join(seen) + rest
    assert not (out / "table.md").exists()
    assert survivors(tag, grace_s=20.0, ignore="resource_tracker") == {}
