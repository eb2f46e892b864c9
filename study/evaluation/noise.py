"""Is a gap to Retrain more than sampling noise? Each metric is a percentage of a finite set.

UA and MIA-Efficacy count forget samples, RA retain samples, TA test samples: a gap of one sample
is 100/n points. On scikit-learn's digits the forget set holds 108 images, so the untouched
original can sit within a point or two of Retrain on every metric, and a method's Avg. Disparity
then ranks noise. A run says so when every gap of the original is within `Z` binomial standard
errors of Retrain's value.
"""
from __future__ import annotations

import math

from study.evaluation.names import METRIC_NAMES

Z = 2.0  # about a 95% band for each metric's sampling error
SET_OF = {"UA": "forget", "MIA-Efficacy": "forget", "RA": "retain", "TA": "test"}


def sampling_error(percent: float, n: int) -> float:
    """Binomial standard error, in points, of a percentage measured on n samples (at least one
    sample's worth, so that 0% and 100% are not called exact)."""
    p = min(max(percent / 100.0, 0.0), 1.0)
    return max(100.0 * math.sqrt(p * (1 - p) / n), 100.0 / n) if n else math.inf


def within_sampling_noise(original: dict[str, float], retrain: dict[str, float], sizes: dict[str, int]) -> bool:
    """Whether every metric of the original is within `Z` standard errors of Retrain's (set sizes by
    name: forget, retain, test)."""
    return all(abs(original[name] - retrain[name]) <= Z * sampling_error(retrain[name], sizes[SET_OF[name]])
               for name in METRIC_NAMES)
