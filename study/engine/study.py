"""One study: search a method's hyperparameters with Ray Tune, for `study.tune` and `study.compare` alike.

Optuna's TPE sampler (`OptunaSearch`) proposes configurations, the first being the method's
documented defaults, ASHA stops poor trials early on the objective (mode min; never the defaults
trial, `study.engine.asha`), each trial is an `UnlearningTrainable` that reads the cached original
and Retrain models. Before any trial starts the driver builds (or finds) every artifact the
trials read: the originals and Retraining of each seed / sparsity / forget spec the space runs,
and whatever a method shares across runs through its `prebuild` hook (DAU's pre-trained
attackers). Results, checkpoints and TensorBoard event files live under `<storage>/<name>`;
`resume` continues an interrupted study from there. The caller connects Ray first
(`study.engine.ray_cluster.ray_session`), so a comparison runs all its studies in one session.

`average_seeds` makes every trial run its configuration on each seed and report the mean: a
configuration chosen on one seed's split often fails on the next, and a space's
`experiment.seeds` cannot help there, because it runs each seed as a trial of its own that the
sampler treats as an unrelated configuration.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from study.core.cache import ArtifactCache
from study.core.errors import UserError
from study.core.progress import Log
from study.core.splits import forget_scheme
from study.core.versions import package_versions
from study.engine.spaces import MethodSpace, SearchSpace
from study.engine.trial_progress import TrialLineReporter
from study.evaluation.names import METRIC_NAMES, OBJECTIVES, PARETO, PARETO_OBJECTIVES
from study.experiment.config import ExperimentConfig
from study.methods import method_class
from study.records.pareto import OPTUNA_FILE, OPTUNA_STUDY
from study.records.study_record import read_study_record, write_study_record

ASHA_MAX_EPOCHS, ASHA_GRACE_EPOCHS, ASHA_REDUCTION = 200, 1, 2
REPORT_EVERY_S = 10  # the progress line's (or table's) refresh: no study is silent for longer
# what a finished trial tells Optuna beside the objective (user attributes; optuna-dashboard shows them)
TRIAL_ATTRIBUTES = tuple(dict.fromkeys((*METRIC_NAMES, *OBJECTIVES.values(), *PARETO_OBJECTIVES.values(), "tow",
                                        "tow_mia", "gap/RA", "gap/TA", "run_seconds", "epoch")))


@dataclass
class StudyRequest:
    """Everything one `study.tune` (or one method of `study.compare`) asks of the engine."""

    space: SearchSpace
    method_space: MethodSpace
    experiment: dict  # the resolved experiment (ExperimentConfig.as_dict())
    storage: str  # local folder (absolute) or a URI Ray accepts
    name: str
    cache_dir: str
    num_samples: int | None = None  # default: the space's
    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    resume: bool = False
    average_seeds: list[int] | None = None
    objective: str = "avg_disparity"  # a key of OBJECTIVES, or PARETO
    pareto: tuple[str, ...] = tuple(PARETO_OBJECTIVES)  # the objectives of a Pareto search (keys of PARETO_OBJECTIVES)
    retrain_free_score: bool = False
    scheduler: str = "asha"
    eval_every_epoch: bool = False
    max_failures: int = 0
    quiet: bool = False
    verbose: bool = False  # Ray Tune's own trial table instead of the one-line progress (trial_progress)
    sampler_seed: int = 0
    command: str = ""
    # the Optuna study's SQLite file and name: by default `optuna.db` in the study folder, study
    # "study"; a comparison keeps every method's study in one file (`<out>/optuna.db`) as `<method>-<level>`
    optuna_file: str | None = None
    optuna_study: str = OPTUNA_STUDY

    @property
    def metric(self) -> str:
        """The result key ranked and stopped on: the objective, or Avg. Disparity for a Pareto search
        (which every trial reports and the progress table sorts by)."""
        return OBJECTIVES.get(self.objective, "avg_disparity")

    @property
    def metrics(self) -> list[str]:
        """The result keys the sampler minimises: one, or a Pareto search's several."""
        if self.objective == PARETO:
            return [PARETO_OBJECTIVES[name] for name in self.pareto]
        return [self.metric]

    @property
    def optuna_storage(self) -> str | None:
        """The SQLite file the Optuna study lives in (`optuna-dashboard <this>` opens it); local studies only."""
        if not self.local:
            return None
        return f"sqlite:///{Path(self.optuna_file or self.study_dir / OPTUNA_FILE).resolve()}"

    @property
    def local(self) -> bool:
        return "://" not in self.storage

    @property
    def study_dir(self) -> Path:
        return Path(self.storage) / self.name

    @property
    def trials_wanted(self) -> int:
        return expected_trials(self.method_space, self.num_samples or self.space.num_samples)


