"""The Ray Tune Trainable that wraps one unlearning run, for every method alike.

Class API so a trial can checkpoint between epochs and resume where it stopped. `setup`
reads the cached original and Retrain models (never retrains them per trial), `step` runs
one epoch of the method (DAU: attacker pre-training happens inside the first epoch) and
reports `avg_disparity` (the objective), UA, RA, TA, MIA-Efficacy, the metric-based MIAs, the
attacker's own accuracy, the unlearning run time so far and the losses.

With `objective: retrain_free` the trial never builds or reads a Retrain model: it reports the
held-out attacks and `retrain_free_score` (study/heldout.py) instead of Avg. Disparity. With
`retrain_free_score: true` it reports both, so the two objectives can be compared afterwards.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from ray import tune

from study.cache import ArtifactCache
from study.config import ExperimentConfig
from study.errors import UserError
from study.heldout import RetrainFreeJudge
from study.methods import build_method
from study.pipeline import prepare

STATE_FILE = "trial_state.pt"


def trial_device(gpus_per_trial: float) -> str:
    return "cuda" if gpus_per_trial > 0 and torch.cuda.is_available() else "cpu"


class UnlearningTrainable(tune.Trainable):
    """config = {"experiment": {...}, "method": name, "params": {...}, "cache_dir": path,
    "threads": int, "gpus": float, "objective": "avg_disparity" | "retrain_free",
    "retrain_free_score": bool}"""

    def setup(self, config: dict) -> None:
        torch.set_num_threads(max(1, int(config.get("threads", 1))))
        self.device = trial_device(float(config.get("gpus", 0)))
        self.experiment = ExperimentConfig.from_dict(config["experiment"])
        self.method = build_method(config["method"], config.get("params") or {})
        retrain_free = config.get("objective", "avg_disparity") == "retrain_free"
        if retrain_free and getattr(self.method, "from_cache", False):
            raise UserError("the retrain-free objective cannot evaluate the retrain method itself")
        cache = ArtifactCache(config["cache_dir"])
        self.prepared = prepare(self.experiment, cache, device=self.device, need_retrain=not retrain_free,
                                log=lambda message: None)
        self.judge = (RetrainFreeJudge(self.prepared, cache)
                      if retrain_free or config.get("retrain_free_score") else None)
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
            model = self.method.model if total_epochs else self.prepared.original
            metrics = self.prepared.evaluate(model)
            # Every epoch, even when only logged: ASHA may stop a trial after any epoch, and a trial
            # without the score would drop out of the comparison of objectives (analysis.selection).
            if self.judge is not None:
                metrics.update(self.judge(model))
        retrain_seconds = self.prepared.retrain_seconds
        result = {**metrics, **{k: v for k, v in logs.items() if isinstance(v, (int, float))},
                  "run_seconds": self.run_seconds, "epoch": self.epochs_done,
                  tune.result.DONE: self.epochs_done >= total_epochs}
        if retrain_seconds:
            result.update(retrain_seconds=retrain_seconds, time_ratio_to_retrain=self.run_seconds / retrain_seconds)
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
