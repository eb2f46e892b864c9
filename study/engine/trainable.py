"""The Ray Tune Trainable that wraps one unlearning run, for every method alike.

Class API so a trial can checkpoint between steps and resume where it stopped. `setup`
reads the cached original and Retrain models (never retrains them per trial), `step` runs the
method's epochs up to the next one the scheduler reads (DAU loads its pre-trained attacker, built
by the driver, in `setup`) and reports `avg_disparity` (the objective), ToW, ToW-MIA, the gaps to
Retrain (`gap/*`), UA, RA, TA, MIA-Efficacy,
the metric-based MIAs, the attacker's own accuracy, the unlearning run time so far and the losses.

Which epochs are evaluated: an evaluation is not cheap at the proxy's scale (20,000 predictions
and an RBF SVM fitted on 18,000 confidences, longer than an epoch of fine-tuning at one thread:
`python bench/eval_cost.py --preset fmnist-proxy --threads 1`), and only some epochs' objectives
are ever read. study.tune passes `eval_milestones`:
ASHA's rungs (epochs 1, 2, 4, 8, …; ASHA ignores results between them) under ASHA, none under
FIFO; the method's last epoch is always evaluated. `--eval-every-epoch` passes none of this,
for per-epoch curves.

Where the experiment keeps a selection set (`select_size`, on in every preset) a trial is scored
on it: TA and MIA-Efficacy's non-members (the trial's and Retrain's alike) come from those
held-out training-pool images, never from the test set, so the reported test numbers are not
seen by the search (study.evaluation.evaluate's views).

With `objective: retrain_free` the trial never builds or reads a Retrain model: it reports the
held-out attacks and `retrain_free_score` (study/evaluation/heldout.py) instead of Avg. Disparity. With
`retrain_free_score: true` it reports both, so the two objectives can be compared afterwards.

Every result also carries where the trial's own time went, for `bench/tune_overhead.py`:
`timing/setup_s` (reading the cached artifacts and building the method, minus the method's own
timed set-up, which is unlearning and counted in `run_seconds`), `timing/epochs_s` (the
unlearning epochs run inside the steps), `timing/eval_s` (the evaluations, judge included) and
`timing/checkpoint_s` (the checkpoints saved before this result); sums over the trial's seeds.

Ray Tune runs each new trial in an actor process a finished trial left (`reuse_actors`):
`reset_config` sets the trial up afresh, and every set-up first puts torch's global generator
back to the state a new process starts with, so a trial draws what it would in a process of its
own (and what `study.run` draws outside Ray). Starting a process per trial (imports of torch,
Ray and the project) cost about 9 s per trial on 2 cores (docs/tune_overhead.md).

With `average_seeds: [0, 1, 2]` one trial runs its configuration once per seed (each seed its
own split, original, Retrain and method instance, each step running the same epochs for every seed) and
reports the mean of every metric over the seeds, plus `seed<k>/<metric>` and
`seed_std/<objective>`. A configuration tuned on one seed overfits that seed's split and
initialisation (docs/RESULTS.md, the earlier DAU variant's three-seed runs); averaging makes the objective a property of
the configuration rather than of one draw, at the cost of one run per seed.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from ray import tune

from study.core.cache import ArtifactCache
from study.core.errors import UserError
from study.core.progress import set_quiet
from study.engine.rows import cost_fields
from study.evaluation.heldout import RetrainFreeJudge
from study.evaluation.seeds import mean_over_seeds
from study.experiment.config import ExperimentConfig
from study.experiment.prepare import Prepared, prepare
from study.methods import build_method
from study.methods.base import UnlearningMethod
from study.records.checkpoint import (
    SeedState,
    TrialState,
    read_trial_state,
    write_trial_state,
)

FRESH_PROCESS_RNG = torch.get_rng_state()  # taken at import, before anything in this process draws


def trial_device(gpus_per_trial: float) -> str:
    return "cuda" if gpus_per_trial > 0 and torch.cuda.is_available() else "cpu"


@dataclass
class SeedRun:
    """One seed's share of a trial: its cached artifacts, its own method instance and judge."""

    seed: int
    prepared: Prepared
    method: UnlearningMethod
    judge: RetrainFreeJudge | None
    run_seconds: float = 0.0
    rng_state: torch.Tensor | None = None  # torch's global generator as this seed last left it

    @contextmanager
    def own_global_rng(self) -> Iterator[None]:
        """Give this seed torch's global generator as it left it, and keep what it leaves.

        Dropout (DAU's attacker) draws from the global generator, and the seeds of an averaged
        trial take turns epoch by epoch; without this, a seed's numbers would depend on the
        seeds stepped before it, and no single-seed run could reproduce its share. (On CUDA
        the device generator is shared the same way; that case is not isolated here.)
        """
        if self.rng_state is not None:
            torch.set_rng_state(self.rng_state)
        try:
            yield
        finally:
            self.rng_state = torch.get_rng_state()


