"""The Ray Tune Trainable that wraps one unlearning run, for every method alike.

Class API so a trial can checkpoint between epochs and resume where it stopped. `setup`
reads the cached original and Retrain models (never retrains them per trial), `step` runs
one epoch of the method (DAU: attacker pre-training happens inside the first epoch) and
reports `avg_disparity` (the objective), UA, RA, TA, MIA-Efficacy, the attacker's own
accuracy, the unlearning run time so far and the losses.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from ray import tune

from study.cache import ArtifactCache
from study.config import ExperimentConfig
from study.methods import build_method
from study.pipeline import prepare

STATE_FILE = "trial_state.pt"


def trial_device(gpus_per_trial: float) -> str:
    return "cuda" if gpus_per_trial > 0 and torch.cuda.is_available() else "cpu"


class UnlearningTrainable(tune.Trainable):
    """config = {"experiment": {...}, "method": name, "params": {...}, "cache_dir": path,
    "threads": int, "gpus": float}"""

    def setup(self, config: dict) -> None:
        torch.set_num_threads(max(1, int(config.get("threads", 1))))
        self.device = trial_device(float(config.get("gpus", 0)))
        self.experiment = ExperimentConfig.from_dict(config["experiment"])
        self.method = build_method(config["method"], config.get("params") or {})
        self.prepared = prepare(self.experiment, ArtifactCache(config["cache_dir"]), device=self.device,
                                log=lambda message: None)
        if not getattr(self.method, "from_cache", False):
            self.method.setup(self.prepared.fresh_original(), self.prepared.unlearn_data())
        self.epochs_done = 0
        self.run_seconds = 0.0

    def step(self) -> dict:
        logs: dict = {}
        if getattr(self.method, "from_cache", False):  # Retrain: the cached gold standard
            metrics = dict(self.prepared.retrain_metrics)
            self.run_seconds = float(self.prepared.retrain_seconds)
            total_epochs = 0
        else:
            total_epochs = self.method.num_epochs
            if self.epochs_done < total_epochs:
                start = time.perf_counter()
                logs = self.method.run_epoch(self.epochs_done)
                self.run_seconds += time.perf_counter() - start
                self.epochs_done += 1
            metrics = self.prepared.evaluate(self.method.model if total_epochs else self.prepared.original)
        result = {**metrics, **{k: v for k, v in logs.items() if isinstance(v, (int, float))},
                  "run_seconds": self.run_seconds, "epoch": self.epochs_done,
                  "retrain_seconds": self.prepared.retrain_seconds,
                  "time_ratio_to_retrain": self.run_seconds / self.prepared.retrain_seconds,
                  tune.result.DONE: self.epochs_done >= total_epochs}
        for name, value in (self.prepared.retrain_metrics or {}).items():
            result[f"retrain/{name}"] = value
        return result

    def save_checkpoint(self, checkpoint_dir: str) -> dict | None:
        state = {"epochs_done": self.epochs_done, "run_seconds": self.run_seconds}
        if self.method.model is not None:
            state["method"] = self.method.state_dict()
        torch.save(state, Path(checkpoint_dir) / STATE_FILE)
        return None

    def load_checkpoint(self, checkpoint: str | dict | None) -> None:
        checkpoint_dir = checkpoint if isinstance(checkpoint, str) else None
        if checkpoint_dir is None:
            return
        state = torch.load(os.path.join(checkpoint_dir, STATE_FILE), map_location=self.device, weights_only=False)
        self.epochs_done, self.run_seconds = state["epochs_done"], state["run_seconds"]
        if "method" in state:
            self.method.load_state_dict(state["method"])
