"""The paper's unlearning metrics, as SPEC.md pins them (all in percent).

UA = 100 - forget accuracy; RA = retain accuracy; TA = test accuracy; MIA-Efficacy = the
fraction of forget samples that an RBF SVM (C=3, gamma="auto"), fitted on confidence
features of retain members vs test non-members, calls non-member; Avg. Disparity = mean
absolute gap to Retrain over those four. ToW and ToW-MIA (RUM, Zhao et al., NeurIPS 2024) are
the products (1 − |ΔUA|)(1 − |ΔRA|)(1 − |ΔTA|) and (1 − |ΔMIA-Efficacy|)(1 − |ΔRA|)(1 − |ΔTA|)
of the gaps to Retrain as fractions: 1 for Retrain, higher is better. RUM's ToW-MIA takes its own
MIA's gap; here it is MIA-Efficacy's, the MIA every table already reports. Each is a small pure
function of logits/labels so that tests can check it by hand.
"""
from __future__ import annotations

import numpy as np
import torch

from study.evaluation.mia import SIGNALS, metric_attacks

METRIC_NAMES = ("UA", "MIA-Efficacy", "RA", "TA")
METRIC_MIA_KEYS = tuple(f"mia/{signal}" for signal in SIGNALS)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent; NaN for an empty set (nothing to measure)."""
    if len(labels) == 0:
        return float("nan")
    return 100.0 * float((logits.argmax(dim=1) == labels).float().mean())


def true_label_confidence(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Softmax probability of the true label, the headline MIA feature."""
    probs = torch.softmax(logits.float(), dim=1)
    return probs.gather(1, labels.view(-1, 1)).squeeze(1).numpy().astype(np.float64)


def member_subset(num_retain: int, num_test: int, seed: int) -> np.ndarray:
    """Indices of the retain subset used as members: as large as the test set, seeded."""
    rng = np.random.Generator(np.random.PCG64(seed))
    return rng.choice(num_retain, size=min(num_retain, num_test), replace=False)


def fit_confidence_svm(retain_conf: np.ndarray, test_conf: np.ndarray, seed: int = 0):  # noqa: ANN201 - an sklearn SVC
    """The MIA-Efficacy attack: an RBF SVM (C=3, gamma "auto") fitted on the confidences of members
    (a retain subset as large as the test set, or all of retain when it is smaller) labelled 1
    and non-members (test) labelled 0."""
    members = retain_conf[member_subset(len(retain_conf), len(test_conf), seed)]
    features = np.concatenate([members, test_conf]).reshape(-1, 1)
    targets = np.concatenate([np.ones(len(members)), np.zeros(len(test_conf))])
    from sklearn.svm import (
        SVC,  # imported here: sklearn costs every CLI a second and a half at start-up
    )

    return SVC(C=3, gamma="auto", kernel="rbf").fit(features, targets)


def mia_efficacy(retain_conf: np.ndarray, test_conf: np.ndarray, forget_conf: np.ndarray, seed: int = 0) -> float:
    """The percentage of forget samples the fitted SVM predicts as non-member (TN / |forget|)."""
    predicted = fit_confidence_svm(retain_conf, test_conf, seed).predict(np.asarray(forget_conf).reshape(-1, 1))
    return 100.0 * float((predicted == 0).mean())


def avg_disparity(metrics: dict[str, float], reference: dict[str, float]) -> float:
    """Mean absolute difference to the reference (Retrain) over UA, MIA-Efficacy, RA, TA."""
    return float(np.mean([abs(metrics[name] - reference[name]) for name in METRIC_NAMES]))


def retrain_gaps(metrics: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """Everything measured against Retrain: Avg. Disparity, ToW, ToW-MIA, each metric's absolute gap
    (`gap/<metric>`) and the utility gap |ΔRA| + |ΔTA| (`gap/utility`, one objective of a Pareto search)."""
    gaps = {name: abs(metrics[name] - reference[name]) for name in METRIC_NAMES}
    kept = (1 - gaps["RA"] / 100.0) * (1 - gaps["TA"] / 100.0)
    return {"avg_disparity": avg_disparity(metrics, reference), "tow": (1 - gaps["UA"] / 100.0) * kept,
            "tow_mia": (1 - gaps["MIA-Efficacy"] / 100.0) * kept, **{f"gap/{n}": g for n, g in gaps.items()},
            "gap/utility": gaps["RA"] + gaps["TA"]}


def unlearning_metrics(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], seed: int = 0) -> dict[str, float]:
    """UA, RA, TA, MIA-Efficacy from the logits of the retain, forget and test sets
    (and of the forgotten class's test samples, `test_forget`, when present)."""
    metrics = {
        "UA": 100.0 - accuracy(logits["forget"], labels["forget"]),
        "RA": accuracy(logits["retain"], labels["retain"]),
        "TA": accuracy(logits["test"], labels["test"]),
        "MIA-Efficacy": mia_efficacy(
            true_label_confidence(logits["retain"], labels["retain"]),
            true_label_confidence(logits["test"], labels["test"]),
            true_label_confidence(logits["forget"], labels["forget"]), seed=seed),
    }
    metrics.update(metric_mia_efficacies(logits, labels, seed))
    if "test_forget" in logits and len(labels["test_forget"]):
        metrics["forget-class TA"] = accuracy(logits["test_forget"], labels["test_forget"])
    return metrics


def metric_mia_efficacies(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], seed: int = 0) -> dict:
    """The four metric-based MIAs (correctness, confidence, entropy, modified entropy), fitted on
    the same members (retain subset) vs non-members (test) as the SVM: `mia/<signal>` is the % of
    forget samples called non-member, `mia/<signal>_bacc` the attack's balanced accuracy on its
    own training data. In class-wise forgetting no threshold exists for the forgotten class, so
    these attacks call every forget sample a non-member (efficacy 100), as in the paper."""
    def probs_and_labels(name: str, subset=None):
        probs = torch.softmax(logits[name].float(), dim=1).numpy().astype(np.float64)
        y = labels[name].numpy()
        return (probs, y) if subset is None else (probs[subset], y[subset])

    members = probs_and_labels("retain", member_subset(len(labels["retain"]), len(labels["test"]), seed))
    results = metric_attacks(members, probs_and_labels("test"), probs_and_labels("forget"))
    flat = {}
    for signal, values in results.items():
        flat[f"mia/{signal}"] = values["efficacy"]
        flat[f"mia/{signal}_bacc"] = values["train_balanced_acc"]
    return flat
