"""ASHA that lets a study's defaults trial run to its end.

Every study's first trial is the method's documented defaults (Optuna's `points_to_evaluate`).
Plain ASHA may stop it at an early rung when trials that started beside it look better there, so
the study would never measure the defaults at their full length, and its best trial could be worse
than the full-length defaults it never saw. This scheduler takes ASHA's decisions for every other
trial and turns a STOP of the defaults trial into CONTINUE. Imported only where a Tuner is built,
so the commands start without Ray.
"""
from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler


def matches_point(config: dict, point: dict[str, Any]) -> bool:
    """Does a trial's config hold a flattened point (`params/lr`, `experiment/sparsity`)?"""
    for key, value in point.items():
        section, name = key.split("/", 1)
        if (config.get(section) or {}).get(name) != value:
            return False
    return bool(point)


class DefaultsFirstASHA(ASHAScheduler):
    """ASHAScheduler, except that the trial at `defaults` (a flattened point) is never stopped early."""

    def __init__(self, defaults: dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.defaults = dict(defaults)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:  # noqa: ANN001 - Ray's types
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and matches_point(trial.config, self.defaults):
            return TrialScheduler.CONTINUE
        return action
