"""A run folder: everything needed to rebuild and re-check one unlearning run.

Files: `config.json` (experiment + method + hyperparameters), `metrics.json`, `model.pt`
(plain state dict, masks folded in), `masks.pt` (sparse runs), `splits.npz` (retain, forget,
val, test, test_forget index arrays), `margins.npz` (per-example margins on forget, retain and
test, float16, in the splits' order; `study.evaluation.margins`). The folder is written under a temporary name and
renamed when complete, so a crash never leaves a folder that looks finished.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from study.core.data import ImageDataset, load_dataset
from study.core.errors import UserError
from study.core.models import Defender, load_model_files, save_model_files
from study.core.splits import Splits
from study.core.staging import staged_folder
from study.evaluation.margins import margins_bytes
from study.experiment.config import ExperimentConfig


def write_run_folder(out: Path, model: torch.nn.Module, splits: Splits, config: dict, metrics: dict,
                     overwrite: bool = False, margins: dict | None = None) -> Path:
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"output folder {out} already exists; pass --overwrite or choose another --out")
    with staged_folder(out) as staging:
        save_model_files(staging, model)
        splits.save(staging / "splits.npz")
        (staging / "config.json").write_text(json.dumps(config, indent=2, default=str))
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
        if margins is not None:
            (staging / "margins.npz").write_bytes(margins_bytes(margins))
    return out


@dataclass
class LoadedRun:
    """What `load_run` returns: enough to recompute every metric without the project's metric code.

    `data.train_x[splits.retain]` etc. are the exact tensors the model consumes (normalised).
    """

    model: Defender
    splits: Splits
    data: ImageDataset
    experiment: ExperimentConfig
    method: str
    params: dict
    metrics: dict


def read_run_json(folder: str | Path) -> tuple[dict, dict]:
    """A run folder's `config.json` and `metrics.json` (empty when the run recorded none), parsed;
    a folder without config.json or with corrupted JSON is a UserError."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder} is not a run folder (no config.json)")
    try:
        config = json.loads((folder / "config.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").exists() else {}
    except json.JSONDecodeError as err:
        raise UserError(f"{folder}: corrupted JSON ({err})") from err
    if not isinstance(config, dict) or not isinstance(metrics, dict):
        raise UserError(f"{folder}: config.json and metrics.json must each hold a JSON object")
    return config, metrics


def load_run(path: str | Path) -> LoadedRun:
    """Load a run folder written by `python -m study.run --out PATH`.

    Returns the model in eval mode (masks applied), the split indices (retain, forget, val,
    test, test_forget), the train/test tensors as the model consumes them, the configs and
    the recorded metrics.
    """
    folder = Path(path)
    config, metrics = read_run_json(folder)
    experiment = ExperimentConfig.from_dict(config["experiment"])
    data = load_dataset(experiment.dataset, experiment.data_root, download=False)
    splits = Splits.load(folder / "splits.npz")
    model = load_model_files(folder, experiment.model, data.image_shape[0], data.num_classes)
    return LoadedRun(model, splits, data, experiment, config.get("method", ""), config.get("params", {}), metrics)
