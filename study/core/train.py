"""The training recipe shared by the original model, Retrain, and the sparse (OMP) original.

One recipe object, every constant named once: SGD with Nesterov momentum, weight decay,
a one-cycle learning rate (torch's `OneCycleLR`), optional label smoothing and augmentation.
Retrain uses exactly the same recipe on the retain set, so the gap between the two is due
to the forget set alone.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from study.core.data import AUGMENTATIONS, augment_batch
from study.core.errors import TrainingDiverged, UserError
from study.core.precision import set_model_precision
from study.core.progress import Progress


@dataclass(frozen=True)
class Recipe:
    epochs: int = 30
    batch_size: int = 128
    peak_lr: float = 0.1  # one-cycle peak; SPEC.md's proxy recipe
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    augmentation: str | None = None  # "none" or "crop_flip"; None: the dataset's own (crop+flip on CIFAR)

    def as_dict(self) -> dict:
        values = asdict(self)
        if values["augmentation"] is None:
            # left out when it is the dataset's own, so records and cache keys written before the
            # field existed still name the same recipe
            del values["augmentation"]
        return values

    def validate(self) -> "Recipe":
        if self.epochs < 1 or self.batch_size < 1 or self.peak_lr <= 0:
            raise UserError(f"invalid training recipe {self.as_dict()}: epochs, batch size and lr must be positive")
        if self.augmentation is not None and self.augmentation not in AUGMENTATIONS:
            raise UserError(f"unknown augmentation {self.augmentation!r}; choose one of {', '.join(AUGMENTATIONS)}")
        return self


def check_finite(loss: torch.Tensor, where: str) -> None:
    """Abort the run with a clear message instead of saving a model trained on NaNs."""
    if not math.isfinite(float(loss.detach())):
        raise TrainingDiverged(f"{where}: loss became {float(loss)}; lower the learning rate")


def train_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, seed: int,
                augmentation: str = "none", device: str = "cpu", desc: str | None = None,
                precision: str = "fp32") -> tuple[nn.Module, float]:
    """Train `model` in place on (x, y) with `recipe`; returns the model and wall seconds. With `desc`,
    progress is shown per step (study.core.progress); `precision` bf16 runs the forwards under autocast."""
    recipe.validate()
    set_model_precision(model, precision).to(device).train()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.peak_lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    steps_per_epoch = math.ceil(len(x) / recipe.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.peak_lr, epochs=recipe.epochs,
                                                    steps_per_epoch=steps_per_epoch)
    progress = Progress(recipe.epochs * steps_per_epoch, desc, "step") if desc else None
    start = time.perf_counter()
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(x), generator=generator)
        running = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
            inputs = augment_batch(x[idx], augmentation, generator).to(device)
            loss = F.cross_entropy(model(inputs), y[idx].to(device), label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += loss.item()
            if progress is not None:
                progress.update(epoch=epoch + 1, loss=running / (step + 1))
        check_finite(torch.tensor(running), f"training epoch {epoch + 1}")
    if progress is not None:
        progress.close()
    model.eval()
    return model, time.perf_counter() - start
