"""Command-line pieces shared by `study.run`, `study.tune`, `study.audit` and the benchmarks."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
import yaml

from study.cache import DEFAULT_CACHE_DIR
from study.config import PRESETS
from study.data import DATASETS
from study.errors import UserError
from study.models import MODELS


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


def read_method_config(path: str, what: str) -> dict:
    """A config file as a mapping: `method` and `params` (as in bench/configs, or `study.export`'s
    output, which adds `experiment`), or a run folder's `config.json`. The one reader of such files.

    A missing file, invalid YAML, a file that is not a mapping, one with neither `method` nor
    `experiment`, or `params` that are not a mapping end in one `UserError` that names the option
    it came from (`what`), before any training.
    """
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{what}: {file} not found")
    try:
        loaded = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{what}: {file} is not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(loaded, dict) or not ("method" in loaded or "experiment" in loaded):
        raise UserError(f"{what}: {file} must hold a mapping with 'method' and 'params' (and 'experiment', "
                        "unless the flags give it)")
    if not isinstance(loaded.get("params") or {}, dict):
        raise UserError(f"{what}: {file}: 'params' must be a mapping of hyperparameter names to values")
    return loaded
