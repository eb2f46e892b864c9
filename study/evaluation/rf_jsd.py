"""RF-JSD, LoTUS's retrain-free metric (Spartalis et al., CVPR 2025): how far the unlearned model's
posteriors on the forget set are from the original's on data it never trained on, class by class.

For each class present in the forget set: the unlearned model's mean softmax over the forget
samples of that class, and the original model's mean softmax over held-out samples of that class.
RF-JSD is the Jensen-Shannon divergence between the two stacked class-mean matrices, computed as
the authors' code computes it: each matrix clamped to [1e-8, 1] and normalised to sum 1 as a whole,
m their mean, and 0.5 (KL(m || p) + KL(m || q)) summed over entries and divided by the number of
classes (PyTorch's `kl_div(p.log(), m, "batchmean")`). Lower is better: 0 when the unlearned model
treats its forget set as the original treats unseen data.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

EPSILON = 1e-8


def class_means(probs: torch.Tensor, labels: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """The mean row of `probs` per class in `classes`, each row normalised to sum 1."""
    rows = torch.stack([probs[labels == k].mean(dim=0) for k in classes])
    return rows / rows.sum(dim=1, keepdim=True)


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> float:
    """The authors' JSDiv of two (classes x classes) matrices (see the module docstring)."""
    p = torch.clamp(p, EPSILON, 1.0)
    q = torch.clamp(q, EPSILON, 1.0)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)
    return float(0.5 * (F.kl_div(p.log(), m, reduction="batchmean") + F.kl_div(q.log(), m, reduction="batchmean")))


def rf_jsd(unlearned_forget: torch.Tensor, forget_labels: torch.Tensor, original_held_out: torch.Tensor,
           held_out_labels: torch.Tensor) -> float:
    """RF-JSD from softmax outputs: the unlearned model's on the forget set, the original's on held-out data;
    classes of the forget set without a held-out sample are left out."""
    classes = [k for k in sorted(set(forget_labels.tolist())) if bool((held_out_labels == k).any())]
    if not classes:
        return float("nan")
    return js_divergence(class_means(unlearned_forget, forget_labels, classes),
                         class_means(original_held_out, held_out_labels, classes))
