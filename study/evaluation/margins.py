"""Per-example margins of a model, kept beside an evaluation row's metrics.

The margin of an example is its logit-scaled confidence z_y - log sum_{j != y} exp z_j (the
audit's and KLoM's signal). Kept for the forget, retain and test sets as float16 (about 40 KB for
the Fashion-MNIST proxy's 12,000 examples), they let per-example views (KLoM across seeds, which
examples stay memorised) be computed from finished rows without training anything again.
"""
from __future__ import annotations

import io

import numpy as np
import torch

from study.core.data import ImageDataset
from study.core.splits import Splits
from study.evaluation.evaluate import Predictions, split_logits
from study.evaluation.lira import logit_scaled_confidence

MARGIN_SETS = ("forget", "retain", "test")


def example_margins(model: torch.nn.Module, data: ImageDataset, splits: Splits, device: str = "cpu",
                    predictions: Predictions | None = None) -> dict[str, np.ndarray]:
    """Margins on the forget, retain and test sets (test view), float16, in each set's split order;
    from `predictions` (the evaluation's test-view logits and labels) where given, else predicted."""
    logits, labels = predictions or split_logits(model, data, splits, device, view="test")
    return {name: logit_scaled_confidence(logits[name], labels[name]).astype(np.float16)
            for name in MARGIN_SETS if name in logits}


def margins_bytes(margins: dict[str, np.ndarray]) -> bytes:
    """The margins as a compressed .npz file's bytes."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **margins)
    return buffer.getvalue()
