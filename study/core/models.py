"""Defender models: every one exposes `features(x)` (penultimate representation) and a linear `head`.

`features` is what DAU's Barlow Twins term compares between forget and validation batches;
`forward(x) = head(features(x))`. ResNet-18 is the CIFAR form the paper uses (3x3 stem, no
max-pool); the narrow ResNet and the 3-block CNN train in minutes on 2 CPU cores.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from study.core.errors import UserError
from study.core.pruning import apply_masks, masks_of, plain_state_dict


class Defender(nn.Module):
    """Base: a feature extractor followed by one linear classification layer.

    `autocast_dtype` (None: fp32; set by `study.core.precision.set_model_precision`) runs `forward`
    under autocast and returns fp32 logits: mixed precision covers the model's own forward and
    nothing else, so losses, backward passes and optimiser steps stay outside it, as PyTorch asks.
    A plain attribute, so `copy.deepcopy` (every model copy here) keeps it.
    """

    head: nn.Linear
    autocast_dtype: torch.dtype | None = None

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.autocast_dtype is None:
            return self.head(self.features(x))
        with torch.autocast(device_type=x.device.type, dtype=self.autocast_dtype):
            logits = self.head(self.features(x))
        return logits.float()

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(x)
        return self.head(feats), feats


class SmallCNN(Defender):
    """Three conv blocks (conv-BN-ReLU, 2x2 max-pool), global average pool, linear head.

    Widths 32/64/128 as in SPEC.md's memorising Fashion-MNIST proxy.
    """

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            layers += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
            previous = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(previous, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet18(Defender):
    """ResNet-18 in its CIFAR form: 3x3 stride-1 stem, no max-pool, stages of 2 basic blocks."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        in_planes = width
        for stage, planes in enumerate((width, 2 * width, 4 * width, 8 * width)):
            for block in range(2):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Linear(in_planes, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean(dim=(2, 3))


MODELS = {
    "cnn": lambda c, k: SmallCNN(c, k),
    "resnet18": lambda c, k: CifarResNet18(c, k, width=64),
    "resnet18-narrow": lambda c, k: CifarResNet18(c, k, width=16),
}


def build_model(name: str, in_channels: int, num_classes: int, seed: int | None = None) -> Defender:
    """Build a freshly initialised model; `seed` makes the initialisation reproducible."""
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if seed is None:
        return MODELS[name](in_channels, num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS[name](in_channels, num_classes)


def save_model_files(folder: Path, model: nn.Module) -> None:
    """`model.pt` (a plain state dict, masks folded in) and, for a pruned model, `masks.pt`."""
    torch.save(plain_state_dict(model), Path(folder) / "model.pt")
    masks = masks_of(model)
    if masks:
        torch.save(masks, Path(folder) / "masks.pt")


def load_model_files(folder: Path, model_name: str, in_channels: int, num_classes: int) -> Defender:
    """Rebuild a model from `model.pt` and optional `masks.pt`; one clear error if they are corrupted."""
    folder = Path(folder)
    model = build_model(model_name, in_channels, num_classes)
    try:
        state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        if (folder / "masks.pt").exists():
            apply_masks(model, torch.load(folder / "masks.pt", map_location="cpu", weights_only=True))
    except FileNotFoundError as err:
        raise UserError(f"model file missing: {err.filename}") from err
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, AttributeError, pickle.UnpicklingError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot load model from {folder}: corrupted or incompatible file ({first_line})") from err
    return model.eval()

