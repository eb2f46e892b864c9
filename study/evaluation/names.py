"""The names every evaluation, record, table and command shares, each defined once, in its order.

A metric's key (as results and records store it), its column label, the objectives a study can
minimise, and the one time/Retrain: everything that prints or reads these imports them here, so
adding a metric or a column is one edit.
"""
from __future__ import annotations

import math
from typing import Mapping

METRIC_NAMES = ("UA", "MIA-Efficacy", "RA", "TA")  # the four Avg. Disparity averages, the paper's order
HEADLINE = (*METRIC_NAMES, "avg_disparity")  # what every table shows first
TABLE_COLUMNS = (*HEADLINE, "run_seconds")  # Table 1's columns (mean ± std over seeds)
# --objective -> the result key a study minimises
OBJECTIVES = {"avg_disparity": "avg_disparity", "retrain_free": "retrain_free_score"}
OBJECTIVE_COLUMNS = tuple(OBJECTIVES.values())
PARETO = "pareto"  # --objective pareto: minimise several gaps at once (`PARETO_OBJECTIVES`, or a subset)
# a Pareto search's objectives -> the result keys it minimises (all lower-is-better)
PARETO_OBJECTIVES = {"forget": "gap/UA", "utility": "gap/utility", "mia": "gap/MIA-Efficacy",
                     "time": "time_ratio_to_retrain"}
OBJECTIVE_CHOICES = (*OBJECTIVES, PARETO)
MIA_SUBSETS = 5  # member subsets a comparison recomputes MIA-Efficacy on, to show how much it depends on one draw
# ToW and ToW-MIA (RUM): products of the accuracy gaps to Retrain, 1 at Retrain, higher is better
TOW = ("tow", "tow_mia")
GAPS = tuple(f"gap/{name}" for name in METRIC_NAMES)

LABELS = {"avg_disparity": "Avg. Disparity", "run_seconds": "run time (s)", "time_ratio": "time / Retrain",
          "time_ratio_with_shared": "time / Retrain with shared pre-training",
          "retrain_free_score": "retrain-free score", "tow": "ToW", "tow_mia": "ToW-MIA",
          # absolute gaps to Retrain (no "|" in a label: it would split a Markdown table's cell)
          "gap/UA": "ΔUA", "gap/MIA-Efficacy": "ΔMIA", "gap/RA": "ΔRA", "gap/TA": "ΔTA",
          "gap/utility": "ΔRA+ΔTA", "time_ratio_to_retrain": "time / Retrain"}


def label(name: str) -> str:
    """How a table heads the column of result key `name`."""
    return LABELS.get(name, name)


def time_ratio(run_seconds: float | None, retrain_seconds: float | None, shared_seconds: float = 0.0) -> float | None:
    """A run's time as a ratio to Retrain's on the same split: the paper's cost measure. `shared_seconds`
    (artifacts built once per original and shared by every run on it, e.g. a pre-trained attacker)
    are added only when the caller asks for the ratio with them. None when either time is unknown."""
    if run_seconds is None or not retrain_seconds or (isinstance(run_seconds, float) and math.isnan(run_seconds)):
        return None
    return (float(run_seconds) + float(shared_seconds or 0.0)) / float(retrain_seconds)


def shared_seconds(values: Mapping, keys: tuple[str, ...]) -> float:
    """The seconds of shared artifacts a run recorded (`keys`: the methods' `shared_artifact_keys`)."""
    total = 0.0
    for key in keys:
        value = values.get(key)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            total += float(value)
    return total
