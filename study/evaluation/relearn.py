"""The relearning test: how fast fine-tuning on part of the forget set brings the rest of it back.

A model that only hides what it learned (a suppressed output, a shifted head) relearns the forget
set in a few steps; a model that never learned it (Retrain) needs as many as any unseen data. So
`relearn_UA` is UA on one half of the forget set after `steps` SGD steps on the other half, starting
from a copy of the model (the model itself is untouched), read against Retrain's after the same
steps on the same batches: a method whose relearned UA falls well below Retrain's kept the
knowledge. UA is read on the half the steps never saw, so it measures knowledge that comes back,
not samples fitted again.

Each step's batch is `RELEARN_BATCH` samples of the fitting half beside as many retain samples:
fine-tuning on the forget set alone would, in class-wise forgetting, teach any model to call every
image the forgotten class (Retrain included) and say nothing. Seeded order, the project's
unlearning optimiser (SGD, momentum 0.9, weight decay 5e-4) at `RELEARN_LR`, train mode; UA then
in eval mode. One fixed recipe for every method, so the numbers compare across methods and with
Retrain; it is a probe, not a tuned attack.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from study.core.data import ImageDataset
from study.core.inference import predict_logits
from study.core.pruning import copy_model
from study.core.splits import Splits

RELEARN_LR = 0.01
RELEARN_BATCH = 64


def relearn_ua(model: torch.nn.Module, data: ImageDataset, splits: Splits, steps: int, seed: int,
               device: str = "cpu") -> float:
    """UA (percent) on the held-out forget half after `steps` fine-tuning steps of a copy of `model`."""
    if steps < 1:
        raise ValueError("the relearning test needs at least one step")
    fit, held = relearn_halves(splits, seed)
    learner = copy_model(model).to(device)
    learner.train()
    optimizer = torch.optim.SGD(learner.parameters(), lr=RELEARN_LR, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(seed)
    forget, retain = _batches(fit, steps, generator), _batches(splits.retain, steps, generator)
    for forget_idx, retain_idx in zip(forget, retain):
        idx = np.concatenate([forget_idx, retain_idx])
        x, y = data.train_x[idx].to(device), data.train_y[idx].to(device)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(learner(x), y).backward()
        optimizer.step()
    learner.eval()
    predicted = predict_logits(learner, data.train_x[held], device=device).argmax(dim=1)
    return 100.0 - 100.0 * float((predicted == data.train_y[held]).float().mean())


def _batches(indices: np.ndarray, steps: int, generator: torch.Generator) -> list[np.ndarray]:
    """`steps` batches of `RELEARN_BATCH` indices, drawn in a seeded order reshuffled at every pass."""
    size, batches, order = min(RELEARN_BATCH, len(indices)), [], np.zeros(0, dtype=np.int64)
    while len(batches) < steps:
        if len(order) < size:
            order = indices[torch.randperm(len(indices), generator=generator).numpy()]
        batches.append(order[:size])
        order = order[size:]
    return batches


def relearn_halves(splits: Splits, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The forget set's seeded halves: the one the steps fit, and the one UA is read on."""
    order = np.random.Generator(np.random.PCG64([seed, 17])).permutation(splits.forget)
    half = len(order) // 2
    if half == 0:
        raise ValueError("the relearning test needs at least two forget samples")
    return np.sort(order[:half]), np.sort(order[half:])
