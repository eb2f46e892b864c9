"""Scissorhands (Wu & Harandi, ECCV 2024, "Scissorhands: scrub data influence via connection
sensitivity in networks"): reset the connections most sensitive to the forget set, then repair
on the retain set while keeping the forget set's loss from coming back.

1. Trim, once: SNIP connection sensitivity |dCE/dw * w| on `prune_batches` random forget batches
   (gradients' absolute values summed over the batches, the model in train mode), over every
   parameter. Entries above the `sparsity` quantile of all sensitivities are marked; the marked
   entries of the late layers' convolution and linear weights are re-drawn from a fresh Kaiming
   uniform initialisation (a = sqrt 5) and their biases set to zero.
2. Repair, `epochs` passes over the retain batches: the first ceil(|forget| / batch) iterations of
   each pass pair the retain batch with a forget batch and descend CE(retain) - `lam` CE(forget);
   the rest descend CE(retain) alone.
3. With `project`: at the start of each pass, the late layers' gradients of -CE on `memories`
   forget batches (a frozen copy of the model, eval mode) are kept; a paired step whose late-layer
   gradient g has a negative inner product with any of them is replaced by the GEM projection
   g + M^T v, v = argmin 1/2 v^T (M M^T + eps I) v + (M g)^T v subject to v >= `margin`, so that the
   step does not undo the forgetting (margin 0.5, eps 1e-3 as in GEM's code). The dual is solved
   exactly as a non-negative least-squares problem (scipy), one variable per memory.
SGD with momentum 0.9 and weight decay 5e-4 at a constant `lr`.

Defaults are the authors' CIFAR-10 random 10% command (JingWu321/Scissorhands, sh/main_0.1_cifar10):
lr 5e-3, 10 epochs, sparsity 0.97, lam 0.05, projection on, one memory, one pruning batch; batch 256.

Where this differs from their code, on purpose:
- **Late layers.** They name ResNet-18's `layer3`, `layer4` and `fc`: its deepest two stages and the
  head. Here the same rule is applied to whatever model runs: the CIFAR ResNet-18's last four
  blocks (stages 3 and 4) and head, and the small CNN's last two conv blocks and head (its stages
  are its blocks); a model without a declared counterpart is refused.
- **Only convolution and linear parameters are re-drawn.** Their name test (`'bn' not in name`)
  also re-draws the shortcut batch norm of their ResNet (named `downsample.1`), a side effect of
  the naming; batch norm is left alone here.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import nnls
from torch import nn

from study.core.errors import UserError
from study.core.models import CifarResNet18, SmallCNN
from study.core.pruning import copy_model
from study.core.train import check_finite
from study.methods.base import BatchStream, Hyperparam, UnlearningMethod, sgd

GEM_MARGIN, GEM_EPS = 0.5, 1e-3


def late_layers(model: nn.Module) -> list[nn.Module]:
    """The deepest two stages and the head: ResNet-18's layer3, layer4 and fc, and their counterparts."""
    if isinstance(model, CifarResNet18):
        return [*list(model.stages)[-4:], model.head]  # two basic blocks per stage
    if isinstance(model, SmallCNN):
        return [*list(model.body)[-8:], model.head]  # conv, BN, ReLU, pool per block
    raise UserError(f"scissorhands: no late layers are declared for a {type(model).__name__}")


def late_parameter_names(model: nn.Module) -> list[str]:
    """Names of every parameter (batch norm included) inside the late layers, in model order."""
    inside = {id(p) for module in late_layers(model) for p in module.parameters()}
    return [name for name, p in model.named_parameters() if id(p) in inside]


