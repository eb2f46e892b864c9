"""A fair Table 1: every method tuned with the same budget on the tuning seeds, then its best
configuration run on evaluation seeds that no study saw. The engine behind `study.compare`.

For each method (Original and Retrain are reference rows):
  1. a study of `budget` trials on its own search space (the method's `default_space` for the
     preset and forget scheme, or one named for it), on the tuning seeds only (several seeds:
     each trial reports their mean), all with the same objective. Studies run in this process,
     one after another, under one Ray session;
  2. its best trial's configuration (`configs/<level>/<method>.yaml`) run once per evaluation seed
     (`study.engine.seed_runs`, kept in `runs.csv`).
A method whose study failed is recorded as failed, not dropped. Run again, the same comparison
reuses finished studies (from their records alone: `study.json`, Ray's experiment state, each
trial's params and results, so deleted checkpoint folders do not matter) and evaluation runs,
and computes only what is missing; when a study's whole folder is gone (a comparison kept in
version control holds `compare.json` and `configs/` only), the configuration it chose is reused
as recorded. Each sparsity level has its own studies (`studies/<level>/<method>`) and
configurations; a folder holds one comparison (the same budget, seeds, objective, experiment).
"""
from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from study.core.cache import ArtifactCache
from study.core.errors import TrainingDiverged, UserError
from study.core.progress import Log
from study.core.splits import forget_scheme
from study.core.staging import write_file_atomically
from study.core.stopping import stop_after_run_in_flight
from study.engine.ray_cluster import ray_session
from study.engine.seed_runs import RowProbes, evaluation_row
from study.engine.spaces import MethodSpace, SearchSpace, load_space
from study.engine.study import StudyRequest, run_study, selection_note
from study.evaluation.names import MIA_SUBSETS, PARETO, PARETO_OBJECTIVES
from study.experiment.config import ExperimentConfig
from study.experiment.prepare import Prepared
from study.methods import method_class
from study.records.comparison import (
    REFERENCE_ROWS,
    chosen_config_path,
    level_name,
    recorded_study,
    write_comparison,
)
from study.records.method_config import write_config
from study.records.pareto import OPTUNA_FILE
from study.records.paths import read_path, stored_path
from study.records.run_log import RunLog
from study.records.study_record import find_study_dir, read_study_record
from study.records.trials import best_configs

RELEARN_STEPS = 20  # the relearning test's steps on every evaluation row


@dataclass
class ComparisonRequest:
    methods: list[str]
    experiment: ExperimentConfig
    preset: str
    out: Path
    cache_dir: str
    budget: int = 16
    tune_seeds: list[int] = field(default_factory=lambda: [0])
    eval_seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    objective: str = "avg_disparity"  # a key of OBJECTIVES, or PARETO
    pareto: tuple[str, ...] = tuple(PARETO_OBJECTIVES)  # a Pareto search's objectives
    pick: str = "balanced"  # the point of each Pareto front evaluated (study.records.pareto)
    spaces: dict[str, str] = field(default_factory=dict)  # method -> space name or path, replacing its default
    relearn_steps: int = RELEARN_STEPS  # the relearning test on every evaluation row (0: off)
    heldout: bool = True  # the held-out attacks on every evaluation row
    eval_workers: int = 1  # evaluation rows at once, each in its own process (1: in turn, in this process)
    # --configs-from: another comparison's protocol and chosen configurations (transferred_configs), used
    # instead of tuning here; budget, objective and tune_seeds then repeat the source's
    source: dict | None = None
    transferred: dict[str, dict] = field(default_factory=dict)
    cpus_per_trial: float | None = None
    max_concurrent: int | None = None
    studies_only: bool = False
    quiet: bool = False
    verbose: bool = False
    command: str = ""

    @property
    def level(self) -> str:
        return level_name(self.experiment.sparsity)

    @property
    def scheme(self) -> str:
        return forget_scheme(self.experiment.forget)

    def header(self) -> dict:
        """What compare.json records of the comparison as a whole (a rerun must match it)."""
        objective = (self.objective if self.objective != PARETO
                     else f"pareto ({' '.join(self.pareto)}; pick {self.pick})")
        selected_on = self.source["selected_on"] if self.source else selection_note(self.experiment.as_dict())
        return {"command": self.command, "experiment": self.experiment.as_dict(), "budget": self.budget,
                "objective": objective, "tune_seeds": self.tune_seeds, "eval_seeds": self.eval_seeds,
                "selected_on": selected_on, "relearn_steps": self.relearn_steps, "defaults_first": True,
                "configs_from": self.source["configs_from"] if self.source else None}