@dataclass
class StudyOutcome:
    method: str
    study_dir: Path
    trials: int
    expected: int
    missing: int  # trials neither finished nor failed (an interrupted study)
    wall_seconds: float
    failures: list[tuple[str, str]] = field(default_factory=list)  # (trial folder, last error line)
    trial_table: Any = None  # the study's trials (`load_study`), read once for the checks and the ranking

    @property
    def status(self) -> str:
        if self.missing:
            return "interrupted"
        return "failed" if self.trials and len(self.failures) == self.trials else "finished"


def expected_trials(method_space: MethodSpace, num_samples: int) -> int:
    """How many trials a complete study of this space has: num_samples per grid point."""
    count = num_samples
    for values in method_space.grid.values():
        count *= len(values)
    return count


def unfinished_trials(trials, expected: int) -> int:
    """Trials (a `study.records.trials.load_study` frame) that neither terminated nor errored, never
    started ones included: nonzero after Ctrl+C, which Ray Tune turns into an early, quiet return."""
    done = int(trials["status"].isin(["TERMINATED", "ERROR"]).sum())
    return max(0, expected - done)


def eval_milestones(scheduler: str, eval_every_epoch: bool) -> list[int] | None:
    """The epochs a trial evaluates at besides its last: ASHA's rungs (the only epochs whose results
    it reads, laid out as Ray's ASHAScheduler lays them out), none under FIFO, or None (every epoch)."""
    if eval_every_epoch:
        return None
    if scheduler != "asha":
        return []
    rungs = int(math.log(ASHA_MAX_EPOCHS / ASHA_GRACE_EPOCHS) / math.log(ASHA_REDUCTION) + 1)
    return [ASHA_GRACE_EPOCHS * ASHA_REDUCTION ** k for k in range(rungs)]


def trial_resources(cpus_per_trial: float, gpus_per_trial: float) -> dict[str, float]:
    """The resource request of one trial, as Ray receives it (a test checks this mapping)."""
    return {"cpu": cpus_per_trial, "gpu": gpus_per_trial}


def trial_dirname(trial) -> str:
    """Short trial folder names (Ray's default embeds the whole config and gets unreadable)."""
    return f"trial_{trial.trial_id}"


def search_options(method_space: MethodSpace) -> dict[str, list | None]:
    """Each hyperparameter the space sets and the values it can take (None: a continuous range),
    for a method's `prebuild` hook."""
    options: dict[str, list | None] = {name: [value] for name, value in method_space.fixed.items()}
    options.update({name: list(values) for name, values in method_space.grid.items()
                    if not name.startswith("experiment.")})
    for name, spec in method_space.search.items():
        if not name.startswith("experiment."):
            kind, args = next(iter(spec.items()))
            options[name] = list(args) if kind == "choice" else None
    return options


def prebuild_artifacts(request: StudyRequest, device: str, log: Log) -> None:
    """Train (or find) every original (and Retrain, unless retrain-free) the trials will read, and
    what the method shares across runs (its `prebuild` hook), once, before any trial starts."""
    from study.evaluation.heldout import RetrainFreeJudge
    from study.experiment.prepare import prepare

    method_space, experiment = request.method_space, request.experiment
    cls = method_class(method_space.method)
    need_retrain = request.objective != "retrain_free"
    cache = ArtifactCache(request.cache_dir)
    options = search_options(method_space)
    for seed in request.average_seeds or method_space.values_of("seed") or [experiment["seed"]]:
        for sparsity in method_space.values_of("sparsity") or [experiment["sparsity"]]:
            for forget in method_space.values_of("forget") or [experiment["forget"]]:
                config = ExperimentConfig.from_dict({**experiment, "seed": seed, "sparsity": sparsity, "forget": forget})
                prepared = prepare(config, cache, device=device, need_retrain=need_retrain, log=log)
                cls.prebuild(prepared, options, log)
                where = f"seed {seed}, sparsity {sparsity:g}, forget {forget}"
                if not need_retrain:
                    RetrainFreeJudge(prepared, cache)  # builds the RMIA reference models once
                    log(f"artifacts ready (retrain-free): {where}")
                    continue
                retrain = prepared.retrain_metrics
                log(f"artifacts ready: {where}: Retrain " + " ".join(f"{m} {retrain[m]:.2f}" for m in METRIC_NAMES)
                    + f"; original Avg. Disparity {prepared.original_metrics['avg_disparity']:.2f}")


