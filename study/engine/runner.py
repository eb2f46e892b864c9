"""Run one unlearning method on a prepared experiment and collect its metrics and timings.

Shared by `python -m study.run` and the benchmarks; the Ray Tune Trainable drives the same
method objects epoch by epoch instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from study.core.progress import Log
from study.core.pruning import copy_model
from study.experiment.prepare import Prepared
from study.methods import UnlearningMethod


@dataclass
class MethodResult:
    method: str
    params: dict
    model: torch.nn.Module
    metrics: dict[str, float]
    run_seconds: float
    epochs: list[dict] = field(default_factory=list)
    artifact_seconds: dict[str, float] = field(default_factory=dict)  # shared artifacts, not in run_seconds
    # the test-view (logits, labels) its metrics were computed from; None for the reference rows,
    # whose metrics come from the cache
    predictions: tuple | None = None
    artifact_digests: dict[str, str] = field(default_factory=dict)  # shared artifacts it loaded, by name


def run_method(prepared: Prepared, method: UnlearningMethod, log: Log = print,
               eval_every_epoch: bool = False) -> MethodResult:
    """Apply `method` to a copy of the original model; run time covers the unlearning alone (not the
    evaluation between epochs, nor loading or building artifacts shared across runs)."""
    if method.reference == "retrain":  # the cached gold standard, its training time as its run time
        model = copy_model(prepared.retrain)
        return MethodResult(method.name, method.params, model, dict(prepared.retrain_metrics),
                            float(prepared.retrain_seconds))
    if method.reference == "original":  # no unlearning: the cached original and its cached evaluation
        return MethodResult(method.name, method.params, copy_model(prepared.original),
                            dict(prepared.original_metrics), 0.0)
    epochs: list[dict] = []
    last_metrics: dict[str, float] = {}
    kept: dict = {}  # the last evaluation's predictions, reused by the row's margins and probes

    def on_epoch(epoch: int, model: torch.nn.Module, logs: dict) -> None:
        row = {"epoch": epoch + 1, **logs}
        if eval_every_epoch:
            last_metrics.clear()
            last_metrics.update(prepared.evaluate(model, keep=kept))
            row.update(last_metrics)
        epochs.append(row)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch",) and isinstance(v, float))
        log(f"  {method.name}: epoch {epoch + 1}/{method.num_epochs}  {shown}")

    model = method.unlearn(prepared.fresh_original(), prepared.unlearn_data(log), callbacks=[on_epoch])
    seconds = method.setup_seconds + sum(row["seconds"] for row in epochs)
    metrics = dict(last_metrics) if last_metrics else prepared.evaluate(model, keep=kept)  # the last epoch's
    return MethodResult(method.name, method.params, model, metrics, seconds, epochs,
                        method.shared_artifact_seconds(), kept.get("predictions"), method.shared_artifact_digests())
