"""ReGUn (Reference-Guided Unlearning; Mirlach et al., arXiv 2603.11210): make the model's answers
on the forget set look like the original's answers on data it never saw, with no adversary.

Each step takes a forget batch and a retain batch. The target for the forget batch is one
distribution for the whole batch: the frozen original's softmax (at `temperature`) on held-out
images, averaged over a held-out batch. The loss is
    forget_weight x KL(target || softmax(student(forget) / T)) + retain_weight x CE(student(retain)),
with forget_weight = 1 - retain_weight. One epoch is one pass over the forget set.

As the authors' code runs it (jmirlach/ReGUn, `mul/regun.py` with `conf/unlearn/regun.yaml`, read
2026-12-06), the defaults here: SGD lr 0.01, momentum 0.9, no weight decay, 10 epochs, batch 128
(forget, retain and held-out alike), temperature 1, retain weight 0.5, the frozen original as the
reference, held-out batches drawn uniformly (`selector: uniform`) and probabilities averaged
(`aggregation: mean_probs`). The paper describes the reference as class-conditioned; the code's
default draws held-out batches without regard to class, and the code is followed.
`selector: class_informed` (their option) draws, for each forget sample, a held-out image of the
same class; their third option (nearest held-out neighbour in feature space) is not offered.

The held-out set here is the experiment's validation split, which the original never trained on
(their split holds out 10% of the training pool for it). The original's logits on it are computed
once, in eval mode and without augmentation, as their held-out loader serves it; every step then
samples rows of that cache, which equals running the frozen original on the sampled images.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from study.core.inference import predict_logits
from study.core.progress import tracked
from study.core.train import check_finite
from study.methods.base import BatchStream, Hyperparam, UnlearningMethod, sgd, shuffled_batches


def reference_target(heldout_logits: torch.Tensor, temperature: float, aggregation: str) -> torch.Tensor:
    """One distribution from a batch of the reference's held-out logits: the mean of their softmaxes
    ("mean_probs") or the softmax of their mean ("mean_logits"), at `temperature`."""
    if aggregation == "mean_logits":
        return F.softmax(heldout_logits.mean(dim=0) / temperature, dim=0)
    target = F.softmax(heldout_logits / temperature, dim=1).mean(dim=0)
    return target / target.sum()


def class_matched_rows(labels: torch.Tensor, heldout_labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each label, a random held-out row of the same class (any row where the class has none)."""
    rows = torch.empty(len(labels), dtype=torch.long)
    for cls in labels.unique():
        where = (labels == cls).nonzero().flatten()
        pool = (heldout_labels == cls).nonzero().flatten()
        if len(pool) == 0:
            pool = torch.arange(len(heldout_labels))
        rows[where] = pool[torch.randint(len(pool), (len(where),), generator=generator)]
    return rows


class ReGUn(UnlearningMethod):
    name = "regun"
    label = "ReGUn"
    summary = "ReGUn: KL from forget outputs to the frozen original's mean output on held-out data, plus retain CE"
    hyperparams = (
        Hyperparam("lr", float, 0.01, 1e-7, 10.0, help="learning rate (SGD, momentum 0.9, no weight decay)"),
        Hyperparam("epochs", int, 10, 1, 200, help="passes over the forget set"),
        Hyperparam("batch_size", int, 128, 1, 4096, help="forget, retain and held-out batch size"),
        Hyperparam("retain_weight", float, 0.5, 0.0, 1.0, help="weight of the retain CE (the KL gets 1 - it)"),
        Hyperparam("temperature", float, 1.0, 0.01, 100.0, help="softmax temperature of target and student"),
        Hyperparam("selector", str, "uniform", choices=("uniform", "class_informed"),
                   help="held-out rows per step: a uniform batch (authors' default) or one of each forget label"),
        Hyperparam("aggregation", str, "mean_probs", choices=("mean_probs", "mean_logits"),
                   help="the batch's target: mean of softmaxes (authors' default) or softmax of the mean logit"),
    )

    def setup(self, model, data) -> None:
        super().setup(model, data)
        self.heldout_logits = predict_logits(self.model, data.val_x, device=data.device).float()
        self.heldout_rows = BatchStream(torch.arange(len(data.val_x)), data.val_y, self.batch_size, self.generator)
        self.retain = BatchStream(data.retain_x, data.retain_y, self.batch_size, self.generator, data.device,
                                  data.augmentation)
        self.optimizer = sgd(self.model, self.lr, momentum=0.9, weight_decay=0.0)

    def target_for(self, forget_labels: torch.Tensor) -> torch.Tensor:
        """The distribution a forget batch is pulled toward, from the reference's held-out logits."""
        if self.selector == "class_informed":
            rows = class_matched_rows(forget_labels.cpu(), self.data.val_y, self.generator)
        else:
            rows, _ = self.heldout_rows.next()
        logits = self.heldout_logits[rows.cpu()].to(self.data.device)
        return reference_target(logits, self.temperature, self.aggregation)

    def run_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        d = self.data
        totals = {"kl": 0.0, "retain_ce": 0.0}
        steps = 0
        batches = shuffled_batches(d.forget_x, d.forget_y, self.batch_size, self.generator, d.augmentation, d.device)
        for fx, fy in tracked(batches, math.ceil(len(d.forget_x) / self.batch_size), f"regun epoch {epoch + 1}",
                              "batch"):
            target = self.target_for(fy).unsqueeze(0).expand(len(fx), -1)
            kl = F.kl_div(F.log_softmax(self.model(fx) / self.temperature, dim=1), target, reduction="batchmean")
            rx, ry = self.retain.next()
            retain_ce = F.cross_entropy(self.model(rx), ry)
            loss = (1 - self.retain_weight) * kl + self.retain_weight * retain_ce
            check_finite(loss, f"regun epoch {epoch + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            totals["kl"] += kl.item()
            totals["retain_ce"] += retain_ce.item()
            steps += 1
        return {key: value / max(steps, 1) for key, value in totals.items()}