def param_space(request: StudyRequest, threads: int) -> dict:
    """The Trainable's config: the experiment, the method (and the module defining it, so a worker
    finds a plug-in), the searched hyperparameters as Ray Tune distributions, and the trial settings."""
    params, experiment_search = request.method_space.param_space()
    method = request.method_space.method
    return {"experiment": {**request.experiment, **experiment_search}, "method": method,
            "method_module": method_class(method).__module__, "params": params,
            "cache_dir": str(Path(request.cache_dir).resolve()), "threads": threads, "gpus": request.gpus_per_trial,
            "objective": request.objective, "retrain_free_score": request.retrain_free_score,
            "eval_milestones": eval_milestones(request.scheduler, request.eval_every_epoch),
            **({"average_seeds": list(request.average_seeds)} if request.average_seeds else {})}


def resourced_trainable(request: StudyRequest):
    """The Trainable with each trial's resource request attached (new studies and resumed ones alike)."""
    from ray import tune

    from study.engine.trainable import UnlearningTrainable

    return tune.with_resources(UnlearningTrainable, trial_resources(request.cpus_per_trial, request.gpus_per_trial))


def build_tuner(request: StudyRequest, threads: int):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter

    from study.engine.asha import DefaultsFirstASHA

    if request.resume:
        return tune.Tuner.restore(str(request.study_dir), trainable=resourced_trainable(request),
                                  resume_unfinished=True, resume_errored=True)
    space, method_space = request.space, request.method_space
    max_concurrent = request.max_concurrent or space.max_concurrent
    search_alg = None
    pareto = request.objective == PARETO
    if method_space.uses_optuna:
        search_alg = ConcurrencyLimiter(optuna_search(request), max_concurrent=max_concurrent)
    # time_attr "epoch": a step may run several epochs (the Trainable evaluates only at the rungs);
    # the defaults trial runs to its end (study.engine.asha)
    asha = dict(time_attr="epoch", max_t=ASHA_MAX_EPOCHS, grace_period=ASHA_GRACE_EPOCHS,
                reduction_factor=ASHA_REDUCTION)
    scheduler = FIFOScheduler()
    if request.scheduler == "asha":
        scheduler = (DefaultsFirstASHA(defaults_point(request), **asha) if method_space.uses_optuna
                     else ASHAScheduler(**asha))
    reporter = None
    if not request.quiet and not request.verbose:
        reporter = TrialLineReporter(request.name or method_space.method, "avg_disparity" if pareto else request.metric,
                                     list(method_space.search), request.num_samples or space.num_samples,
                                     every_s=REPORT_EVERY_S)
    elif not request.quiet:
        columns = {**{metric: metric for metric in request.metrics}, request.metric: "Avg. Disparity" if pareto
                   else "objective", "UA": "UA", "MIA-Efficacy": "MIA", "RA": "RA", "TA": "TA", "epoch": "epochs"}
        reporter = tune.CLIReporter(metric_columns=columns,
                                    parameter_columns={f"params/{k}": k for k in method_space.search},
                                    max_report_frequency=REPORT_EVERY_S, sort_by_metric=not pareto)
    run_config = tune.RunConfig(
        name=request.name, storage_path=request.storage, verbose=0 if request.quiet else 1,
        progress_reporter=reporter,
        checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=1, num_to_keep=1, checkpoint_at_end=True),
        failure_config=tune.FailureConfig(max_failures=request.max_failures))
    tune_config = tune.TuneConfig(metric=None if pareto else request.metric, mode=None if pareto else "min",
                                  search_alg=search_alg, scheduler=scheduler,
                                  num_samples=request.num_samples or space.num_samples,
                                  max_concurrent_trials=max_concurrent, trial_dirname_creator=trial_dirname,
                                  reuse_actors=True)  # the Trainable's reset_config sets each trial up afresh
    return tune.Tuner(resourced_trainable(request), param_space=param_space(request, threads),
                      tune_config=tune_config, run_config=run_config)


