"""A model's predictions on the sets the metrics read, and the metrics computed from them.

Two views of "held-out data": `test` (the reported tables) and `select` (the selection set a
study's trials are scored on, so the search never reads the test set; see study.core.splits).
In the `select` view TA and MIA-Efficacy's non-members come from the selection set, UA and RA
are the same as in the test view.
"""
from __future__ import annotations

import numpy as np
import torch

from study.core.data import ImageDataset
from study.core.inference import predict_logits
from study.core.progress import Progress, tracked
from study.core.splits import Splits
from study.evaluation.metrics import (
    mia_efficacy,
    true_label_confidence,
    unlearning_metrics,
)

VIEWS = ("test", "select")


def held_out_sets(data: ImageDataset, splits: Splits, view: str = "test") -> dict[str, tuple]:
    """(images, labels, indices) of the held-out sets a view reads as `test` and `test_forget`."""
    if view == "test":
        return {"test": (data.test_x, data.test_y, splits.test),
                "test_forget": (data.test_x, data.test_y, splits.test_forget)}
    if view == "select":
        if not len(splits.select):
            raise ValueError("this split has no selection set (select_size 0)")
        return {"test": (data.train_x, data.train_y, splits.select),
                "test_forget": (data.train_x, data.train_y, splits.select_forget)}
    raise ValueError(f"unknown view {view!r}; one of {VIEWS}")


def split_logits(model: torch.nn.Module, data: ImageDataset, splits: Splits, device: str = "cpu",
                 view: str = "test") -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Logits and labels of the sets the metrics read (retain, forget, the view's held-out set as
    `test` and, in class-wise forgetting, its forgotten-class samples as `test_forget`), keyed by
    set name; empty sets are left out."""
    held_out = held_out_sets(data, splits, view)
    sets = {"retain": (data.train_x, splits.retain), "forget": (data.train_x, splits.forget),
            **{name: (x, idx) for name, (x, _, idx) in held_out.items()}}
    labels_of = {"retain": data.train_y, "forget": data.train_y, **{name: y for name, (_, y, _) in held_out.items()}}
    logits = {name: predict_logits(model, x[idx], device=device) for name, (x, idx) in sets.items() if len(idx)}
    labels = {name: labels_of[name][idx] for name, (_, idx) in sets.items() if len(idx)}
    return logits, labels


Predictions = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]  # split_logits' (logits, labels)


def evaluate_model(model: torch.nn.Module, data: ImageDataset, splits: Splits, seed: int,
                   device: str = "cpu", view: str = "test", keep: dict | None = None) -> dict[str, float]:
    """UA, RA, TA, MIA-Efficacy and the metric MIAs of `model` in a view (about 20 s on the proxy's
    test view at one thread: the predictions, then the SVM; progress shown between the two).
    With `keep`, its "predictions" entry is set to the (logits, labels) the metrics read, so a caller
    that needs them again (margins, MIA-Efficacy's spread) does not predict a second time."""
    with Progress(2, "evaluating" if view == "test" else "evaluating (selection set)", "part") as progress:
        logits, labels = split_logits(model, data, splits, device, view)
        if keep is not None:
            keep["predictions"] = (logits, labels)
        progress.update()
        metrics = unlearning_metrics(logits, labels, seed=seed)
        progress.update()
    return metrics


def mia_efficacy_spread(predictions: Predictions, seed: int, subsets: int = 5) -> tuple[float, float]:
    """MIA-Efficacy's mean and standard deviation over `subsets` member subsets of retain (seeds
    seed*1000 .. seed*1000+subsets-1), from a model's test-view `predictions` (`split_logits`): how
    much the paper's single-subset value depends on which retain samples the SVM was fitted on."""
    logits, labels = predictions
    confidences = {name: true_label_confidence(logits[name], labels[name]) for name in ("retain", "test", "forget")}
    values = [mia_efficacy(confidences["retain"], confidences["test"], confidences["forget"], seed=seed * 1000 + k)
              for k in tracked(range(subsets), subsets, "MIA-Efficacy over member subsets", "SVM")]
    return float(np.mean(values)), float(np.std(values, ddof=1)) if subsets > 1 else 0.0
