"""A model's predictions on the sets the metrics read, and the metrics computed from them."""
from __future__ import annotations

import numpy as np
import torch

from study.core.data import ImageDataset
from study.core.inference import predict_logits
from study.core.progress import Progress, tracked
from study.core.splits import Splits
from study.evaluation.metrics import mia_efficacy, true_label_confidence, unlearning_metrics


def split_logits(model: torch.nn.Module, data: ImageDataset, splits: Splits,
                 device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Logits and labels of the sets the metrics read (retain, forget, test and, in class-wise
    forgetting, the forgotten class's test samples), keyed by set name; empty sets are left out."""
    sets = {"retain": (data.train_x, splits.retain), "forget": (data.train_x, splits.forget),
            "test": (data.test_x, splits.test), "test_forget": (data.test_x, splits.test_forget)}
    labels_of = {"retain": data.train_y, "forget": data.train_y, "test": data.test_y, "test_forget": data.test_y}
    logits = {name: predict_logits(model, x[idx], device=device) for name, (x, idx) in sets.items() if len(idx)}
    labels = {name: labels_of[name][idx] for name, (_, idx) in sets.items() if len(idx)}
    return logits, labels


def evaluate_model(model: torch.nn.Module, data: ImageDataset, splits: Splits, seed: int,
                   device: str = "cpu") -> dict[str, float]:
    """UA, RA, TA, MIA-Efficacy and the metric MIAs of `model` (about 20 s on the proxy at one
    thread: the predictions, then the SVM; progress shown between the two)."""
    with Progress(2, "evaluating", "part") as progress:
        logits, labels = split_logits(model, data, splits, device)
        progress.update()
        metrics = unlearning_metrics(logits, labels, seed=seed)
        progress.update()
    return metrics


def mia_efficacy_spread(model: torch.nn.Module, data: ImageDataset, splits: Splits, seed: int, subsets: int = 5,
                        device: str = "cpu") -> tuple[float, float]:
    """MIA-Efficacy's mean and standard deviation over `subsets` member subsets of retain (seeds
    seed*1000 .. seed*1000+subsets-1): how much the paper's single-subset value depends on which
    retain samples the SVM was fitted on."""
    logits, labels = split_logits(model, data, splits, device)
    confidences = {name: true_label_confidence(logits[name], labels[name]) for name in ("retain", "test", "forget")}
    values = [mia_efficacy(confidences["retain"], confidences["test"], confidences["forget"], seed=seed * 1000 + k)
              for k in tracked(range(subsets), subsets, "MIA-Efficacy over member subsets", "SVM")]
    return float(np.mean(values)), float(np.std(values, ddof=1)) if subsets > 1 else 0.0
