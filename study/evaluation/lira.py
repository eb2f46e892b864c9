"""The audit's statistics (`python -m study.audit`): U-LiRA's likelihood ratio between unlearned and
retrained models' per-example logit-scaled confidences, and the NeurIPS-2023 challenge's
per-example ε and forgetting quality. Pure functions of numpy arrays; the models come from
`study.engine.audit`, the reading of the numbers from the command's docstring."""
from __future__ import annotations

import math

import numpy as np
import torch

DELTA = 1e-5  # the challenge's δ
EPSILON_CAP = 50.0
EPSILON_STEP = 0.5
PER_EXAMPLE_VARIANCE_MIN = 8  # fewer models per side: pool the variance over examples


def logit_scaled_confidence(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """φ = log p_y − log Σ_{i≠y} p_i = z_y − logsumexp(z_{i≠y}), computed stably."""
    logits = logits.double()
    true = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, labels.view(-1, 1), float("-inf"))
    return (true - torch.logsumexp(others, dim=1)).numpy()


def _gaussian_logpdf(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi)


def lira_scores(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-pair-out likelihood-ratio scores.

    positive (P, n), negative (N, n): φ of n examples under P unlearned and N retrained models.
    Returns (scores of the positive models (P, n), scores of the negative models (N, n)); a score
    is log N(φ; μ_pos, σ_pos) − log N(φ; μ_neg, σ_neg), higher = looks unlearned-not-retrained.
    Positive model i and negative model i are scored with the same two fits, each leaving out
    model i of its side: the judged models are never in a fit, and both fits always use the same
    number of models, so two sides drawn from one distribution score exactly at chance (leaving
    out only the judged model's side would bias the variance terms toward the attacker)."""
    def fit(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = samples.mean(axis=0)
        if len(samples) >= PER_EXAMPLE_VARIANCE_MIN:
            std = samples.std(axis=0, ddof=1)
        else:
            std = np.full(samples.shape[1], np.sqrt(np.mean(samples.var(axis=0, ddof=1))))
        return mean, np.maximum(std, 1e-6)

    if min(len(positive), len(negative)) < 3:
        raise ValueError("the leave-one-out fit needs at least 3 models per side")
    pos_scores, neg_scores = np.zeros_like(positive), np.zeros_like(negative)
    for i in range(max(len(positive), len(negative))):
        p, q = i % len(positive), i % len(negative)
        pos_fit, neg_fit = fit(np.delete(positive, p, axis=0)), fit(np.delete(negative, q, axis=0))
        if i < len(positive):
            pos_scores[i] = _gaussian_logpdf(positive[i], *pos_fit) - _gaussian_logpdf(positive[i], *neg_fit)
        if i < len(negative):
            neg_scores[i] = _gaussian_logpdf(negative[i], *pos_fit) - _gaussian_logpdf(negative[i], *neg_fit)
    return pos_scores, neg_scores


def smoothed_rate(errors: np.ndarray, total: int) -> np.ndarray:
    """(errors + ½) / (total + 1): an error rate that is never exactly 0 or 1 with few models."""
    return (errors + 0.5) / (total + 1.0)


def _rule_epsilon(fpr: np.ndarray, fnr: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.log(np.maximum(1 - DELTA - fpr, 0)) - np.log(fnr)
        second = np.log(np.maximum(1 - DELTA - fnr, 0)) - np.log(fpr)
    values = np.concatenate([first, second])
    values = values[~np.isnan(values)]
    return float(values.max()) if len(values) else 0.0


def example_epsilon(unlearned: np.ndarray, retrained: np.ndarray) -> float:
    """ε for one example from its φ under unlearned (positives) and retrained (negatives) models,
    over every single-threshold rule (both directions) and every interval rule (and its complement)."""
    thresholds = np.unique(np.concatenate([unlearned, retrained]))
    cuts = np.concatenate([[-np.inf], (thresholds[:-1] + thresholds[1:]) / 2, [np.inf]])
    # positive iff lo < φ <= hi, for every pair of cuts lo < hi; complements give the other direction
    lo, hi = np.triu_indices(len(cuts), k=1)
    inside_pos = ((unlearned[None, :] > cuts[lo][:, None]) & (unlearned[None, :] <= cuts[hi][:, None])).sum(axis=1)
    inside_neg = ((retrained[None, :] > cuts[lo][:, None]) & (retrained[None, :] <= cuts[hi][:, None])).sum(axis=1)
    n_pos, n_neg = len(unlearned), len(retrained)
    rules = [(inside_neg, n_pos - inside_pos), (n_neg - inside_neg, inside_pos)]  # each rule and its complement
    epsilon = max(_rule_epsilon(smoothed_rate(false_pos, n_neg), smoothed_rate(false_neg, n_pos))
                  for false_pos, false_neg in rules)
    return float(min(max(epsilon, 0.0), EPSILON_CAP))


def forgetting_quality(epsilons: np.ndarray) -> float:
    """F: mean over examples of 2^−bucket, bucket = floor(ε / 0.5)."""
    buckets = np.floor(np.asarray(epsilons) / EPSILON_STEP)
    return float(np.mean(2.0 ** -buckets))
