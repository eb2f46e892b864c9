"""Run one configuration once per seed and keep every finished run in a run log, so a long table
resumes where it stopped: the evaluation loop of `study.compare` and `bench/paper_protocol.py`.

A row already in the run log (same preset label, forget spec, method, sparsity, seed and
hyperparameters) is read back; only a missing one asks `prepared_for(seed)` for the seed's data
and models, so a finished table re-renders without training any model. Original and Retrain are
rows like any other (their cached models, Retrain's training time as its run time).
"""
from __future__ import annotations

from typing import Callable

import torch

from study.core.progress import Log
from study.engine.runner import run_method
from study.evaluation.evaluate import mia_efficacy_spread
from study.experiment.prepare import Prepared
from study.methods import build_method
from study.records.run_log import RunLog, run_key


def evaluation_row(prepared: Prepared, method: str, params: dict, key: dict, mia_subsets: int = 0,
                   log: Log = lambda message: None) -> dict:
    """One run of `method` at `params` on `prepared`: its metrics, run time and shared artifacts'
    seconds, Retrain's time and both thread counts (time/Retrain compares like with like only
    when they agree), and MIA-Efficacy's spread over `mia_subsets` member subsets when asked."""
    result = run_method(prepared, build_method(method, params), log=log)
    row = {**key, **result.metrics, "run_seconds": result.run_seconds, **result.artifact_seconds,
           "retrain_seconds": prepared.retrain_seconds, "threads": torch.get_num_threads(),
           "retrain_threads": prepared.retrain_threads}
    if mia_subsets:
        row["mia_subsets_mean"], row["mia_subsets_std"] = mia_efficacy_spread(
            result.model, prepared.data, prepared.splits, key["seed"], mia_subsets, prepared.device)
    return row


def rows_per_seed(method: str, params: dict, seeds: list[int], preset: str, forget: str, sparsity: float,
                  prepared_for: Callable[[int], Prepared], run_log: RunLog, log: Log = print,
                  mia_subsets: int = 0) -> list[dict]:
    """One row per seed for `method` at `params`, from the run log or run now (and added to it)."""
    rows = []
    for seed in seeds:
        key = run_key(preset, forget, method, sparsity, seed, params)
        row = run_log.get(key)
        if row is not None:
            log(f"  {method} on seed {seed}: kept from {run_log.path}")
        else:
            row = evaluation_row(prepared_for(seed), method, params, key, mia_subsets)
            run_log.add(row)
            log(f"  {method} on seed {seed}: Avg. Disparity {row['avg_disparity']:.2f}, {row['run_seconds']:.1f} s")
        rows.append(row)
    return rows