def method_space(method: str, request: ComparisonRequest) -> tuple[SearchSpace, MethodSpace]:
    """The space a method is tuned with, and its section (checked before any study starts)."""
    name = request.spaces.get(method) or method_class(method).default_space(request.preset, request.scheme)
    space = load_space(name)
    sections = [m for m in space.methods if m.method == method]
    if not sections:
        raise UserError(f"the {space.name} space has no section for {method}")
    return space, sections[0]


def study_fingerprint(method: str, section: MethodSpace) -> str:
    """The method's fingerprint and its search-space section, digested: a kept study tuned another
    version of the method, or over another space, when this differs."""
    space = json.dumps({"fixed": section.fixed, "search": section.search, "grid": section.grid}, sort_keys=True,
                       default=str)
    return hashlib.sha256(f"{method_class(method).fingerprint()} {space}".encode()).hexdigest()[:12]


def supersede_stale_study(method: str, request: ComparisonRequest, previous: dict, fingerprint: str,
                          log: Log) -> None:
    """When compare.json records a study of `method` made by another version of it (or before
    versions were recorded), move its folder aside (`<method>.superseded-<old>`) and drop its chosen
    configuration and trial table, so that the study runs again; one line says so."""
    entry = (((previous.get("levels") or {}).get(request.level) or {}).get("studies") or {}).get(method)
    if not entry or entry.get("fingerprint") == fingerprint:
        return
    old = entry.get("fingerprint") or "unversioned"
    root = request.out / "studies" / request.level / method
    if root.exists():
        root.rename(root.with_name(f"{method}.superseded-{old}"))
    for path in (chosen_config_path(request.out, request.level, method),
                 request.out / "trials" / request.level / f"{method}.csv"):
        path.unlink(missing_ok=True)
    previous["levels"][request.level]["studies"].pop(method)
    log(f"{method}: its kept study was made by another version of the method or space ({old}, now "
        f"{fingerprint}): tuned again")


def tune_method(method: str, request: ComparisonRequest, previous: dict, log: Log,
                ray_needed: Callable[[], None]) -> dict:
    """Tune one method (or reuse its finished study, from its folder or, when that is gone, from
    compare.json and its chosen configuration); returns its record, with `status`, `dir` and
    `fingerprint`. A study compare.json records for another version of the method runs again."""
    fingerprint = study_fingerprint(method, method_space(method, request)[1])
    supersede_stale_study(method, request, previous, fingerprint, log)
    return {**tune_or_reuse(method, request, previous, log, ray_needed), "fingerprint": fingerprint}


def tune_or_reuse(method: str, request: ComparisonRequest, previous: dict, log: Log,
                  ray_needed: Callable[[], None]) -> dict:
    root = request.out / "studies" / request.level / method
    existing = find_study_dir(root)
    if existing is not None:
        record = read_study_record(existing) or {}
        if record.get("status") == "finished" and record.get("num_trials") == request.budget:
            log(f"{method}: study finished earlier ({existing}), reused")
            return {**record, "dir": stored_path(existing, request.out)}
    else:
        recorded = recorded_study(method, request.out, request.level, previous, request.budget)
        if recorded is not None:
            log(f"{method}: study finished earlier (recorded in compare.json; its folder is absent), "
                f"reused through configs/{request.level}/{method}.yaml")
            return recorded
    space, section = method_space(method, request)
    seeds = request.tune_seeds
    study = StudyRequest(
        space=space, method_space=section, experiment={**request.experiment.as_dict(), "seed": seeds[0]},
        storage=str(root.resolve()), name=method, cache_dir=request.cache_dir, num_samples=request.budget,
        max_concurrent=request.max_concurrent, cpus_per_trial=request.cpus_per_trial or 1.0,
        resume=existing is not None, average_seeds=list(seeds) if len(seeds) > 1 else None,
        objective=request.objective, pareto=request.pareto, scheduler="fifo" if request.objective == PARETO else "asha",
        quiet=request.quiet, verbose=request.verbose, sampler_seed=seeds[0],
        command=f"{request.command}  (study of {method})",
        optuna_file=str((request.out / OPTUNA_FILE).resolve()), optuna_study=f"{method}-{request.level}")
    log(f"{method}: study of {request.budget} trials on seed(s) {' '.join(map(str, seeds))} ...")
    root.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    try:
        ray_needed()
        outcome = run_study(study, log)
    except (UserError, TrainingDiverged) as err:
        log(f"{method}: study FAILED ({err})")
        return {"status": "failed", "reason": str(err), "dir": stored_path(root / method, request.out)}
    study_dir = find_study_dir(root) or root / method
    if outcome.missing:  # Ctrl+C: stop the comparison here rather than move on to the next method
        raise UserError(f"{method}: study interrupted with {outcome.missing} of {outcome.expected} trials unfinished; "
                        "the same command resumes it")
    record = read_study_record(study_dir) or {}
    if outcome.status != "finished":
        reason = (outcome.failures[-1][1] if outcome.failures else f"study {outcome.status}")
        log(f"{method}: study FAILED ({reason})")
        return {**record, "status": "failed", "reason": reason, "dir": stored_path(study_dir, request.out)}
    log(f"{method}: study finished in {time.perf_counter() - began:.0f} s")
    return {**record, "dir": stored_path(study_dir, request.out)}  # relative to --out: the folder can move


