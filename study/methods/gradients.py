"""Per-sample gradients (torch.func) and flat-vector helpers shared by FF and IU."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap


def trainable_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def per_sample_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 64,
                         target: str = "label") -> torch.Tensor:
    """(N, P) matrix of per-sample gradients of the cross-entropy, model in eval mode.

    target="label" uses the true label; an int k uses class k as the target (for the true Fisher).
    """
    model.eval()
    params = {name: p.detach() for name, p in trainable_parameters(model).items()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def loss_of(p, xi, yi):
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    per_sample = vmap(grad(loss_of), in_dims=(None, 0, 0))
    rows = []
    for start in range(0, len(x), chunk):
        xb, yb = x[start:start + chunk], y[start:start + chunk]
        if target != "label":
            yb = torch.full_like(yb, int(target))
        grads = per_sample(params, xb, yb)
        rows.append(torch.cat([g.flatten(1) for g in grads.values()], dim=1))
    return torch.cat(rows)


def summed_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Flat gradient of the *summed* cross-entropy over (x, y), model in eval mode."""
    model.eval()
    params = list(trainable_parameters(model).values())
    total = torch.zeros(sum(p.numel() for p in params), device=params[0].device)
    for start in range(0, len(x), batch_size):
        loss = F.cross_entropy(model(x[start:start + batch_size]), y[start:start + batch_size], reduction="sum")
        total += torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])
    return total


@torch.no_grad()
def add_flat_(model: nn.Module, delta: torch.Tensor) -> None:
    """theta += delta, with delta laid out as `trainable_parameters` flattens the parameters."""
    offset = 0
    for p in trainable_parameters(model).values():
        p.add_(delta[offset:offset + p.numel()].view_as(p))
        offset += p.numel()