class UnlearningTrainable(tune.Trainable):
    """config = {"experiment": {...}, "method": name, "method_module": module defining it (optional),
    "params": {...}, "cache_dir": path,
    "threads": int, "gpus": float, "objective": "avg_disparity" | "retrain_free",
    "retrain_free_score": bool, "average_seeds": [int, ...] (optional),
    "eval_milestones": [int, ...] | None (optional)}

    A step runs epochs up to the next epoch in `eval_milestones` (or the method's last epoch),
    evaluates there and reports, so `epoch` (not `training_iteration`) counts epochs. Without
    `eval_milestones` every epoch is a step and is evaluated."""

    def setup(self, config: dict) -> None:
        began = time.perf_counter()
        set_quiet(True)  # the study's progress table speaks for its trials
        torch.set_rng_state(FRESH_PROCESS_RNG)
        torch.set_num_threads(max(1, int(config.get("threads", 1))))
        self.device = trial_device(float(config.get("gpus", 0)))
        experiment = ExperimentConfig.from_dict(config["experiment"])
        seeds = [int(s) for s in (config.get("average_seeds") or [experiment.seed])]
        retrain_free = config.get("objective", "avg_disparity") == "retrain_free"
        cache = ArtifactCache(config["cache_dir"])
        self.seed_runs: list[SeedRun] = []
        for seed in seeds:
            method = build_method(config["method"], config.get("params") or {}, config.get("method_module"))
            if retrain_free and method.reference == "retrain":
                raise UserError("the retrain-free objective cannot evaluate the retrain method itself")
            prepared = prepare(ExperimentConfig.from_dict({**experiment.as_dict(), "seed": seed}), cache,
                               device=self.device, need_retrain=not retrain_free, log=lambda message: None)
            judge = RetrainFreeJudge(prepared, cache) if retrain_free or config.get("retrain_free_score") else None
            run = SeedRun(seed, prepared, method, judge)
            if method.reference != "retrain":
                with run.own_global_rng():
                    method.start(prepared.fresh_original(), prepared.unlearn_data(log=lambda message: None))
                run.run_seconds = method.setup_seconds
            self.seed_runs.append(run)
        self.epochs_done = 0
        milestones = config.get("eval_milestones")
        self.eval_milestones = None if milestones is None else {int(m) for m in milestones}
        self.epoch_seconds = self.eval_seconds = self.checkpoint_seconds = 0.0
        self.setup_seconds = time.perf_counter() - began - sum(run.run_seconds for run in self.seed_runs)

    def reset_config(self, new_config: dict) -> bool:
        """Take the next trial in this actor process: a fresh set-up for its configuration."""
        self.setup(new_config)
        return True

    @property
    def method(self) -> UnlearningMethod:
        """The first seed's method (the only one unless `average_seeds` is given)."""
        return self.seed_runs[0].method

    def _evaluates_after(self, epoch: int) -> bool:
        return self.eval_milestones is None or epoch in self.eval_milestones

    def _next_report_epoch(self, total_epochs: int) -> int:
        """The epoch this step runs up to: the next one whose objective the scheduler reads, or the last."""
        epoch = min(self.epochs_done + 1, total_epochs)
        while epoch < total_epochs and not self._evaluates_after(epoch):
            epoch += 1
        return epoch

    def _step_seed(self, run: SeedRun, until: int) -> dict:
        logs: dict = {}
        view = run.prepared.selection_view  # never the test set when the split keeps a selection set
        if run.method.reference == "retrain":  # the cached gold standard
            metrics = dict(run.prepared.reference_metrics(view))
            run.run_seconds = float(run.prepared.retrain_seconds)
        else:
            for epoch in range(self.epochs_done, min(until, run.method.num_epochs)):
                with run.own_global_rng():
                    logs = run.method.epoch(epoch)
                run.run_seconds += logs["seconds"]
                self.epoch_seconds += logs["seconds"]
            model = run.prepared.original if run.method.reference == "original" else run.method.model
            began = time.perf_counter()
            metrics = run.prepared.evaluate(model, view)
            # The judge too whenever the objective is evaluated: ASHA may stop a trial at any rung, and
            # a trial without the score would drop out of the comparison of objectives (analysis.selection).
            if run.judge is not None:
                metrics.update(run.judge(model))
            self.eval_seconds += time.perf_counter() - began
        artifacts = run.method.shared_artifact_seconds() if run.method.model is not None else {}
        digests = run.method.shared_artifact_digests() if run.method.model is not None else {}
        result = {**metrics, **{k: v for k, v in logs.items() if isinstance(v, (int, float))},
                  **cost_fields(run.prepared, run.run_seconds, artifacts, digests)}
        for name, value in (run.prepared.reference_metrics(view) or {}).items():
            result[f"retrain/{name}"] = value
        if self.device == "cuda":  # what a fractional GPU share must hold (bench/gpu_check.sh reads it)
            result["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        return result

    def step(self) -> dict:
        first = self.method
        total_epochs = 0 if first.reference == "retrain" else first.num_epochs
        until = self._next_report_epoch(total_epochs)
        per_seed = [self._step_seed(run, until) for run in self.seed_runs]
        self.epochs_done = max(self.epochs_done, until)
        result = mean_over_seeds(per_seed, [run.seed for run in self.seed_runs])
        result.update({"epoch": self.epochs_done, "timing/setup_s": self.setup_seconds,
                       "timing/epochs_s": self.epoch_seconds, "timing/eval_s": self.eval_seconds,
                       "timing/checkpoint_s": self.checkpoint_seconds,
                       tune.result.DONE: self.epochs_done >= total_epochs})
        return result

    def save_checkpoint(self, checkpoint_dir: str) -> dict | None:
        began = time.perf_counter()
        write_trial_state(checkpoint_dir, TrialState(self.epochs_done, [
            SeedState(run.seed, run.run_seconds, run.method.state_dict() if run.method.model is not None else None,
                      run.rng_state) for run in self.seed_runs]))
        self.checkpoint_seconds += time.perf_counter() - began
        return None

    def load_checkpoint(self, checkpoint: str | dict | None) -> None:
        checkpoint_dir = checkpoint if isinstance(checkpoint, str) else None
        if checkpoint_dir is None:
            return
        state = read_trial_state(checkpoint_dir, self.seed_runs[0].seed, map_location=self.device)
        if [entry.seed for entry in state.seeds] != [run.seed for run in self.seed_runs]:
            raise UserError(f"checkpoint in {checkpoint_dir} holds seeds {[e.seed for e in state.seeds]}, "
                            f"the trial runs {[run.seed for run in self.seed_runs]}")
        self.epochs_done = state.epochs_done
        for run, entry in zip(self.seed_runs, state.seeds):
            run.run_seconds = entry.run_seconds
            if entry.rng_state is not None:  # absent in checkpoints written before it was kept
                run.rng_state = entry.rng_state
            if entry.method is not None:
                run.method.load_state_dict(entry.method)
