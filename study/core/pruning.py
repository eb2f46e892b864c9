"""One-shot global magnitude pruning (OMP) with masks that stay fixed afterwards.

Uses `torch.nn.utils.prune`: a pruned weight becomes `weight_orig * weight_mask`, computed in
a forward pre-hook, so every later optimiser step, noise injection or Newton step touches
`weight_orig` while the effective weight stays exactly zero where the mask is zero.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import prune

from study.core.errors import UserError


def prunable_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Conv and linear layers: the weights OMP ranks globally (biases and BN are never pruned)."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, (nn.Conv2d, nn.Linear))]


def omp_prune(model: nn.Module, sparsity: float) -> nn.Module:
    """Zero the `sparsity` fraction of smallest-magnitude prunable weights, across all layers at once."""
    if not 0.0 <= sparsity < 1.0:
        raise UserError(f"sparsity {sparsity} must be in [0, 1)")
    if sparsity == 0.0:
        return model
    targets = [(module, "weight") for _, module in prunable_modules(model)]
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=float(sparsity))
    return model


def masks_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The masks of a pruned model, keyed by module name; empty for a dense model."""
    return {name: module.weight_mask.detach().clone() for name, module in prunable_modules(model)
            if hasattr(module, "weight_mask")}


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Re-attach saved masks (e.g. after loading a plain state dict) so they are enforced again."""
    modules = dict(prunable_modules(model))
    for name, mask in masks.items():
        if name not in modules:
            raise UserError(f"mask for unknown layer {name!r}; the masks do not belong to this model")
        if hasattr(modules[name], "weight_mask"):
            prune.remove(modules[name], "weight")
        prune.custom_from_mask(modules[name], "weight", mask.to(modules[name].weight.device))
    return model


def copy_model(model: nn.Module) -> nn.Module:
    """`copy.deepcopy` that also works on pruned models.

    A pruned module's `weight` is a computed (non-leaf) tensor, which deepcopy refuses; it is
    recomputed from `weight_orig * weight_mask` at every forward, so detaching it first is safe.
    """
    for _, module in prunable_modules(model):
        if hasattr(module, "weight_mask"):
            module.weight = module.weight.detach()
    return copy.deepcopy(model)


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict with masks folded into the weights, loadable into an unpruned model."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("weight_mask"):
            continue
        if key.endswith("weight_orig"):
            prefix = key[: -len("weight_orig")]
            state[prefix + "weight"] = (value * model.state_dict()[prefix + "weight_mask"]).detach().cpu()
        else:
            state[key] = value.detach().cpu()
    return state


def sparsity_of(model: nn.Module) -> float:
    """Fraction of prunable weights that are exactly zero in the effective (masked) weights."""
    total = zeros = 0
    for _, module in prunable_modules(model):
        weight = module.weight
        total += weight.numel()
        zeros += int((weight == 0).sum())
    return zeros / max(total, 1)
