"""AMUN (Adversarial Mixup Unlearning; Ebrahimpour-Boroojeny et al., ICML 2025): fine-tune on the
forget samples together with their nearest adversarial examples, so the model's confidence on the
forget samples falls to that of unseen data without pushing them to arbitrary labels.

1. Adversarial set, once, with the original in eval mode: for each forget sample, PGD-L2 on the
   cross-entropy of its label, `attack_steps` steps of size `step_factor` x eps, each step's
   perturbation projected on the L2 ball of radius eps and the image kept inside the valid pixel
   range. A sample starts at eps = `epsilon_init`; while the attack does not change the model's
   prediction, eps doubles, for up to `max_rounds` rounds. The adversarial image is labelled with
   the class the model predicts for it (a sample never flipped keeps its own label).
2. Fine-tune `epochs` passes over retain + forget (true labels) + the adversarial set, one shuffled
   stream, plain cross-entropy; retain and forget images are augmented as in training, the
   adversarial ones are used as computed.

As the implementation of jmirlach/ReGUn runs it (`mul/amun.py` with `conf/unlearn/amun.yaml`, read
2026-12-06; the AMUN authors' own repository is not among the stored ones), the defaults here:
eps 0.1 doubling for up to 6 rounds, 50 steps of 0.1 eps, SGD lr 0.01, momentum 0.9, no weight
decay, 10 epochs, batch 128, retain and forget both in the stream. eps is measured in normalised
input units, as theirs (CIFAR's normalisation; Fashion-MNIST's here). Their weighted two-stream
variant (`use_weighted_loss`, off by default there) is not offered.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from study.core.data import augment_batch
from study.core.progress import tracked
from study.core.pruning import copy_model
from study.core.train import check_finite
from study.methods.base import Hyperparam, UnlearningMethod, sgd


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def pgd_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, steps: int, step_factor: float,
           low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """PGD-L2 from x on CE(model(x'), y): normalised-gradient steps of step_factor x eps, projected on
    the ball ||x' - x|| <= eps (per sample) and clamped to [low, high]."""
    eps = eps.view(-1, *([1] * (x.dim() - 1)))
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        gradient, = torch.autograd.grad(F.cross_entropy(model(adv), y), adv)
        adv = adv.detach() + step_factor * eps * gradient / _per_sample_norm(gradient)
        delta = adv - x
        adv = x + delta * torch.clamp(eps / _per_sample_norm(delta), max=1.0)
        adv = torch.max(torch.min(adv, high), low).detach()
    return adv


def nearest_adversarial(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon_init: float, steps: int,
                        step_factor: float, max_rounds: int, low: torch.Tensor,
                        high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Per sample, the PGD-L2 image at the smallest eps = epsilon_init x 2^r (r < max_rounds) that
    changes the model's prediction, and that prediction; a sample never flipped keeps its own label
    (and its last attempt). Returns (images, labels, logs)."""
    adv, labels = x.clone(), y.clone()
    eps = torch.full((len(x),), float(epsilon_init), device=x.device)
    remaining = torch.arange(len(x), device=x.device)
    flipped_by_round = []
    for _ in range(max_rounds):
        attempt = pgd_l2(model, x[remaining], y[remaining], eps[remaining], steps, step_factor, low, high)
        with torch.no_grad():
            predicted = model(attempt).argmax(dim=1)
        flipped = predicted != y[remaining]
        adv[remaining] = attempt
        labels[remaining[flipped]] = predicted[flipped]
        flipped_by_round.append(int(flipped.sum()))
        remaining = remaining[~flipped]
        if len(remaining) == 0:
            break
        eps[remaining] *= 2.0
    return adv, labels, {"adversarial_flipped": float(sum(flipped_by_round) / max(len(x), 1)),
                         "adversarial_rounds": float(len(flipped_by_round))}


class AMUN(UnlearningMethod):
    name = "amun"
    label = "AMUN"
    summary = "AMUN: fine-tune on retain + forget + the forget samples' nearest adversarial examples (PGD-L2)"
    hyperparams = (
        Hyperparam("lr", float, 0.01, 1e-7, 10.0, help="learning rate (SGD, momentum 0.9, no weight decay)"),
        Hyperparam("epochs", int, 10, 1, 200, help="passes over retain + forget + adversarial"),
        Hyperparam("batch_size", int, 128, 1, 4096, help="batch size (also of the attack)"),
        Hyperparam("epsilon_init", float, 0.1, 1e-6, 100.0, help="first L2 radius of the attack (doubles per round)"),
        Hyperparam("attack_steps", int, 50, 1, 1000, help="PGD steps per round"),
        Hyperparam("step_factor", float, 0.1, 1e-4, 10.0, help="PGD step size as a share of the radius"),
        Hyperparam("max_rounds", int, 6, 1, 30, help="radius doublings tried before a sample keeps its label"),
        Hyperparam("use_retain", bool, True, help="retain samples in the fine-tuning stream"),
        Hyperparam("use_forget", bool, True, help="forget samples (true labels) in the fine-tuning stream"),
    )

    def setup(self, model, data) -> None:
        super().setup(model, data)
        attacked = copy_model(self.model).eval()
        for p in attacked.parameters():
            p.requires_grad_(False)
        low, high = data.pixel_bounds()
        pieces, labels, flipped = [], [], 0.0
        for start in range(0, len(data.forget_x), self.batch_size):
            x = data.forget_x[start:start + self.batch_size].to(data.device)
            y = data.forget_y[start:start + self.batch_size].to(data.device)
            adv, adv_y, logs = nearest_adversarial(attacked, x, y, self.epsilon_init, self.attack_steps,
                                                   self.step_factor, self.max_rounds, low, high)
            pieces.append(adv.cpu())
            labels.append(adv_y.cpu())
            flipped += logs["adversarial_flipped"] * len(x)
        self.adversarial_share_flipped = flipped / max(len(data.forget_x), 1)
        parts = [(data.retain_x, data.retain_y, False)] if self.use_retain else []
        parts += [(data.forget_x, data.forget_y, False)] if self.use_forget else []
        parts += [(torch.cat(pieces), torch.cat(labels), True)]
        self.stream_x = torch.cat([x for x, _, _ in parts])
        self.stream_y = torch.cat([y for _, y, _ in parts])
        self.stream_adversarial = torch.cat([torch.full((len(x),), flag) for x, _, flag in parts])
        self.optimizer = sgd(self.model, self.lr, momentum=0.9, weight_decay=0.0)

    def run_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        d = self.data
        order = torch.randperm(len(self.stream_x), generator=self.generator)
        total, steps = 0.0, 0
        starts = range(0, len(order), self.batch_size)
        for start in tracked(starts, len(starts), f"amun epoch {epoch + 1}", "batch"):
            idx = order[start:start + self.batch_size]
            x = self.stream_x[idx].clone()
            natural = ~self.stream_adversarial[idx]
            if natural.any() and d.augmentation != "none":
                x[natural] = augment_batch(x[natural], d.augmentation, self.generator)
            loss = F.cross_entropy(self.model(x.to(d.device)), self.stream_y[idx].to(d.device))
            check_finite(loss, f"amun epoch {epoch + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total, steps = total + loss.item(), steps + 1
        return {"loss": total / max(steps, 1), "adversarial_flipped": self.adversarial_share_flipped}
