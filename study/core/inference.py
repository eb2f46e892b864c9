"""Batched inference: the logits every metric, attack and audit reads.

Kept apart from `train.py` because the artifact cache keys trained models with a digest of the
training code: a change to how predictions are computed must not retrain every cached model.

The model is evaluated through a copy in channels-last memory layout, in batches of 256, which
runs the Fashion-MNIST proxy's CNN faster on CPU than the default layout in batches of 1024
(`python bench/eval_cost.py --preset fmnist-proxy --threads 1` times both); the logits agree with
the default layout's to about 1e-7. The caller's model keeps its weights, memory layout and mode
(and any optimiser state that points at its parameters stays valid).
"""
from __future__ import annotations

import torch
from torch import nn

from study.core.pruning import copy_model

BATCH_SIZE = 256


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = BATCH_SIZE, device: str = "cpu") -> torch.Tensor:
    """Logits of `model` in eval mode on all of `x`, batched; returned on the CPU."""
    if len(x) == 0:
        return torch.zeros(0)
    fast = copy_model(model).eval()  # copy_model: deepcopy that also takes pruned models
    if x.dim() == 4:
        fast = fast.to(memory_format=torch.channels_last)
    outputs = [fast(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(outputs)
