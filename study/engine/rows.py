"""What every record of a measured run says about its cost and what it was measured on.

A comparison row (`seed_runs.evaluation_row`, kept in runs.csv) and a trial's result
(`trainable.UnlearningTrainable`, kept by Ray Tune) both carry these fields under these names,
built here once: the run's seconds, the shared artifacts' seconds and digests by name (DAU's
pre-trained attacker), Retrain's seconds and threads beside this process's threads (a time ratio
compares like with like only when they agree), the precision, the reference models' and forget
set's digests, and the time ratios to Retrain without and with the shared seconds.
"""
from __future__ import annotations

import torch

from study.evaluation.names import time_ratio
from study.experiment.prepare import Prepared


def cost_fields(prepared: Prepared, run_seconds: float, artifact_seconds: dict[str, float],
                artifact_digests: dict[str, str]) -> dict:
    """The cost and provenance fields of one run on `prepared` (see the module's docstring); those
    without a value (Retrain's, for a study that never trains Retrain) are left out."""
    fields = {"run_seconds": run_seconds, **artifact_seconds, **artifact_digests,
              "retrain_seconds": prepared.retrain_seconds, "threads": torch.get_num_threads(),
              "retrain_threads": prepared.retrain_threads, "precision": prepared.config.precision,
              **prepared.reference_digests()}
    if prepared.retrain_seconds:
        fields["time_ratio_to_retrain"] = time_ratio(run_seconds, prepared.retrain_seconds)
        if artifact_seconds:
            fields["time_ratio_to_retrain_with_artifacts"] = time_ratio(run_seconds, prepared.retrain_seconds,
                                                                        sum(artifact_seconds.values()))
    return {name: value for name, value in fields.items() if value is not None}
