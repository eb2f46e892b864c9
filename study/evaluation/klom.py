"""KLoM (KL divergence of margins; Georgiev et al., the EasyDUB benchmark): per example, how far the
distribution of its margin over K unlearned models lies from its distribution over K models
retrained without the forget set.

The margin of an example with logits z and label c is z_c - log sum_{j != c} exp z_j (the audit's
logit-scaled confidence). For each example the 2K margins (K unlearned, K oracle), clipped to
[-100, 100], share `bins` equal-width bins spanning their joint range, and KLoM is
KL(unlearned || oracle) between the two histograms, an oracle bin left empty where the unlearned
one is not counting as 1e-5. As in easydub/EasyDUB-code (`easydub/eval.py`, read 2026-12-06),
a value on the range's right end falls in no bin (numpy's `digitize` with open right edges), so the
largest of the 2K margins is left out of its side's histogram. Benchmarks report the 95th
percentile over the forget, retain and test examples; 0 is the oracle itself.

Bins: EasyDUB uses 20 with hundreds of models per side. With K models per side 20 bins would
leave almost every bin empty and every KLoM near its maximum, so the bins follow the Rice rule on
the 2K pooled margins, ceil(2 (2K)^(1/3)): 4 bins at K = 4, 6 at K = 8, 20 at K = 500. Even so,
small K leaves a floor above 0: read KLoM beside the Retrain-vs-Retrain value at the same K. On
synthetic Gaussian margins (`python bench/klom_floor.py`, 1,000 examples) the floor's 95th
percentile is 10.8 at K = 4, near log(1 / 1e-5) = 11.5 (two histograms with no bin in common), and
a one-sd shift reads the same (10.9); at K = 8 they read 5.9 and 7.6, at K = 16 3.1 and 4.9. So
the metric starts to separate methods from K of about 8 to 16 on.
"""
from __future__ import annotations

import math

import numpy as np

CLIP = 100.0
EMPTY_BIN = 1e-5


def rice_bins(k: int) -> int:
    """Bins for K models per side: the Rice rule on the 2K pooled margins, ceil(2 (2K)^(1/3))."""
    return max(2, math.ceil(2 * (2 * k) ** (1 / 3)))


def binned_kl(p_samples: np.ndarray, q_samples: np.ndarray, bins: int) -> float:
    """KL(p || q) between two 1-D sample sets on `bins` shared equal-width bins over their joint range
    (clipped to +-100), an empty q bin counting as 1e-5 where p's is not; a sample on the right end
    of the range lies outside every bin, as in EasyDUB."""
    p = np.clip(np.asarray(p_samples, dtype=np.float64), -CLIP, CLIP)
    q = np.clip(np.asarray(q_samples, dtype=np.float64), -CLIP, CLIP)
    start, end = min(p.min(), q.min()), max(p.max(), q.max())
    if start >= end:
        end = start + 1.0
    edges = np.linspace(start, end, bins + 1)
    p_counts = np.bincount(np.digitize(p, edges), minlength=bins + 2)[1:bins + 1]
    q_counts = np.bincount(np.digitize(q, edges), minlength=bins + 2)[1:bins + 1]
    p_probs = p_counts / p_counts.sum() if p_counts.sum() > 0 else np.zeros(bins)
    q_probs = q_counts / q_counts.sum() if q_counts.sum() > 0 else np.zeros(bins)
    seen = p_probs > 0
    q_safe = np.maximum(q_probs[seen], EMPTY_BIN)
    return float(np.sum(p_probs[seen] * np.log(p_probs[seen] / q_safe)))


def klom(unlearned: np.ndarray, oracle: np.ndarray, bins: int | None = None) -> np.ndarray:
    """Per-example KLoM from margins of shape (K, n) under K unlearned and K oracle models."""
    if unlearned.shape != oracle.shape:
        raise ValueError(f"margins of unlearned {unlearned.shape} and oracle {oracle.shape} models differ in shape")
    bins = bins or rice_bins(unlearned.shape[0])
    return np.array([binned_kl(unlearned[:, j], oracle[:, j], bins) for j in range(unlearned.shape[1])])


def klom_p95(unlearned: np.ndarray, oracle: np.ndarray, bins: int | None = None) -> float:
    """The 95th percentile of per-example KLoM, the benchmarks' summary (nan with no examples)."""
    if unlearned.shape[1] == 0:
        return float("nan")
    return float(np.percentile(klom(unlearned, oracle, bins), 95))
