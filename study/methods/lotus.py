"""LoTUS (Spartalis et al., CVPR 2025): distil the frozen original, with softened targets on the forget set.

The student (the model being unlearned) learns from the frozen original (the teacher) on the
forget set and a random part of the retain set, mixed in one shuffled stream. On a retain sample
its target is a one-hot class drawn from the teacher's output (a hard Gumbel-softmax sample at
temperature 1, as the authors' code draws it; `retain_targets: argmax` takes the teacher's top
class instead, the project's earlier reading); on a forget sample it is the teacher's
Gumbel-softmax at temperature tau, so the forget samples' over-confident memorised posteriors are
smoothed towards uncertainty. The loss is the cross-entropy to those targets,
-sum_k t_k log s_k, averaged over the batch.

The temperature follows how much the student still knows of the forget set, set at the start of
every epoch: tau = exp(alpha x (acc_forget - acc_val)), accuracies as fractions rounded to two
decimals as the authors' code rounds them; acc_forget is the student's (eval mode) on the forget
set, acc_val the teacher's on the validation set (random forgetting) or 0 (class-wise). Once
acc_forget falls below acc_val by 0.01 or more, unlearning stops: the remaining epochs do nothing.

As the authors' code runs it: AdamW at lr 1e-4, weight decay 5e-4, batch 128, a retain subset of
30% drawn once, Gumbel-softmax targets, and for ResNet-18 on CIFAR-10 10 epochs with alpha 8 for
random forgetting and 32 for class-wise forgetting (their CIFAR-100 runs take alpha 2): those are
the defaults here (`alpha` unset resolves by the forget scheme). The Gumbel noise is drawn from the
run's own generator (the authors draw from the global one), so a run repeats exactly.

LoTUS also proposes a retrain-free metric, RF-JSD; it is part of the held-out judge
(`study.evaluation.heldout`), beside the project's own retrain-free score.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from study.core.data import augment_batch
from study.core.inference import predict_logits
from study.core.progress import tracked
from study.core.pruning import copy_model
from study.core.train import check_finite
from study.methods.base import Hyperparam, UnlearningMethod

STOP_BELOW = -0.01  # the authors' stopping rule: acc_forget - acc_val at or below this ends unlearning


def fraction_correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: str) -> float:
    """Accuracy as a fraction rounded to two decimals, as the authors' `compute_accuracy` returns it."""
    if len(y) == 0:
        return 0.0
    predicted = predict_logits(model, x, device=device).argmax(dim=1)
    return round(float((predicted == y).float().mean()), 2)


def temperature(alpha: float, acc_forget: float, acc_val: float) -> float:
    """tau = exp(alpha x (acc_forget - acc_val))."""
    return math.exp(alpha * (acc_forget - acc_val))


def gumbel_softmax(logits: torch.Tensor, tau: float, generator: torch.Generator) -> torch.Tensor:
    """softmax((logits + g) / tau) with g standard Gumbel noise from `generator` (F.gumbel_softmax's
    soft sample, with the noise drawn from a generator of the run's own)."""
    noise = torch.empty(logits.shape).exponential_(generator=generator).log().neg().to(logits.device)
    return F.softmax((logits + noise) / tau, dim=-1)


RANDOM_ALPHA, CLASSWISE_ALPHA = 8.0, 32.0  # the authors' CIFAR-10 commands


