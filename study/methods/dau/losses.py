"""DAU's losses as small pure functions that mirror the paper's equations.

Symbols follow the paper: f = penultimate features, C = cross-correlation matrix between the
standardised validation and forget features, A = the attacker's membership logits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MEMBER, NON_MEMBER = 1, 0
BT_LAMBDA_OFFDIAG = 5e-3  # Zbontar et al.'s recommended off-diagonal weight
BT_EPS = 1e-5  # as in BatchNorm1d(affine=False), which Barlow Twins uses to standardise


def standardise(features: torch.Tensor, eps: float = BT_EPS) -> torch.Tensor:
    """Per-dimension over the batch: subtract the mean, divide by the (biased) std."""
    mean = features.mean(dim=0, keepdim=True)
    var = features.var(dim=0, unbiased=False, keepdim=True)
    return (features - mean) / torch.sqrt(var + eps)


def cross_correlation(f_val: torch.Tensor, f_forget: torch.Tensor) -> torch.Tensor:
    """C_ij = (1/N) sum_n v_ni f_nj, the n-th validation sample paired with the n-th forget sample."""
    if f_val.shape != f_forget.shape:
        raise ValueError(f"Barlow Twins needs equal-sized batches, got {tuple(f_val.shape)} and {tuple(f_forget.shape)}")
    return standardise(f_val).T @ standardise(f_forget) / f_val.shape[0]


def barlow_twins_loss(f_forget: torch.Tensor, f_val: torch.Tensor, lambda_offdiag: float = BT_LAMBDA_OFFDIAG) -> torch.Tensor:
    """BT = sum_i (1 - C_ii)^2 + lambda_off * sum_{i != j} C_ij^2  (paper eq. 2)."""
    c = cross_correlation(f_val, f_forget)
    on_diag = (1 - torch.diagonal(c)).pow(2).sum()
    off_diag = (c - torch.diag_embed(torch.diagonal(c))).pow(2).sum()
    return on_diag + lambda_offdiag * off_diag


def attacker_loss(logits_forget: torch.Tensor, logits_val: torch.Tensor) -> torch.Tensor:
    """The attacker's cross-entropy: forget samples are members (1), validation non-members (0)."""
    logits = torch.cat([logits_forget, logits_val])
    targets = torch.cat([torch.full((len(logits_forget),), MEMBER), torch.full((len(logits_val),), NON_MEMBER)])
    return F.cross_entropy(logits, targets.to(logits.device))


def defender_adversarial_loss(logits_forget: torch.Tensor, logits_val: torch.Tensor,
                              non_saturating: bool = True) -> torch.Tensor:
    """L_adv for the defender. Non-saturating (SPEC.md's default, as in the reference code):
    the attacker's cross-entropy with labels swapped (forget -> non-member, val -> member).
    Saturating: minus the attacker's own loss (the literal min-max of eq. 1)."""
    if non_saturating:
        return attacker_loss(logits_val, logits_forget)
    return -attacker_loss(logits_forget, logits_val)
