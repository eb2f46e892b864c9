"""Command-line pieces shared by `study.run`, `study.tune`, `study.audit` and the benchmarks."""
from __future__ import annotations

import argparse
import os
from collections.abc import Collection

import torch

from study.core.cache import DEFAULT_CACHE_DIR
from study.core.errors import UserError
from study.experiment.config import EXPERIMENT_FIELDS, PRESETS


def add_experiment_arguments(parser: argparse.ArgumentParser, *, exclude: Collection[str] = (),
                             preset_default: str | None = None) -> None:
    """The experiment flags every command shares, generated from `EXPERIMENT_FIELDS`, plus the
    preset and where the machine keeps and runs things.

    `exclude` names fields a command declares its own way (a benchmark's lists of forget schemes,
    seeds or sparsities); `preset_default` is the preset when none is given (digits otherwise).
    """
    unknown = set(exclude) - {field.name for field in EXPERIMENT_FIELDS}
    if unknown:
        raise ValueError(f"not experiment fields: {sorted(unknown)}")
    shared = tuple(field.name for field in EXPERIMENT_FIELDS if field.name not in exclude)
    parser.set_defaults(shared_experiment_fields=shared)  # what `experiment_overrides` reads back
    group = parser.add_argument_group("experiment (a preset, then overrides)")
    group.add_argument("--preset", default=preset_default, choices=sorted(PRESETS),
                       help="named regime: dataset, model, recipe, split sizes "
                            f"(default: {preset_default or 'digits'})")
    for field in EXPERIMENT_FIELDS:
        if field.name not in shared:
            continue
        if field.kind is bool:
            group.add_argument(field.flag, action="store_true", help=field.help)
        else:
            group.add_argument(field.flag, type=field.kind, default=None, help=field.help)
    group.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR,
                       help="artifact cache for original/Retrain models (env DAU_CACHE_DIR; default %(default)s)")
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    group.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")


def experiment_overrides(args: argparse.Namespace) -> dict:
    """The experiment fields given on the command line (None = not given); fields the command
    declared its own way (`exclude` above) are left out."""
    return {field.name: (getattr(args, field.name) or None) if field.kind is bool else getattr(args, field.name)
            for field in EXPERIMENT_FIELDS if field.name in args.shared_experiment_fields}


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