def chosen_configs(studies: dict[str, dict], request: ComparisonRequest) -> dict[str, dict]:
    """Each finished study's best configuration, written to configs/<level>/<method>.yaml."""
    configs = {}
    for method, record in studies.items():
        if record.get("status") != "finished":
            continue
        if "config" in record:  # reused through its configuration: nothing to export again
            config = record["config"]
        else:
            config = best_configs(read_path(record["dir"], request.out), pick=request.pick)[0]
            config["source"]["study"] = record["dir"]  # relative to the comparison's folder, as compare.json has it
            write_config(config, chosen_config_path(request.out, request.level, method))
        configs[method] = config
    return configs


def run_comparison(request: ComparisonRequest, previous: dict, log: Log) -> dict:
    """Tune every method (in one Ray session), record the comparison in compare.json, and (unless
    `studies_only`) run the chosen configurations and the reference rows on the evaluation seeds.
    Returns the comparison's record."""
    for method in request.methods:  # every space is checked before anything trains
        method_space(method, request)
    request.out.mkdir(parents=True, exist_ok=True)
    setting = (request.scheme, request.experiment.dataset, request.experiment.sparsity)
    defaults = {method: method_space(method, request)[1].defaults(*setting) for method in request.methods}
    studies = {}
    with ExitStack() as stack:
        started: list = []

        def ray_needed() -> None:  # Ray starts for the first study that must run, not for reused ones
            if not started:
                started.append(stack.enter_context(ray_session(None)))

        for method in request.methods if request.budget else ():  # budget 0: documented defaults only
            if method in request.transferred:
                log(f"{method}: configuration chosen by {request.source['configs_from']['folder']}, not tuned here")
                transferred = request.transferred[method]
                studies[method] = {**transferred, "dir": stored_path(transferred.get("dir"), request.out)}
                continue
            studies[method] = tune_method(method, request, previous, log, ray_needed)
            keep_trial_tables({method: studies[method]}, defaults, request)  # kept as soon as a study ends
    failed = {m: r.get("reason", "failed") for m, r in studies.items() if r.get("status") != "finished"}
    configs = chosen_configs(studies, request)
    seeds_seen = {method: {"seed": (record.get("experiment") or {}).get("seed"),
                           "average_seeds": record.get("average_seeds"), "trials": record.get("num_trials"),
                           "status": record.get("status"), "dir": record.get("dir"),
                           "fingerprint": record.get("fingerprint")}
                  for method, record in studies.items()}
    levels = {**previous.get("levels", {}), request.level: {
        "sparsity": request.experiment.sparsity, "methods": list(request.methods), "studies": seeds_seen,
        "failed": failed, "configs": {method: config["params"] for method, config in configs.items()},
        "defaults": defaults}}
    record = {**request.header(), "levels": levels}
    write_comparison(request.out, record)
    if not request.studies_only:
        if started and threading.current_thread() is threading.main_thread():
            # Ray Tune's fit leaves its own SIGINT handler behind, which only flags a running
            # experiment: without this, Ctrl+C during the evaluation seeds would be ignored.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        evaluate_configs(request, {m: c["params"] for m, c in configs.items()}, defaults, log)
    return record


