"""What an unlearning method may touch: retain, forget and validation tensors (never test), and
the context it needs to build or load artifacts shared by every run on the same original."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from study.core.cache import ArtifactCache


@dataclass
class SharedContext:
    """Where a method keeps artifacts shared by every run on one original model (a pre-trained
    attacker, say): the artifact cache and the original's key, the original itself, and its
    members (the whole training set: retain and forget) and non-members (validation)."""

    cache: ArtifactCache
    original_key: dict
    original: torch.nn.Module
    members: tuple[torch.Tensor, torch.Tensor]
    non_members: tuple[torch.Tensor, torch.Tensor]
    num_classes: int
    pixel_std: tuple[float, ...]
    device: str
    log: Callable[[str], None] = print


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
    shared: SharedContext | None = None  # None: no cache, a method builds what it shares for itself
    dataset: str = ""  # the experiment's dataset and sparsity, for methods whose defaults depend on the
    sparsity: float = 0.0  # setting (DAU follows the reference command of each)
    pixel_mean: tuple[float, ...] = (0.0,)  # per-channel mean of the normalisation (AMUN clamps to [0, 1])

    def pixel_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised values of pixel 0 and pixel 1 per channel, shaped (1, C, 1, 1), on the device."""
        mean = torch.tensor(self.pixel_mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.pixel_std, dtype=torch.float32).view(1, -1, 1, 1)
        return ((0 - mean) / std).to(self.device), ((1 - mean) / std).to(self.device)