def defaults_point(request: StudyRequest) -> dict:
    """The study's first trial: the method's documented defaults for the searched keys (flattened)."""
    return request.method_space.defaults_point(request.experiment, forget_scheme(request.experiment["forget"]))


# TPE's settings, stated rather than left to the installed Optuna (5.0 turned multivariate TPE and the
# constant liar on by default): the same command and seed sample the same trials on every install.
TPE_SETTINGS = {"multivariate": True, "constant_liar": True, "n_startup_trials": 10}


def tpe_sampler(seed: int):
    """Optuna's TPE sampler with `TPE_SETTINGS` and `seed` (multi-objective too, for a Pareto search)."""
    import warnings

    import optuna

    with warnings.catch_warnings():  # older Optuna calls multivariate TPE experimental; it is meant here
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, **TPE_SETTINGS)


def sampler_record(request: StudyRequest) -> dict | None:
    """What study.json says of the sampler: its settings and seed (None for a grid)."""
    if not request.method_space.uses_optuna:
        return None
    return {"name": "TPESampler", "seed": request.sampler_seed, **TPE_SETTINGS}


def optuna_search(request: StudyRequest):
    """Optuna's TPE sampler (multi-objective for a Pareto search) behind Ray Tune, its study kept in
    the request's SQLite file under its name (`optuna.db` in the study folder, or the comparison's
    one file), with the method's documented defaults as the first trial (`points_to_evaluate`).
    Every finished trial carries its metrics and Ray trial id as user attributes (`RecordingOptunaSearch`)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the study's own progress table speaks for it
    storage = None
    if request.optuna_storage is not None:
        Path(request.optuna_storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        storage = optuna.storages.RDBStorage(request.optuna_storage)
        if not request.resume:  # a fresh study: an earlier one of this name would mix in its trials
            with contextlib.suppress(KeyError):  # none yet
                optuna.delete_study(study_name=request.optuna_study, storage=storage)
    defaults = defaults_point(request)
    return recording_optuna_search()(
        metric=request.metrics if request.objective == PARETO else request.metric,
        mode=["min"] * len(request.metrics) if request.objective == PARETO else "min",
        sampler=tpe_sampler(request.sampler_seed), points_to_evaluate=[defaults] if defaults else None,
        study_name=request.optuna_study, storage=storage)


def recording_optuna_search() -> type:
    """Ray's OptunaSearch, telling Optuna more than the objective: each trial's Ray id and reported
    metrics (`TRIAL_ATTRIBUTES`) as user attributes, so optuna-dashboard shows UA, RA, TA,
    MIA-Efficacy and time beside the objective and the Pareto front is read by trial id; and a
    trial that errored, or whose objective Optuna refuses (NaN), is marked FAIL instead of only logged."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    class RecordingOptunaSearch(OptunaSearch):
        def _setup_study(self, mode):
            super()._setup_study(mode)
            metrics = self._metric if isinstance(self._metric, list) else [self._metric]
            if all(isinstance(name, str) for name in metrics):  # the dashboard labels the objectives by name
                self._ot_study.set_metric_names(metrics)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            ot_trial = self._ot_trials.get(trial_id)
            if ot_trial is None or trial_id in self._completed_trials:
                return super().on_trial_complete(trial_id, result, error)
            ot_trial.set_user_attr("ray_trial_id", trial_id)
            for key, value in (result or {}).items():
                if key in TRIAL_ATTRIBUTES and isinstance(value, (int, float)) and math.isfinite(value):
                    ot_trial.set_user_attr(key, float(value))
            if not error:
                try:
                    return super().on_trial_complete(trial_id, result, error)
                except Exception:  # noqa: BLE001 - Optuna refused the values; the trial is recorded failed below
                    pass
            if trial_id not in self._completed_trials:
                self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
                self._completed_trials.add(trial_id)
            return None

    return RecordingOptunaSearch


