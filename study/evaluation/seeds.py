"""One trial's results over several seeds (`study.tune --average-seeds`): the mean of every metric,
each seed's own headline values, and the objectives' spread across seeds."""
from __future__ import annotations

import statistics

from study.evaluation.names import METRIC_NAMES, OBJECTIVE_COLUMNS

PER_SEED_METRICS = (*OBJECTIVE_COLUMNS, *METRIC_NAMES)  # reported as seed<k>/<name>; objectives as seed_std/<name>


def mean_over_seeds(per_seed: list[dict], seeds: list[int]) -> dict:
    """Mean of every numeric entry over the seeds' results; with several seeds also each seed's
    own value of the headline metrics and the spread of the objectives across seeds."""
    if len(per_seed) == 1:
        return dict(per_seed[0])
    keys = [k for k in per_seed[0] if all(isinstance(r.get(k), (int, float)) for r in per_seed)]
    merged = {k: statistics.fmean(float(r[k]) for r in per_seed) for k in keys}
    for seed, result in zip(seeds, per_seed):
        for name in PER_SEED_METRICS:
            if name in result:
                merged[f"seed{seed}/{name}"] = float(result[name])
    for name in OBJECTIVE_COLUMNS:
        if name in merged:
            merged[f"seed_std/{name}"] = statistics.stdev(float(r[name]) for r in per_seed)
    return merged