def keep_trial_tables(studies: dict[str, dict], defaults: dict[str, dict], request: ComparisonRequest) -> None:
    """Each study's trials (params, metrics, status; a small CSV per method in `trials/<level>/`, best
    first, the defaults trial marked), so a kept comparison shows how close the top trials were and
    where the defaults landed after the studies' bulky folders are gone. A kept table stays as it is."""
    from study.records.trials import load_study, trial_table_columns

    folder = request.out / "trials" / request.level
    for method, record in studies.items():
        path = folder / f"{method}.csv"
        study_dir = read_path(record.get("dir"), request.out)
        if path.exists() or record.get("status") != "finished" or study_dir is None or not study_dir.is_dir():
            continue
        trials = load_study(study_dir)
        table = trials[trial_table_columns(trials)].copy()
        table.insert(1, "defaults", [all(row.get(f"params.{k}") == v for k, v in defaults[method].items())
                                     for row in table.to_dict("records")])
        sort_by = "avg_disparity" if "avg_disparity" in table else table.columns[0]
        folder.mkdir(parents=True, exist_ok=True)
        write_file_atomically(path, table.sort_values([sort_by, "trial_id"]).to_csv(index=False))


def evaluate_configs(request: ComparisonRequest, configs: dict[str, dict], defaults: dict[str, dict],
                     log: Log) -> None:
    """The reference rows, each method at its documented defaults and at its chosen configuration
    on every evaluation seed (kept in runs.csv; a configuration equal to the defaults runs once; with
    budget 0 there is none, and the defaults rows get every probe, MIA-Efficacy's subsets included);
    a seed's data, models and held-out attackers are prepared only when one of its rows is missing."""
    from study.engine.row_pool import PreparedSeeds, rows_in_workers, threads_per_worker
    from study.evaluation.heldout import RetrainFreeJudge

    cache = ArtifactCache(request.cache_dir)
    prepared_for = PreparedSeeds(request.experiment.as_dict(), request.cache_dir, log)
    judges: dict = {}

    def judge_for(seed: int):
        if seed not in judges:
            judges[seed] = RetrainFreeJudge(prepared_for(seed), cache)
        return judges[seed]

    run_log = RunLog(request.out / "runs.csv")
    probes = RowProbes(MIA_SUBSETS, request.relearn_steps, request.heldout)
    # the defaults rows skip MIA-Efficacy's 5-subset diagnostic (5 more SVMs, about a minute a row on the proxy)
    runs = [*((name, {}, probes) for name in REFERENCE_ROWS), *((m, p, probes) for m, p in configs.items()),
            *((method, params, replace(probes, mia_subsets=0) if request.budget else probes)
              for method, params in defaults.items() if method in configs or not request.budget)]
    tasks, total = pending_row_tasks(runs, request.eval_seeds, lambda m, p, seed: row_key(request, m, p, seed),
                                     run_log, log, prepared_for)
    log(f"evaluation: {total - len(tasks)} of {total} rows kept in {run_log.path}; {len(tasks)} to run"
        + (f", {request.eval_workers} at a time ({threads_per_worker(request.eval_workers)} thread(s) each)"
           if request.eval_workers > 1 else ", one after another") + "; Ctrl+C keeps the row(s) in flight and "
        "starts no more")
    if request.eval_workers > 1:
        rows = rows_in_workers(tasks, request.eval_workers, request.experiment.as_dict(), request.cache_dir,
                               request.quiet, log)
        for done, row in enumerate(rows, 1):
            record_row(row, run_log, log, done, len(tasks))
        return
    with stop_after_run_in_flight(log) as stop:
        for done, task in enumerate(tasks, 1):  # seed by seed (pending_row_tasks' order)
            stop.raise_if_requested()
            judge = judge_for(task.seed) if task.probes.heldout else None
            record_row(evaluation_row(prepared_for(task.seed), task.method, task.params, task.key, task.probes,
                                      judge=judge), run_log, log, done, len(tasks))
        stop.raise_if_requested()


