"""Method configuration files: `method` and `params` (bench/configs), plus `experiment` and `source`
when `study.export` or `study.compare` wrote them, or a run folder's `config.json`. One reader and
one writer for all of them."""
from __future__ import annotations

from pathlib import Path

import yaml

from study.core.errors import UserError, yaml_problem
from study.core.staging import write_file_atomically


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
        raise UserError(f"{what}: {file} is not valid YAML: {yaml_problem(err)}") from None
    if not isinstance(loaded, dict) or not ("method" in loaded or "experiment" in loaded):
        raise UserError(f"{what}: {file} must hold a mapping with 'method' and 'params' (and 'experiment', "
                        "unless the flags give it)")
    if not isinstance(loaded.get("params") or {}, dict):
        raise UserError(f"{what}: {file}: 'params' must be a mapping of hyperparameter names to values")
    return loaded


def write_config(config: dict, target: Path) -> None:
    """Write a config all at once (a partial file never looks like a finished one)."""
    write_file_atomically(target, yaml.safe_dump(config, sort_keys=False))
