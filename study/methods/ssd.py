"""Selective Synaptic Dampening (SSD; Foster, Schoepf and Brintrup, AAAI 2024): no training at all.

Each parameter's importance to a set D is the mean over D's batches of its squared batch-loss
gradient (a diagonal Fisher estimate, the model in eval mode). A parameter far more important to
the forget set than to the whole training set, I_f > alpha I_D, is one the forget set leans on
alone; SSD scales it by beta = min(lambda I_D / I_f, 1) and leaves every other parameter as it is.
So it edits the model once (`one_shot`), in one pass over the training set.

As the authors' code runs it: importances over batches of the same size for both sets (their
forget and full-training loaders), cross-entropy with the model in eval mode, the training set
being retain and forget together, every parameter eligible. Defaults are theirs for ResNet-18 on
CIFAR (lambda 1, alpha 10). Their code has no search; this project's `baselines` space ranges
alpha over [0.1, 100] and lambda over [0.1, 5], around those defaults.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from study.methods.base import Hyperparam, UnlearningMethod


def importances(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                device: str = "cpu") -> dict[str, torch.Tensor]:
    """Per parameter: the mean over batches of the squared gradient of the batch's mean cross-entropy."""
    model.eval()
    totals = {name: torch.zeros_like(p) for name, p in model.named_parameters() if p.requires_grad}
    batches = 0
    for start in range(0, len(x), batch_size):
        model.zero_grad(set_to_none=True)
        batch = slice(start, start + batch_size)
        F.cross_entropy(model(x[batch].to(device)), y[batch].to(device)).backward()
        for name, p in model.named_parameters():
            if name in totals and p.grad is not None:
                totals[name] += p.grad.detach().pow(2)
        batches += 1
    model.zero_grad(set_to_none=True)
    return {name: total / max(batches, 1) for name, total in totals.items()}


def dampen_(model: torch.nn.Module, full: dict[str, torch.Tensor], forget: dict[str, torch.Tensor],
            alpha: float, lam: float) -> float:
    """Scale, in place, each parameter with forget importance above `alpha` x its full importance by
    min(`lam` x full / forget, 1); returns the share of parameters dampened."""
    changed = total = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name not in full:
                continue
            selected = forget[name] > alpha * full[name]
            factor = torch.clamp(lam * full[name] / forget[name], max=1.0)
            p[selected] = p[selected] * factor[selected]
            changed += int(selected.sum())
            total += p.numel()
    return changed / max(total, 1)


class SelectiveSynapticDampening(UnlearningMethod):
    name = "ssd"
    label = "SSD"
    one_shot = True
    summary = "selective synaptic dampening: scale parameters far more important to forget than to all data"
    hyperparams = (
        Hyperparam("alpha", float, 10.0, 1e-6, None, help="selection: dampen where forget importance > alpha x full"),
        Hyperparam("lam", float, 1.0, 1e-6, None, help="dampening: scale by min(lam x full / forget importance, 1)"),
        Hyperparam("batch_size", int, 128, 1, 4096, help="batch size of both importance estimates"),
    )

    def apply(self) -> dict[str, float]:
        d = self.data
        train_x, train_y = torch.cat([d.retain_x, d.forget_x]), torch.cat([d.retain_y, d.forget_y])
        full = importances(self.model, train_x, train_y, self.batch_size, d.device)
        forget = importances(self.model, d.forget_x, d.forget_y, self.batch_size, d.device)
        return {"dampened_share": dampen_(self.model, full, forget, self.alpha, self.lam)}