def record_row(row: dict, run_log: RunLog, log: Log, done: int, total: int) -> None:
    """Keep one finished evaluation row in the run log (at once: a stopped comparison keeps it) and say so."""
    run_log.add(row)
    log(f"  [{done}/{total}] {row['method']} on seed {row['seed']}: Avg. Disparity {row['avg_disparity']:.2f}, "
        f"{row['run_seconds']:.1f} s")


def row_key(request: ComparisonRequest, method: str, params: dict, seed: int) -> dict:
    """The run-log key of one evaluation row of this comparison."""
    from study.records.run_log import run_key

    return run_key(request.preset, request.experiment.forget, method, request.experiment.sparsity, seed, params)


def pending_row_tasks(runs: list[tuple[str, dict, RowProbes]], seeds: list[int],
                      key_of: Callable[[str, dict, int], dict], run_log: RunLog, log: Log = print,
                      prepared_for: Callable[[int], Prepared] | None = None) -> tuple[list, int]:
    """The evaluation rows still to run, one per run key, and how many distinct rows there are.
    A kept row measured by another version of its method (`UnlearningMethod.fingerprint`) runs
    again, and one line per method says how many; so does, given `prepared_for`, a kept row
    measured against another original or Retrain than the cache's (`stale_reference_keys`).

    A method whose chosen configuration is its defaults lists the same row twice (chosen, then
    defaults); it runs once, with the first entry's probes (the chosen row's, which include
    MIA-Efficacy's subsets). Tasks come seed by seed, in `runs`' order within a seed.
    """
    from study.engine.row_pool import RowTask

    distinct: dict[tuple, RowTask] = {}  # run_key's columns -> the first task asking for them
    for seed in seeds:  # seed by seed, so a comparison stopped early holds every method on its first seeds
        for method, params, probes in runs:
            key = key_of(method, params, seed)
            distinct.setdefault(tuple(sorted(key.items())), RowTask(method, params, key, probes))
    fingerprints = {task.method: method_class(task.method).fingerprint() for task in distinct.values()}
    tasks = [task for task in distinct.values() if run_log.reusable(task.key, fingerprints[task.method]) is None]
    superseded = Counter(task.method for task in tasks if run_log.superseded(task.key, fingerprints[task.method]))
    for method, count in superseded.items():
        log(f"{method}: {count} kept row(s) measured by another version of it (defaults, declarations or "
            "revision changed, or kept before versions were recorded): run again")
    if prepared_for is not None:
        pending = {tuple(sorted(task.key.items())) for task in tasks}
        stale = set(stale_reference_keys([task.key for task in distinct.values()], pending, run_log, prepared_for,
                                         log))
        tasks = [task for key, task in distinct.items() if key in pending or key in stale]
    return tasks, len(distinct)


def stale_reference_keys(keys: list[dict], pending: set[tuple], run_log: RunLog,
                         prepared_for: Callable[[int], Prepared], log: Log = print) -> list[tuple]:
    """Kept rows (of `keys`, not in `pending`) measured against another original or Retrain than the
    ones this cache holds for their seed, by the weights digests each row records. Only a seed that
    has rows to run anyway is prepared for the check (its models are needed then), so resuming a
    finished comparison trains nothing; a row kept before digests were recorded cannot be checked
    and is kept (the table says which rows name no reference). One line per seed with stale rows."""
    by_seed: dict[int, list[dict]] = {}
    for key in keys:
        by_seed.setdefault(int(key["seed"]), []).append(key)
    stale = []
    for seed, seed_keys in sorted(by_seed.items()):
        if not any(tuple(sorted(key.items())) in pending for key in seed_keys):
            continue
        kept = [(key, run_log.get(key)) for key in seed_keys
                if tuple(sorted(key.items())) not in pending and run_log.get(key) is not None]
        if not kept:
            continue
        digests = prepared_for(seed).reference_digests()
        other = [key for key, row in kept
                 if any(isinstance(row.get(name), str) and row[name] != value for name, value in digests.items())]
        if other:
            log(f"seed {seed}: {len(other)} kept row(s) were measured against another original or Retrain than "
                f"this cache holds ({', '.join(f'{k} {v}' for k, v in digests.items())}): run again")
            stale += [tuple(sorted(key.items())) for key in other]
    return stale
