"""SFR-on (Huang et al., NeurIPS 2024, "Unified gradient-based machine unlearning with remain geometry
enhancement"): saliency-masked, adaptively weighted gradient ascent on the forget set, interleaved
with descent on the retain set.

1. Forget-remain saliency, once: the diagonal Fisher of the forget set and of the retain set (the
   mean over batches of the squared batch-loss gradient, the model in eval mode); a parameter may
   take forget steps only where forget Fisher / retain Fisher >= `threshold` (gamma in the paper).
2. `iters` iterations, each a retain step (cross-entropy, SGD). Every `forget_every` iterations a
   forget step comes first: ascent on the forget batch's adaptively weighted cross-entropy,
   sum_i w_i l_i with w_i proportional to l_i^-lambda (samples already forgotten, with a high loss,
   weigh less), scaled by alpha_t = `forget_alpha` x (1 + cos(pi t / iters)) / 2, its gradient
   masked by the saliency and clipped to norm `max_norm`.
3. SGD at `lr` (momentum 0.9, weight decay 5e-4) with a cosine schedule over the iterations.

As the authors' code runs it for CIFAR-10 random 10%: 1,500 iterations, a forget step every 5,
alpha 25, lambda 0.5, threshold 1, max norm 7, lr 0.01, cosine; their "EMA" with beta 1 leaves the
model as it is and is left out. Batch 128, as their `scripts/unlearn.sh` passes it (at a fixed
number of iterations the batch size sets how much data the run sees). The
epoch protocol: an "epoch" is ceil(|retain| / batch_size) iterations, so ASHA and checkpoints see
the run in epochs; the schedules run over `iters`, whatever the epoch boundaries.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from study.core.train import check_finite
from study.methods.base import BatchStream, Hyperparam, UnlearningMethod, sgd
from study.methods.ssd import importances


def saliency_mask(forget: dict[str, torch.Tensor], retain: dict[str, torch.Tensor],
                  threshold: float) -> dict[str, torch.Tensor]:
    """Where (forget Fisher + 1e-15) / (retain Fisher + 1e-15) >= `threshold`, per parameter."""
    return {name: (forget[name] + 1e-15) / (retain[name] + 1e-15) >= threshold for name in forget}


def adaptive_forget_loss(logits: torch.Tensor, labels: torch.Tensor, lam: float) -> torch.Tensor:
    """sum_i w_i l_i with w_i = l_i^-lambda / sum_j l_j^-lambda (weights detached), l the per-sample CE."""
    losses = F.cross_entropy(logits, labels, reduction="none")
    inverse = 1.0 / (losses.detach().pow(lam) + 1e-15)
    return (inverse / inverse.sum() * losses).sum()


def forget_scale(alpha: float, step: int, total: int) -> float:
    """alpha_t = alpha (1 + cos(pi t / T)) / 2."""
    return alpha * (1 + math.cos(math.pi * step / total)) / 2


class SFRon(UnlearningMethod):
    name = "sfr-on"
    label = "SFR-on"
    summary = "SFR-on: Fisher-ratio-masked adaptive gradient ascent on forget, interleaved with retain descent"
    hyperparams = (
        Hyperparam("lr", float, 0.01, 1e-7, 10.0, help="SGD learning rate (momentum 0.9), cosine over the iterations"),
        Hyperparam("iters", int, 1500, 1, 10**7, help="iterations (one retain step each)"),
        Hyperparam("batch_size", int, 128, 2, 4096, help="retain and forget batch size"),
        Hyperparam("forget_every", int, 5, 1, 10**6, help="a forget step every this many iterations"),
        Hyperparam("forget_alpha", float, 25.0, 0.0, None, help="scale of the forget ascent (cosine-decayed)"),
        Hyperparam("lam", float, 0.5, 0.0, 10.0, help="adaptive weighting exponent (lambda)"),
        Hyperparam("threshold", float, 1.0, 0.0, None, help="saliency threshold on forget / retain Fisher (gamma)"),
        Hyperparam("max_norm", float, 7.0, 1e-6, None, help="gradient-norm clip of the forget step"),
    )

    def setup(self, model, data) -> None:
        super().setup(model, data)
        self.mask = saliency_mask(importances(self.model, data.forget_x, data.forget_y, self.batch_size, data.device),
                                  importances(self.model, data.retain_x, data.retain_y, self.batch_size, data.device),
                                  self.threshold)
        self.optimizer = sgd(self.model, self.lr)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.iters)
        self.retain = BatchStream(data.retain_x, data.retain_y, self.batch_size, self.generator, data.device,
                                  data.augmentation)
        self.forget = BatchStream(data.forget_x, data.forget_y, self.batch_size, self.generator, data.device,
                                  data.augmentation)
        self.step = 0

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.retain_x) / self.batch_size)

    @property
    def num_epochs(self) -> int:
        if getattr(self, "data", None) is None:
            return 1
        return math.ceil(self.iters / self.steps_per_epoch)

    def run_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        forget_loss = retain_loss = 0.0
        forget_steps = retain_steps = 0
        end = min(self.iters, (epoch + 1) * self.steps_per_epoch)
        while self.step < end:
            if self.step % self.forget_every == 0:
                x, y = self.forget.next()
                self.optimizer.zero_grad(set_to_none=True)
                loss = adaptive_forget_loss(self.model(x), y, self.lam)
                check_finite(loss, f"sfr-on iteration {self.step}")
                (-forget_scale(self.forget_alpha, self.step, self.iters) * loss).backward()
                for name, p in self.model.named_parameters():
                    if p.grad is not None and name in self.mask:
                        p.grad *= self.mask[name]
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.max_norm)
                self.optimizer.step()
                forget_loss, forget_steps = forget_loss + loss.item(), forget_steps + 1
            x, y = self.retain.next()
            self.optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.model(x), y)
            check_finite(loss, f"sfr-on iteration {self.step}")
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
            retain_loss, retain_steps = retain_loss + loss.item(), retain_steps + 1
            self.step += 1
        return {"forget_loss": forget_loss / max(forget_steps, 1), "retain_loss": retain_loss / max(retain_steps, 1),
                "salient_share": float(sum(m.sum() for m in self.mask.values()) / sum(m.numel() for m in self.mask.values()))}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "step": self.step, "schedule": self.schedule.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.step = int(state["step"])
        self.schedule.load_state_dict(state["schedule"])
