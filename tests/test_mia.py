"""Metric-based MIAs, ROC summaries and RMIA scores on hand-made inputs with known answers."""
import math

import numpy as np
import pytest
from scipy.stats import norm

from study.evaluation.heldout import rmia_scores
from study.evaluation.mia import best_threshold, class_thresholds, entropy, metric_attack, modified_entropy, roc_summary


def test_entropy_and_modified_entropy_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]])
    labels = np.array([0, 1])
    assert entropy(probs)[0] == pytest.approx(-(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)))
    assert entropy(probs)[1] == pytest.approx(math.log(2))
    # Mentr = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)
    first = -(0.3 * math.log(0.7)) - (0.2 * math.log(0.8) + 0.1 * math.log(0.9))
    second = -(0.5 * math.log(0.5)) - (0.5 * math.log(0.5) + 0.0)
    assert modified_entropy(probs, labels) == pytest.approx([first, second])


def test_best_threshold_maximises_balanced_accuracy():
    threshold, balanced = best_threshold(np.array([0.9, 0.8, 0.7]), np.array([0.6, 0.85, 0.2]))
    assert threshold == pytest.approx(0.7) and balanced == pytest.approx(5 / 6)


def test_thresholds_are_per_class():
    scores = np.array([0.9, 0.95, 0.3, 0.35])  # class 0 members are confident, class 1 members are not
    labels = np.array([0, 0, 1, 1])
    nonmember_scores = np.array([0.5, 0.55, 0.1, 0.15])
    thresholds = class_thresholds(scores, labels, nonmember_scores, labels, 2)
    assert thresholds[0] == pytest.approx(0.9) and thresholds[1] == pytest.approx(0.3)


def _onehotish(confidences, labels, classes=3):
    probs = np.zeros((len(labels), classes))
    for row, (p, y) in enumerate(zip(confidences, labels)):
        probs[row] = (1 - p) / (classes - 1)
        probs[row, y] = p
    return probs


def test_confidence_attack_efficacy_on_forget_samples():
    labels = np.array([0, 0, 0, 0])
    members = (_onehotish([0.99, 0.98, 0.97, 0.99], labels), labels)
    nonmembers = (_onehotish([0.5, 0.6, 0.4, 0.55], labels), labels)
    forgotten = (_onehotish([0.45, 0.5, 0.99], labels[:3]), labels[:3])  # two look unseen, one still remembered
    result = metric_attack("confidence", members, nonmembers, forgotten)
    assert result["efficacy"] == pytest.approx(200 / 3)
    assert result["train_balanced_acc"] == pytest.approx(100.0)


def test_correctness_attack_calls_misclassified_samples_non_members():
    labels = np.array([0, 1])
    members = (_onehotish([0.9, 0.9], labels), labels)
    nonmembers = (_onehotish([0.2, 0.9], labels), labels)
    target = (_onehotish([0.1, 0.8], labels), labels)  # first misclassified, second correct
    assert metric_attack("correctness", members, nonmembers, target)["efficacy"] == pytest.approx(50.0)


def test_roc_summary_known_answers():
    assert roc_summary(np.array([3.0, 4.0]), np.array([1.0, 2.0]))["auc"] == 1.0
    assert roc_summary(np.array([1.0, 3.0]), np.array([2.0, 4.0]))["auc"] == pytest.approx(0.25)
    rng = np.random.default_rng(0)
    shift = 1.0  # N(1, 1) vs N(0, 1): AUC = Phi(1 / sqrt 2)
    summary = roc_summary(rng.normal(shift, 1, 20000), rng.normal(0, 1, 20000))
    assert summary["auc"] == pytest.approx(norm.cdf(shift / math.sqrt(2)), abs=0.01)
    # TPR at 1% FPR: the member tail above the non-members' 99th percentile
    assert summary["tpr@0.01"] == pytest.approx(1 - norm.cdf(norm.ppf(0.99) - shift), abs=0.02)


def test_rmia_score_by_hand():
    # a = 0.3: prior = 0.5 * (1.3 * ref + 0.7); ref 0.5 -> 0.675
    target_x = np.array([0.675, 0.3375])  # ratios 1.0 and 0.5
    reference_x = np.array([[0.5, 0.5]])
    target_z = np.array([0.675 * 0.25, 0.675 * 0.75, 0.675 * 1.5])  # ratios 0.25, 0.75, 1.5
    reference_z = np.array([[0.5, 0.5, 0.5]])
    scores = rmia_scores(target_x, reference_x, target_z, reference_z)
    assert scores == pytest.approx([2 / 3, 1 / 3])
