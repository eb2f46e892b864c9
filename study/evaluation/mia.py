"""Membership-inference attacks for evaluation (never for training): small pure functions.

- Metric-based attacks (paper Sec. 4.4, Song & Mittal 2021, SPEC.md): signals correctness,
  confidence p_y, entropy and modified entropy; thresholds are learned *per class* on members
  (a retain subset) vs non-members (test), maximising balanced accuracy ½(TPR + TNR); each
  attack reports the share of forget samples it calls *non-member* (the "efficacy").
- ROC summaries of any score-based attack: AUC and TPR at a fixed low FPR.

Modified entropy follows the formula, not a popular implementation that indexes the wrong
columns: Mentr(p, y) = −(1 − p_y) log p_y − Σ_{i≠y} p_i log(1 − p_i).
"""
from __future__ import annotations

import numpy as np

LOG_FLOOR = 1e-30  # keeps log(0) finite for saturated softmax outputs
SIGNALS = ("correctness", "confidence", "entropy", "modified_entropy")


def entropy(probs: np.ndarray) -> np.ndarray:
    return -np.sum(probs * np.log(np.maximum(probs, LOG_FLOOR)), axis=1)


def modified_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    rows = np.arange(len(labels))
    p_true = probs[rows, labels]
    others = probs.copy()
    others[rows, labels] = 0.0
    true_term = -(1.0 - p_true) * np.log(np.maximum(p_true, LOG_FLOOR))
    other_term = -np.sum(others * np.log(np.maximum(1.0 - others, LOG_FLOOR)), axis=1)
    return true_term + other_term


def member_signal(signal: str, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A score that is *higher for members*: confidence, −entropy, −modified entropy, correctness."""
    if signal == "correctness":
        return (probs.argmax(axis=1) == labels).astype(float)
    if signal == "confidence":
        return probs[np.arange(len(labels)), labels]
    if signal == "entropy":
        return -entropy(probs)
    if signal == "modified_entropy":
        return -modified_entropy(probs, labels)
    raise ValueError(f"unknown signal {signal!r}")


def best_threshold(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> tuple[float, float]:
    """(threshold, balanced accuracy) over every observed value: member iff score >= threshold."""
    if len(member_scores) == 0 or len(nonmember_scores) == 0:
        return float("inf"), 0.5
    candidates = np.unique(np.concatenate([member_scores, nonmember_scores]))
    members, nonmembers = np.sort(member_scores), np.sort(nonmember_scores)
    tpr = 1.0 - np.searchsorted(members, candidates, side="left") / len(members)
    tnr = np.searchsorted(nonmembers, candidates, side="left") / len(nonmembers)
    balanced = 0.5 * (tpr + tnr)
    best = int(np.argmax(balanced))
    return float(candidates[best]), float(balanced[best])


def class_thresholds(member_scores, member_labels, nonmember_scores, nonmember_labels,
                     num_classes: int) -> np.ndarray:
    """One threshold per class (inf for a class without members or non-members: never 'member')."""
    return np.array([best_threshold(member_scores[member_labels == c], nonmember_scores[nonmember_labels == c])[0]
                     for c in range(num_classes)])


def metric_attack(signal: str, members: tuple[np.ndarray, np.ndarray], nonmembers: tuple[np.ndarray, np.ndarray],
                  target: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Fit one metric attack on (probs, labels) of members vs non-members and apply it to `target`.

    Returns `efficacy` (% of target samples predicted non-member) and `train_balanced_acc`
    (% balanced accuracy of the fitted attack on its own members/non-members)."""
    (m_probs, m_labels), (n_probs, n_labels), (t_probs, t_labels) = members, nonmembers, target
    num_classes = max(m_probs.shape[1], n_probs.shape[1])
    m_scores = member_signal(signal, m_probs, m_labels)
    n_scores = member_signal(signal, n_probs, n_labels)
    t_scores = member_signal(signal, t_probs, t_labels)
    if signal == "correctness":  # member iff predicted correctly: no threshold to learn
        thresholds = np.full(num_classes, 1.0)
    else:
        thresholds = class_thresholds(m_scores, m_labels, n_scores, n_labels, num_classes)
    tpr = float(np.mean(m_scores >= thresholds[m_labels]))
    tnr = float(np.mean(n_scores < thresholds[n_labels]))
    predicted_member = t_scores >= thresholds[t_labels]
    return {"efficacy": 100.0 * float(np.mean(~predicted_member)), "train_balanced_acc": 50.0 * (tpr + tnr)}


def metric_attacks(members, nonmembers, target) -> dict[str, dict[str, float]]:
    """Every metric signal: {signal: {efficacy, train_balanced_acc}}."""
    return {signal: metric_attack(signal, members, nonmembers, target) for signal in SIGNALS}


def roc_summary(member_scores: np.ndarray, nonmember_scores: np.ndarray,
                fprs: tuple[float, ...] = (0.01, 0.001)) -> dict[str, float]:
    """AUC and TPR at each FPR in `fprs` for scores that are higher for members."""
    scores = np.concatenate([member_scores, nonmember_scores])
    truth = np.concatenate([np.ones(len(member_scores)), np.zeros(len(nonmember_scores))])
    from sklearn.metrics import roc_auc_score, roc_curve  # lazy: keeps CLI start-up fast

    summary = {"auc": float(roc_auc_score(truth, scores))}
    fpr, tpr, _ = roc_curve(truth, scores)
    for limit in fprs:
        summary[f"tpr@{limit:g}"] = float(tpr[fpr <= limit].max()) if np.any(fpr <= limit) else 0.0
    return summary