def snip_sensitivity(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """|g * w| per parameter, g the sum over `batches` of the absolute gradient of the batch's mean CE."""
    model.train()
    grads = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                grads[name] += p.grad.detach().abs()
    model.zero_grad(set_to_none=True)
    return {name: (grads[name] * p.detach()).abs() for name, p in model.named_parameters()}


def marked_entries(sensitivity: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Entries above the k-th smallest sensitivity, k = int(sparsity x count). Their fallback, kept:
    when that value is the minimum or the maximum, the threshold is half the range, (max - min) / 2."""
    flat = torch.cat([s.flatten() for s in sensitivity.values()])
    k = min(max(int(sparsity * len(flat)), 1), len(flat))
    threshold = float(flat.kthvalue(k).values)
    low, high = float(flat.min()), float(flat.max())
    if threshold >= high - 1e-12 or threshold <= low + 1e-12:
        threshold = (high - low) / 2.0
    return {name: s > threshold for name, s in sensitivity.items()}


@torch.no_grad()
def reset_marked_(model: nn.Module, marked: dict[str, torch.Tensor], generator: torch.Generator) -> int:
    """Re-draw the marked entries of the late layers' conv and linear weights (Kaiming uniform,
    a = sqrt 5) and zero their marked biases, in place; returns how many entries changed."""
    names = {id(p): name for name, p in model.named_parameters()}
    changed = 0
    for module in late_layers(model):
        for layer in module.modules():
            if not isinstance(layer, (nn.Conv2d, nn.Linear)):
                continue
            for attribute, parameter in layer.named_parameters(recurse=False):  # weight (or weight_orig), bias
                mask = marked[names[id(parameter)]]
                if attribute.startswith("weight"):  # drawn on the generator's device (the CPU), then moved:
                    fresh = torch.empty(parameter.shape, dtype=parameter.dtype)  # the same draws on CPU and GPU
                    nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=generator)
                    fresh = fresh.to(parameter.device)
                else:
                    fresh = torch.zeros_like(parameter)
                parameter.copy_(torch.where(mask, fresh, parameter))
                changed += int(mask.sum())
    return changed


def gem_project(gradient: torch.Tensor, memories: torch.Tensor, margin: float = GEM_MARGIN,
                eps: float = GEM_EPS) -> torch.Tensor:
    """g + M^T v with v = argmin 1/2 v^T (M M^T + eps I) v + (M g)^T v, v >= margin (GEM's dual).

    With u = v - margin >= 0 it is min 1/2 u^T P u + d^T u, d = P margin 1 + M g, P = L L^T; that is
    the non-negative least-squares problem min ||L^T u + L^-1 d||."""
    m = memories.detach().double().cpu().numpy()  # (memories, parameters); solved on the CPU (scipy's nnls)
    g = gradient.detach().double().cpu().numpy()
    p = m @ m.T
    p = 0.5 * (p + p.T) + np.eye(len(m)) * eps
    d = p @ np.full(len(m), margin) + m @ g
    lower = np.linalg.cholesky(p)
    u, _ = nnls(lower.T, -np.linalg.solve(lower, d))
    return torch.from_numpy(g + (u + margin) @ m).to(device=gradient.device, dtype=gradient.dtype)


class Scissorhands(UnlearningMethod):
    name = "scissorhands"
    label = "Scissorhands"
    summary = "Scissorhands: re-draw the forget set's most sensitive late connections (SNIP), repair with a GEM guard"
    hyperparams = (
        Hyperparam("lr", float, 5e-3, 1e-7, 10.0, help="SGD learning rate of the repair (momentum 0.9)"),
        Hyperparam("epochs", int, 10, 1, 1000, help="repair passes over the retain set"),
        Hyperparam("batch_size", int, 256, 2, 4096, help="retain and forget batch size"),
        Hyperparam("sparsity", float, 0.97, 0.0, 0.9999,
                   help="quantile of SNIP sensitivity above which connections are re-drawn (0.97: the top 3%)"),
        Hyperparam("lam", float, 0.05, 0.0, None, help="weight of the forget loss subtracted in the paired steps"),
        Hyperparam("project", bool, True, help="project paired steps that would undo the forgetting (GEM)"),
        Hyperparam("memories", int, 1, 1, 64, help="forget batches whose gradients the projection keeps"),
        Hyperparam("prune_batches", int, 1, 1, 1000, help="forget batches the SNIP sensitivity sums over"),
    )

    def setup(self, model, data) -> None:
        super().setup(model, data)
        self.late = late_parameter_names(self.model)
        self.retain = BatchStream(data.retain_x, data.retain_y, self.batch_size, self.generator, data.device,
                                  data.augmentation)
        self.forget = BatchStream(data.forget_x, data.forget_y, self.batch_size, self.generator, data.device,
                                  data.augmentation)
        sensitivity = snip_sensitivity(self.model, [self.forget.next() for _ in range(self.prune_batches)])
        marked = marked_entries(sensitivity, self.sparsity)
        self.reset_entries = reset_marked_(self.model, marked, self.generator)
        self.optimizer = sgd(self.model, self.lr)

    def _late_gradient(self, model: nn.Module) -> torch.Tensor:
        parameters = dict(model.named_parameters())
        return torch.cat([parameters[name].grad.detach().flatten() if parameters[name].grad is not None
                          else torch.zeros_like(parameters[name]).flatten() for name in self.late])

    def _memories(self) -> torch.Tensor:
        """Late-layer gradients of -CE on `memories` forget batches, from a frozen eval-mode copy."""
        proxy = copy_model(self.model).eval()
        rows = []
        for _ in range(self.memories):
            proxy.zero_grad(set_to_none=True)
            x, y = self.forget.next()
            (-F.cross_entropy(proxy(x), y)).backward()
            rows.append(self._late_gradient(proxy))
        return torch.stack(rows)

    def _project_(self, memories: torch.Tensor) -> bool:
        """Replace the late layers' gradient by its projection when it conflicts with a memory."""
        gradient = self._late_gradient(self.model)
        if not (memories @ gradient < 0).any():
            return False
        projected = gem_project(gradient, memories)
        parameters = dict(self.model.named_parameters())
        offset = 0
        for name in self.late:
            p = parameters[name]
            if p.grad is not None:
                p.grad.copy_(projected[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        return True

    def run_epoch(self, epoch: int) -> dict[str, float]:
        memories = self._memories() if self.project else None
        self.model.train()
        paired = math.ceil(len(self.data.forget_x) / self.batch_size)
        steps = math.ceil(len(self.data.retain_x) / self.batch_size)
        retain_loss = forget_loss = 0.0
        projected = 0
        for step in range(steps):
            self.optimizer.zero_grad(set_to_none=True)
            rx, ry = self.retain.next()
            loss_r = F.cross_entropy(self.model(rx), ry)
            loss = loss_r
            if step < paired:
                fx, fy = self.forget.next()
                loss_f = F.cross_entropy(self.model(fx), fy)
                loss = loss_r - self.lam * loss_f
                forget_loss += loss_f.item()
            check_finite(loss, f"scissorhands epoch {epoch + 1} step {step + 1}")
            loss.backward()
            if step < paired and memories is not None:
                projected += self._project_(memories)
            self.optimizer.step()
            retain_loss += loss_r.item()
        return {"retain_loss": retain_loss / steps, "forget_loss": forget_loss / max(min(paired, steps), 1),
                "projected_steps": float(projected), "reset_entries": float(self.reset_entries)}
