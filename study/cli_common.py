"""Command-line pieces shared by `study.run`, `study.tune`, `study.audit` and the benchmarks."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from study.core.cache import DEFAULT_CACHE_DIR
from study.experiment.config import PRESETS
from study.core.data import DATASETS
from study.core.errors import UserError
from study.core.models import MODELS


def add_experiment_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("experiment (a preset, then overrides)")
    group.add_argument("--preset", default=None, choices=sorted(PRESETS),
                       help="named regime: dataset, model, recipe, split sizes (default: digits)")
    group.add_argument("--dataset", default=None, help=f"one of {', '.join(DATASETS)} (default: the preset's)")
    group.add_argument("--model", default=None, help=f"one of {', '.join(MODELS)} (default: the preset's)")
    group.add_argument("--forget", default=None, help="random:<percent> or class:<index> (default random:10)")
    group.add_argument("--seed", type=int, default=None, help="split, initialisation and unlearning seed (default 0)")
    group.add_argument("--sparsity", type=float, default=None,
                       help="one-shot magnitude pruning of the original, e.g. 0.95 (default 0 = dense)")
    group.add_argument("--epochs", type=int, default=None, help="training recipe epochs for original/Retrain")
    group.add_argument("--train-size", type=int, default=None, help="fixed seeded training subset size")
    group.add_argument("--val-size", type=int, default=None, help="validation (non-member) set size")
    group.add_argument("--data-root", default=None, help="folder with the dataset files (Fashion-MNIST IDX, CIFAR archive)")
    group.add_argument("--download", action="store_true", help="download CIFAR where a network exists")
    group.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR,
                       help="artifact cache for original/Retrain models (env DAU_CACHE_DIR; default %(default)s)")
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    group.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")


def experiment_overrides(args: argparse.Namespace) -> dict:
    """The experiment fields given on the command line (None = not given)."""
    return {"dataset": args.dataset, "model": args.model, "forget": args.forget, "seed": args.seed,
            "sparsity": args.sparsity, "epochs": args.epochs, "train_size": args.train_size,
            "val_size": args.val_size, "data_root": args.data_root, "download": args.download or None}


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for, but no CUDA device is available")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto")
    return name


def set_threads(threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise UserError("--threads must be at least 1")
        torch.set_num_threads(threads)
    else:
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`key=value` strings -> dict; values are coerced later by each method's declared types."""
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"malformed --param {pair!r}; expected key=value")
        key, value = pair.split("=", 1)
        params[key.strip()] = value.strip()
    return params