def sampled_one_hot(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One-hot of a class drawn from softmax(logits): the hard Gumbel-softmax sample at temperature 1."""
    drawn = gumbel_softmax(logits, 1.0, generator).argmax(dim=1)
    return F.one_hot(drawn, num_classes=logits.shape[1]).float()


def lotus_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, is_forget: torch.Tensor,
               soft_targets: torch.Tensor, retain_targets: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch of -sum_k t_k log softmax(student)_k, where t is `soft_targets` on forget
    samples (`is_forget` 1) and `retain_targets` on retain samples (None: the one-hot of the
    teacher's argmax)."""
    hard = (F.one_hot(teacher_logits.argmax(dim=1), num_classes=teacher_logits.shape[1]).float()
            if retain_targets is None else retain_targets)
    flag = is_forget.float().unsqueeze(1)
    targets = flag * soft_targets + (1 - flag) * hard
    return -(targets * F.log_softmax(student_logits, dim=1)).sum(dim=1).mean()


class LoTUS(UnlearningMethod):
    name = "lotus"
    label = "LoTUS"
    summary = "LoTUS: distil the frozen original, Gumbel-softened forget targets at an adaptive temperature"
    hyperparams = (
        Hyperparam("lr", float, 1e-4, 1e-8, 1.0, help="AdamW learning rate"),
        Hyperparam("epochs", int, 10, 1, 200, help="epochs over forget + retain subset (fewer when it stops)"),
        Hyperparam("batch_size", int, 128, 2, 4096, help="batch size of the mixed stream"),
        Hyperparam("weight_decay", float, 5e-4, 0.0, 1.0, help="AdamW weight decay"),
        Hyperparam("alpha", float, None, 0.0, 100.0, optional=True,
                   help=f"temperature slope: tau = exp(alpha x accuracy gap) (none = the authors': {RANDOM_ALPHA:g} "
                        f"random, {CLASSWISE_ALPHA:g} class-wise)"),
        Hyperparam("retain_fraction", float, 0.3, 0.0, 1.0, help="share of the retain set drawn once for the stream"),
        Hyperparam("gumbel", bool, True, help="Gumbel-softmax forget targets (false: plain softmax at tau)"),
        Hyperparam("retain_targets", str, "sample", choices=("sample", "argmax"),
                   help="retain targets: a class drawn from the teacher's output (authors) or its top class"),
    )

    @classmethod
    def documented_defaults(cls, scheme: str, dataset: str | None = None, sparsity: float = 0.0) -> dict:
        return {**super().documented_defaults(scheme, dataset, sparsity),
                "alpha": CLASSWISE_ALPHA if scheme == "class" else RANDOM_ALPHA}

    def setup(self, model, data) -> None:
        super().setup(model, data)
        self.teacher = copy_model(self.model).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        count = int(self.retain_fraction * len(data.retain_x))
        subset = torch.randperm(len(data.retain_x), generator=self.generator)[:count]
        self.stream_x = torch.cat([data.forget_x, data.retain_x[subset]])
        self.stream_y = torch.cat([data.forget_y, data.retain_y[subset]])
        self.stream_forget = torch.cat([torch.ones(len(data.forget_x)), torch.zeros(count)])
        self.acc_val = 0.0 if data.classwise else fraction_correct(self.teacher, data.val_x, data.val_y, data.device)
        self.slope = self.alpha if self.alpha is not None else (CLASSWISE_ALPHA if data.classwise else RANDOM_ALPHA)
        self.stopped = False

    def run_epoch(self, epoch: int) -> dict[str, float]:
        d = self.data
        acc_forget = fraction_correct(self.model, d.forget_x, d.forget_y, d.device)
        if self.stopped or acc_forget - self.acc_val <= STOP_BELOW:
            self.stopped = True
            return {"acc_forget": acc_forget, "stopped": 1.0}
        tau = temperature(self.slope, acc_forget, self.acc_val)
        self.model.train()
        order = torch.randperm(len(self.stream_x), generator=self.generator)
        total, steps = 0.0, 0
        starts = range(0, len(order), self.batch_size)
        for start in tracked(starts, len(starts), f"lotus epoch {epoch + 1}", "batch"):
            idx = order[start:start + self.batch_size]
            x = augment_batch(self.stream_x[idx], d.augmentation, self.generator).to(d.device)
            is_forget = self.stream_forget[idx].to(d.device)
            with torch.no_grad():
                teacher_logits = self.teacher(x)
            soft = (gumbel_softmax(teacher_logits, tau, self.generator) if self.gumbel
                    else F.softmax(teacher_logits / tau, dim=-1))
            drawn = sampled_one_hot(teacher_logits, self.generator) if self.retain_targets == "sample" else None
            loss = lotus_loss(self.model(x), teacher_logits, is_forget, soft, drawn)
            check_finite(loss, f"lotus epoch {epoch + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total, steps = total + loss.item(), steps + 1
        return {"acc_forget": acc_forget, "temperature": tau, "loss": total / max(steps, 1), "stopped": 0.0}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "stopped": self.stopped}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.stopped = bool(state.get("stopped", False))
