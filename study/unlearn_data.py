"""What an unlearning method may touch: retain, forget and validation tensors (never test),
and where DAU finds its pre-trained attacker."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch

if TYPE_CHECKING:
    from study.methods.attacker import AttackerSettings, PretrainedAttacker


@dataclass
class UnlearnData:
    """The tensors an unlearning method may touch: retain, forget and validation (never test)."""

    retain_x: torch.Tensor
    retain_y: torch.Tensor
    forget_x: torch.Tensor
    forget_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int
    augmentation: str
    seed: int
    device: str = "cpu"
    classwise: bool = False  # a whole class is forgotten (methods may follow a class-wise protocol)
    pixel_std: tuple[float, ...] = (1.0,)  # per-channel std of the normalisation (noise is given on [0, 1])
    # DAU's pre-trained attacker for given settings, from the artifact cache; None: DAU pre-trains its own
    pretrained_attacker: Callable[[AttackerSettings], PretrainedAttacker] | None = None