def check_request(request: StudyRequest) -> None:
    """What can be refused before any artifact is built or Ray starts, in one line each."""
    if request.objective == PARETO:
        if request.scheduler == "asha":
            raise UserError("a Pareto search needs --scheduler fifo: ASHA stops trials on one metric, and a Pareto "
                            "search has several")
        unknown = [name for name in request.pareto if name not in PARETO_OBJECTIVES]
        if unknown or len(request.pareto) < 2:
            raise UserError(f"a Pareto search takes two or more of {', '.join(PARETO_OBJECTIVES)}; got "
                            f"{' '.join(request.pareto) or 'none'}")
        if not request.method_space.uses_optuna:
            raise UserError(f"space {request.space.name} runs a grid for {request.method_space.method}; a Pareto "
                            "search needs Optuna's sampler (a space with `search` and no `grid`)")
    if request.method_space.uses_optuna:
        defaults_point(request)  # the defaults trial must fit the space


def check_resumable(request: StudyRequest) -> None:
    """A study asked to resume must have started (its study.json exists); said before Ray starts."""
    if request.resume and request.local and read_study_record(request.study_dir) is None:
        raise UserError(f"no study to resume at {request.study_dir}")


def selection_note(experiment: dict) -> str:
    """Which held-out images a study's objective reads (its study.json and every table say it)."""
    size = int(experiment.get("select_size") or 0)
    return (f"selection set ({size} held-out training-pool images; the test set is never read)" if size
            else "test set (this experiment keeps no selection set: select_size 0)")


def run_study(request: StudyRequest, log: Log, ray_start_seconds: float = 0.0) -> StudyOutcome:
    """Prebuild the artifacts, run (or resume) the study's trials under the connected Ray, and keep
    its record (study.json: `running`, then `finished` or `interrupted`, with its timings)."""
    from study.engine.trainable import trial_device

    method = request.method_space.method
    if request.objective == "retrain_free" and method_class(method).reference == "retrain":
        raise UserError("the retrain-free objective cannot tune the retrain method itself")
    check_request(request)
    check_resumable(request)
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")  # keep the experiment state fresh for resuming
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    began = time.perf_counter()
    prebuild_artifacts(request, trial_device(request.gpus_per_trial), log)
    prebuild_seconds = time.perf_counter() - began
    tuner = build_tuner(request, threads=max(1, int(request.cpus_per_trial)))
    record = {"space": request.space.name, "space_file": str(request.space.path), "method": method,
              "experiment": request.experiment, "objective": PARETO if request.objective == PARETO else request.metric,
              "objectives": request.metrics, "selected_on": selection_note(request.experiment),
              "defaults_first": request.method_space.uses_optuna,
              "optuna_storage": request.optuna_storage if request.method_space.uses_optuna else None,
              "optuna_study": request.optuna_study if request.method_space.uses_optuna else None,
              "sampler": sampler_record(request), "versions": package_versions(),
              "average_seeds": request.average_seeds, "command": request.command, "status": "running"}
    if request.local:
        request.study_dir.mkdir(parents=True, exist_ok=True)
        if not request.resume:
            write_study_record(request.study_dir, record)
    started = time.perf_counter()
    results = tuner.fit()
    elapsed = time.perf_counter() - started
    failures = [(str(r.path), str(r.error).strip().splitlines()[-1]) for r in results if r.error is not None]
    missing, trial_table = 0, None
    if request.local:
        from study.records.trials import load_study

        trial_table = load_study(request.study_dir)
        missing = unfinished_trials(trial_table, request.trials_wanted)
    outcome = StudyOutcome(method, request.study_dir, len(results), request.trials_wanted, missing, elapsed, failures,
                           trial_table)
    if request.local:
        write_study_record(request.study_dir, {
            **record, "status": "interrupted" if missing else "finished", "wall_seconds": elapsed,
            "ray_start_seconds": ray_start_seconds, "prebuild_seconds": prebuild_seconds,
            "num_trials": len(results), "failed_trials": len(failures)})
    return outcome
