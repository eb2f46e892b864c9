"""Trained models as cached artifacts: the one way every role gets its model.

The original (and its OMP-pruned form), Retrain, the audit's K originals and retrained models
and the held-out judges' reference models are all "train, or load, a model of this experiment on
these training indices from this seed". `trained_model` does it: the key names the role, the
experiment's dataset, model and recipe, the seed, a digest of the training indices and a digest
of the code that shapes a trained model, so a change to that code trains afresh rather than
reusing a model the new code would not produce. Files are written by `models.save_model_files`
plus `meta.json`: the training seconds and the torch threads they were measured with, since a
ratio to Retrain's time means little when the two ran on different thread counts.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from study.core.cache import ArtifactCache, array_digest, source_digest, state_digest
from study.core.data import ImageDataset
from study.core.errors import UserError
from study.core.models import Defender, build_model, load_model_files, save_model_files
from study.core.precision import set_model_precision
from study.core.progress import Log
from study.core.train import train_model
from study.experiment.config import ExperimentConfig


@functools.cache
def training_code_digest() -> str:
    """Digest of the code that shapes a trained model (data, models, pruning, the recipe)."""
    from study.core import data, models, pruning, train

    return source_digest(data, models, pruning, train)


@dataclass
class TrainedModel:
    model: Defender
    seconds: float  # training time, as recorded when it was built
    key: dict
    folder: Path
    threads: int | None = None  # torch CPU threads it was trained with; None for models cached before it was kept
    digest: str = ""  # of its weights (`weights_digest`): what a row measured on it records


def weights_digest(model: torch.nn.Module) -> str:
    """The digest of a model's parameters and buffers (`state_digest`). Rows record it, so that a
    table can tell which reference models each of its rows was measured against."""
    return state_digest(model.state_dict())


def model_key(config: ExperimentConfig, role: str, train_idx: np.ndarray, seed: int,
              data_source: str | None = None, **extra) -> dict:
    """A trained model's cache key; `data_source` (`ImageDataset.source`) names the files the images came
    from where a dataset can be read from more than one (CIFAR-10's pickled release or a JPEG copy)."""
    source = {"data": data_source} if data_source and data_source != config.dataset else {}
    if config.precision != "fp32":  # a bf16-trained model is another artifact (fp32 keys are as they were)
        source["precision"] = config.precision
    return {"role": role, "dataset": config.dataset, "model": config.model, "recipe": config.recipe.as_dict(),
            "seed": seed, "train": array_digest(train_idx), "code": training_code_digest(), **source, **extra}


def trained_model(cache: ArtifactCache, config: ExperimentConfig, data: ImageDataset, role: str,
                  train_idx: np.ndarray, seed: int, device: str = "cpu", log: Log | None = None,
                  init: Callable[[], Defender] | None = None, **extra_key) -> TrainedModel:
    """The model of `role` trained with the experiment's recipe on `train_idx` from `seed` (a fresh
    initialisation, or `init()`), from the cache or trained now and stored there."""
    key = model_key(config, role, train_idx, seed, data.source, **extra_key)
    in_channels = data.image_shape[0]

    def builder(folder: Path) -> None:
        if log:
            log(f"training {role} ({config.model} on {len(train_idx)} {config.dataset} samples, "
                f"{config.recipe.epochs} epochs) ...")
        start = init() if init is not None else build_model(config.model, in_channels, data.num_classes, seed)
        model, seconds = train_model(start, data.train_x[train_idx], data.train_y[train_idx], config.recipe, seed=seed,
                                     augmentation=data.augmentation, device=device,
                                     desc=f"training {role}", precision=config.precision)
        save_model_files(folder, model)
        meta = {"train_seconds": seconds, "threads": torch.get_num_threads(), "device": str(device),
                "precision": config.precision}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))

    folder, built = cache.get_or_build(key, builder)
    if log and not built:
        log(f"{role}: reusing cached model {folder}")
    model = set_model_precision(load_model_files(folder, config.model, in_channels, data.num_classes),
                                config.precision).to(device)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        seconds, threads = float(meta["train_seconds"]), meta.get("threads")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"cached model {folder} has no readable meta.json ({type(err).__name__}); delete that "
                        "folder to train it again") from None
    return TrainedModel(model, seconds, key, folder, int(threads) if threads is not None else None,
                        weights_digest(model))
