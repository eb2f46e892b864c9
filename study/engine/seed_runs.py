"""Run one configuration once per seed and keep every finished run in a run log, so a long table
resumes where it stopped: the evaluation loop of `study.compare` and `bench/paper_protocol.py`.

A row already in the run log (same preset label, forget spec, method, sparsity, seed and
hyperparameters) is read back; only a missing one asks `prepared_for(seed)` for the seed's data
and models, so a finished table re-renders without training any model. Original and Retrain are
rows like any other (their cached models, Retrain's training time as its run time).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from study.core.progress import Log
from study.core.stopping import StopRequest
from study.engine.rows import cost_fields
from study.engine.runner import run_method
from study.evaluation.evaluate import mia_efficacy_spread, split_logits
from study.evaluation.margins import example_margins
from study.evaluation.metrics import METRICS_VERSION
from study.evaluation.relearn import relearn_ua
from study.experiment.prepare import Prepared
from study.methods import build_method, method_class
from study.records.run_log import RunLog, run_key


@dataclass(frozen=True)
class RowProbes:
    """What an evaluation row measures beyond the metrics: MIA-Efficacy over `mia_subsets` member
    subsets, the relearning test after `relearn_steps` steps, the held-out attacks (`heldout`)."""

    mia_subsets: int = 0
    relearn_steps: int = 0
    heldout: bool = False


def evaluation_row(prepared: Prepared, method: str, params: dict, key: dict, probes: RowProbes = RowProbes(),
                   log: Log = lambda message: None, judge: Callable | None = None) -> dict:
    """One run of `method` at `params` on `prepared`: its metrics (test view), run time and shared
    artifacts' seconds, Retrain's time and both thread counts (time/Retrain compares like with like
    only when they agree), and the probes asked for: MIA-Efficacy's spread over member subsets, the
    relearning test (`relearn_UA`), and the held-out attacks of `judge` (a `RetrainFreeJudge`:
    attackers that never took part in any method's training; `heldout_tpr@1%` is the stronger one's
    TPR at 1% FPR). `margins` holds the per-example margins on forget, retain and test, which the
    run log writes to a file beside itself (`RunLog.add`)."""
    result = run_method(prepared, build_method(method, params), log=log)
    row = {**key, "method_fingerprint": method_class(method).fingerprint(), **result.metrics,
           **cost_fields(prepared, result.run_seconds, result.artifact_seconds, result.artifact_digests),
           "metrics_version": METRICS_VERSION}
    # one prediction pass per row: the evaluation's, or (reference rows, evaluated when cached) one here
    predictions = result.predictions or split_logits(result.model, prepared.data, prepared.splits, prepared.device)
    if probes.mia_subsets:
        row["mia_subsets_mean"], row["mia_subsets_std"] = mia_efficacy_spread(predictions, key["seed"],
                                                                              probes.mia_subsets)
    if probes.relearn_steps:
        row["relearn_UA"] = relearn_ua(result.model, prepared.data, prepared.splits, probes.relearn_steps,
                                       key["seed"], prepared.device)
        row["relearn_steps"] = probes.relearn_steps
    row["margins"] = example_margins(result.model, prepared.data, prepared.splits, prepared.device, predictions)
    if judge is not None:
        attacks = judge(result.model)
        row.update({k: v for k, v in attacks.items() if k.startswith("heldout/")})
        tprs = [v for k, v in attacks.items() if k.startswith("heldout/") and k.endswith("tpr@0.01")]
        row["heldout_tpr@1%"] = 100.0 * max(tprs)
    return row


def rows_per_seed(method: str, params: dict, seeds: list[int], preset: str, forget: str, sparsity: float,
                  prepared_for: Callable[[int], Prepared], run_log: RunLog, log: Log = print,
                  probes: RowProbes = RowProbes(), judge_for: Callable[[int], Callable] | None = None,
                  stop: StopRequest | None = None, rerun: list[dict] = ()) -> list[dict]:
    """One row per seed for `method` at `params`, from the run log or run now (and added to it).
    A key in `rerun` runs again even when a row is kept (measured against other references).
    With `stop` (`study.core.stopping`), a Ctrl+C during a run ends the loop once that run is kept."""
    rows = []
    for seed in seeds:
        if stop is not None:
            stop.raise_if_requested()
        key = run_key(preset, forget, method, sparsity, seed, params)
        fingerprint = method_class(method).fingerprint()
        row = None if key in rerun else run_log.reusable(key, fingerprint)
        if row is not None:
            log(f"  {method} on seed {seed}: kept from {run_log.path}")
        else:
            if run_log.superseded(key, fingerprint):
                log(f"  {method} on seed {seed}: the kept row was measured by another version of {method}: run again")
            judge = judge_for(seed) if probes.heldout and judge_for is not None else None
            row = evaluation_row(prepared_for(seed), method, params, key, probes, judge=judge)
            run_log.add(row)
            log(f"  {method} on seed {seed}: Avg. Disparity {row['avg_disparity']:.2f}, {row['run_seconds']:.1f} s")
        rows.append(row)
    return rows
