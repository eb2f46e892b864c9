"""`python -m study.tune --space classwise`: search a method's hyperparameters with Ray Tune.

Optuna's TPE sampler (`OptunaSearch`) proposes configurations, ASHA stops poor trials early
on `avg_disparity` (mode min), each trial is an `UnlearningTrainable` that reads the cached
original and Retrain models. The original/Retrain artifacts are built once by the driver
before any trial starts. Results, checkpoints and TensorBoard event files live under
`<storage>/<name>`; `--resume` continues an interrupted study from there. DAU's pre-trained
attackers are built by the driver too, one pass per attacker setting with a snapshot at every
pre-training length the space lists.

`--average-seeds 0 1 2` makes every trial run its configuration on each seed and report the
mean: a configuration chosen on one seed's split often fails on the next (docs/RESULTS.md, the earlier
DAU variant's three-seed runs),
and a space's `experiment.seeds` cannot help there, because it runs each seed as a trial of its
own that the sampler treats as an unrelated configuration.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import socket
import sys
import time
from pathlib import Path

from study.cache import ArtifactCache
from study.cli_common import add_experiment_arguments, experiment_overrides, resolve_device, set_threads
from study.config import resolve_experiment
from study.errors import UserError, cli_entry
from study.methods import method_class
from study.spaces import MethodSpace, SearchSpace, available_spaces, load_space

OBJECTIVES = {"avg_disparity": "avg_disparity", "retrain_free": "retrain_free_score"}  # --objective -> metric
STUDY_FILE = "study.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m study.tune",
        description="Search unlearning hyperparameters with Ray Tune + Optuna (TPE) and ASHA, ranking trials "
                    "by Avg. Disparity to Retrain. Spaces: " + ", ".join(available_spaces()) + ".")
    parser.add_argument("--space", required=True, help="a space name from search_spaces/ or a path to a .yaml file")
    parser.add_argument("--method", default=None, help="only this method of a multi-method space (baselines)")
    parser.add_argument("--num-samples", type=int, default=None, help="trials per method (default: the space's)")
    parser.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: the space's)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPU cores reserved per trial (default 1)")
    parser.add_argument("--gpus-per-trial", type=float, default=0.0,
                        help="GPUs per trial; fractional shares a GPU, e.g. 0.25 = four trials per GPU (default 0)")
    parser.add_argument("--address", default=None,
                        help="join an existing Ray cluster (host:port or 'auto'); default: start a local one")
    parser.add_argument("--storage", default="studies", help="local folder or URI Ray accepts (default ./studies)")
    parser.add_argument("--name", default=None, help="study name (default: <space>-<dataset>-<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted study --name in --storage")
    parser.add_argument("--average-seeds", type=int, nargs="+", default=None, metavar="SEED",
                        help="run every trial once per seed and report the mean (e.g. 0 1 2): tunes for "
                             "settings that hold across splits and initialisations, at one run per seed")
    parser.add_argument("--objective", choices=sorted(OBJECTIVES), default="avg_disparity",
                        help="what trials minimise: Avg. Disparity to Retrain (default), or the retrain-free score "
                             "(held-out attacks + accuracy gaps; no Retrain model is built or read)")
    parser.add_argument("--retrain-free-score", action="store_true",
                        help="also report the retrain-free score and held-out attacks (to compare the objectives)")
    parser.add_argument("--scheduler", choices=("asha", "fifo"), default="asha", help="trial scheduler (default asha)")
    parser.add_argument("--eval-every-epoch", action="store_true",
                        help="evaluate every epoch, for per-epoch curves (default: only the epochs the scheduler "
                             "reads, ASHA's rungs 1, 2, 4, 8, ..., and each trial's last epoch)")
    parser.add_argument("--max-failures", type=int, default=0, help="retries of a failed trial (default 0)")
    parser.add_argument("--top", type=int, default=5, help="trials shown in the final ranking (default 5)")
    parser.add_argument("--quiet", action="store_true", help="no per-trial progress table")
    add_experiment_arguments(parser)  # the same experiment flags as study.run; they override the space's
    return parser


def check_resources(args: argparse.Namespace) -> None:
    if args.device not in ("auto", "cpu") and args.gpus_per_trial <= 0:
        raise UserError(f"--device {args.device}: trials run on a GPU only with --gpus-per-trial (e.g. 1 or 0.25)")
    if args.cpus_per_trial <= 0:
        raise UserError(f"--cpus-per-trial must be positive, got {args.cpus_per_trial}")
    if args.gpus_per_trial < 0:
        raise UserError(f"--gpus-per-trial must be 0 or positive, got {args.gpus_per_trial}")
    if args.gpus_per_trial > 1 and args.gpus_per_trial != int(args.gpus_per_trial):
        raise UserError("--gpus-per-trial above 1 must be a whole number of GPUs")
    for flag, value in (("--num-samples", args.num_samples), ("--max-concurrent", args.max_concurrent)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1")
    seeds = args.average_seeds
    if seeds is not None:
        if len(set(seeds)) != len(seeds):
            raise UserError(f"--average-seeds lists a seed twice: {' '.join(map(str, seeds))}")
        if any(seed < 0 for seed in seeds):
            raise UserError("--average-seeds takes seeds of 0 or more")


def trial_resources(cpus_per_trial: float, gpus_per_trial: float) -> dict[str, float]:
    """The resource request of one trial, as Ray receives it (a test checks this mapping)."""
    return {"cpu": cpus_per_trial, "gpu": gpus_per_trial}


def resourced_trainable(args: argparse.Namespace):
    """The Trainable with each trial's resource request attached (new studies and --resume alike)."""
    from ray import tune

    from study.trainables import UnlearningTrainable

    return tune.with_resources(UnlearningTrainable, trial_resources(args.cpus_per_trial, args.gpus_per_trial))


def trial_dirname(trial) -> str:
    """Short trial folder names (Ray's default embeds the whole config and gets unreadable)."""
    return f"trial_{trial.trial_id}"


def _check_address_reachable(address: str) -> None:
    if address in ("auto", "local") or ":" not in address:
        return
    host_port = address[len("ray://"):] if address.startswith("ray://") else address
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except (OSError, ValueError) as err:
        raise UserError(f"cannot reach a Ray cluster at --address {address}: {err}") from None


RAY_TOKEN_FILE = Path.home() / ".ray" / "auth_token"  # where `ray start` keeps the cluster's token
TOKEN_FIX = (f"set RAY_AUTH_TOKEN to the output of `ray get-auth-token` on its head node, or copy that token to "
             f"{RAY_TOKEN_FILE}")


def present_ray_token() -> bool:
    """Have the driver present the cluster's authentication token when one is where Ray keeps it.

    `ray start` enables token authentication unless told otherwise, but a driver joining with
    `ray.init(address=...)` presents the token only in token mode: with RAY_AUTH_MODE unset,
    switch it on when RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or the default token file gives a token.
    An explicit RAY_AUTH_MODE is left as it is. Returns whether token mode is on.
    """
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None:
        return mode.lower() == "token"
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or RAY_TOKEN_FILE.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
        reload_ray_config()
        return True
    return False


def reload_ray_config() -> None:
    """Ray reads its configuration (the auth mode among it) when it is imported; read it again."""
    try:
        from ray._raylet import Config

        Config.initialize("")
    except (ImportError, AttributeError):
        pass


def connect_ray(address: str | None):
    import logging

    import ray

    repo_root = str(Path(__file__).resolve().parent.parent)
    runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")]))}}
    if address:
        _check_address_reachable(address)
        token_mode = present_ray_token()
        try:
            ray.init(address=address, runtime_env=runtime_env, logging_level=logging.ERROR, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.AuthenticationError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            # the address answered (checked above), so a refusal here is most often the token
            presented = "a token was presented, but" if token_mode else "no token was presented;"
            reason += f" ({presented} if the cluster asks for one, {TOKEN_FIX})"
            raise UserError(f"cannot join the Ray cluster at --address {address}: {reason}") from None
    else:
        ray.init(runtime_env=runtime_env, logging_level=logging.ERROR, include_dashboard=False, log_to_driver=False)
    return ray


def base_experiment(space: SearchSpace, args: argparse.Namespace) -> dict:
    """The space's experiment with the command line's flags on top (the seed also seeds the sampler;
    with --average-seeds the experiment carries the first of them)."""
    values = dict(space.experiment)
    preset = args.preset or values.pop("preset", None)
    values.pop("preset", None)
    flags = {k: v for k, v in experiment_overrides(args).items() if v is not None}
    if args.average_seeds:
        flags["seed"] = args.average_seeds[0]
    return resolve_experiment(preset, None, {**values, **flags}).as_dict()


def attacker_variants(method_space: MethodSpace) -> list[tuple[dict, list[int]]]:
    """The pre-trained attackers a DAU space's trials can load: (every other key setting, the lengths
    to snapshot), from the fixed values and the `choice` lists of the settings that key the artifact.
    A key setting searched over a continuous range gets no pre-built attacker (each trial builds its own)."""
    import itertools

    from study.methods.dau import ATTACKER_KEY_PARAMS

    if method_space.method != "dau":
        return []
    options: dict[str, list] = {}
    for name in ATTACKER_KEY_PARAMS:
        if name in method_space.fixed:
            options[name] = [method_space.fixed[name]]
        elif name in method_space.grid:
            options[name] = list(method_space.grid[name])
        elif name in method_space.search:
            kind, args = next(iter(method_space.search[name].items()))
            if kind != "choice":
                print(f"note: {name} is searched over a range, so each trial pre-trains its own attacker; "
                      "search it as a choice to pre-build them once", flush=True)
                return []
            options[name] = list(args)
    lengths: dict[str, tuple[dict, set[int]]] = {}
    for values in itertools.product(*options.values()):
        params = dict(zip(options, values))
        iters = params.pop("attacker_pretrain_iters", None)
        key = json.dumps(params, sort_keys=True, default=str)
        lengths.setdefault(key, (params, set()))[1].add(iters)
    return [(params, sorted(i for i in found if i is not None) or [None]) for params, found in lengths.values()]


def prebuild_attackers(prepared, method_space: MethodSpace) -> None:
    """Pre-train (or find) every attacker snapshot a DAU space's trials will load, in one pass per setting."""
    from study.methods import build_method

    for params, lengths in attacker_variants(method_space):
        method = build_method("dau", {**method_space.fixed, **params})
        settings = method.attacker_settings(prepared.config.seed)
        store = prepared.attacker_store(log=lambda message: print(message, flush=True))
        store.ensure(settings, [settings.iters if n is None else n for n in lengths])


def prebuild_artifacts(experiment: dict, method_space: MethodSpace, cache: ArtifactCache,
                       need_retrain: bool = True, average_seeds: list[int] | None = None, device: str = "cpu") -> None:
    """Train (or find) every original (and Retrain, unless retrain-free) the trials will read, and DAU's
    pre-trained attackers, once."""
    from study.config import ExperimentConfig
    from study.pipeline import prepare

    seeds = average_seeds or method_space.values_of("seed") or [experiment["seed"]]
    sparsities = method_space.values_of("sparsity") or [experiment["sparsity"]]
    forgets = method_space.values_of("forget") or [experiment["forget"]]
    for seed in seeds:
        for sparsity in sparsities:
            for forget in forgets:
                config = ExperimentConfig.from_dict({**experiment, "seed": seed, "sparsity": sparsity, "forget": forget})
                prepared = prepare(config, cache, device=device, need_retrain=need_retrain,
                                   log=lambda message: print(message, flush=True))
                prebuild_attackers(prepared, method_space)
                if not need_retrain:
                    from study.heldout import RetrainFreeJudge

                    RetrainFreeJudge(prepared, cache)  # builds the RMIA reference models once
                    print(f"artifacts ready (retrain-free): seed {seed}, sparsity {sparsity:g}, forget {forget}",
                          flush=True)
                    continue
                retrain = prepared.retrain_metrics
                print(f"artifacts ready: seed {seed}, sparsity {sparsity:g}, forget {forget}: Retrain UA "
                      f"{retrain['UA']:.2f} MIA {retrain['MIA-Efficacy']:.2f} RA {retrain['RA']:.2f} "
                      f"TA {retrain['TA']:.2f}; original Avg. Disparity {prepared.original_metrics['avg_disparity']:.2f}",
                      flush=True)


ASHA_MAX_EPOCHS, ASHA_GRACE_EPOCHS, ASHA_REDUCTION = 200, 1, 2


def eval_milestones(args) -> list[int] | None:
    """The epochs a trial evaluates at besides its last: ASHA's rungs (the only epochs whose results
    it reads, computed as Ray's ASHAScheduler lays them out), none under FIFO, or None (every epoch)
    with --eval-every-epoch."""
    if args.eval_every_epoch:
        return None
    if args.scheduler != "asha":
        return []
    rungs = int(math.log(ASHA_MAX_EPOCHS / ASHA_GRACE_EPOCHS) / math.log(ASHA_REDUCTION) + 1)
    return [ASHA_GRACE_EPOCHS * ASHA_REDUCTION ** k for k in range(rungs)]


def _param_space(experiment: dict, method_space: MethodSpace, args, threads: int) -> dict:
    params, experiment_search = method_space.param_space()
    return {"experiment": {**experiment, **experiment_search}, "method": method_space.method, "params": params,
            "cache_dir": str(Path(args.cache_dir).resolve()), "threads": threads, "gpus": args.gpus_per_trial,
            "objective": args.objective, "retrain_free_score": args.retrain_free_score,
            "eval_milestones": eval_milestones(args),
            **({"average_seeds": list(args.average_seeds)} if args.average_seeds else {})}


def _tuner(method_space: MethodSpace, param_space: dict, args, space: SearchSpace, storage: str, name: str):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    trainable = resourced_trainable(args)
    max_concurrent = args.max_concurrent or space.max_concurrent
    search_alg = None
    if method_space.uses_optuna:
        import optuna

        sampler = optuna.samplers.TPESampler(seed=args.seed if args.seed is not None else 0)
        search_alg = ConcurrencyLimiter(OptunaSearch(sampler=sampler), max_concurrent=max_concurrent)
    # time_attr "epoch": a step may run several epochs (study.trainables evaluates only at the rungs)
    scheduler = (ASHAScheduler(time_attr="epoch", max_t=ASHA_MAX_EPOCHS, grace_period=ASHA_GRACE_EPOCHS,
                               reduction_factor=ASHA_REDUCTION)
                 if args.scheduler == "asha" else FIFOScheduler())
    reporter = None
    if not args.quiet:
        columns = {OBJECTIVES[args.objective]: "objective", "UA": "UA", "MIA-Efficacy": "MIA", "RA": "RA", "TA": "TA",
                   "epoch": "epochs"}
        reporter = tune.CLIReporter(metric_columns=columns,
                                    parameter_columns={f"params/{k}": k for k in method_space.search},
                                    max_report_frequency=30, sort_by_metric=True)
    run_config = tune.RunConfig(
        name=name, storage_path=storage, verbose=0 if args.quiet else 1, progress_reporter=reporter,
        checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=1, num_to_keep=1, checkpoint_at_end=True),
        failure_config=tune.FailureConfig(max_failures=args.max_failures))
    tune_config = tune.TuneConfig(metric=OBJECTIVES[args.objective], mode="min", search_alg=search_alg, scheduler=scheduler,
                                  num_samples=args.num_samples or space.num_samples,
                                  max_concurrent_trials=max_concurrent, trial_dirname_creator=trial_dirname,
                                  reuse_actors=True)  # the Trainable's reset_config sets each trial up afresh
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)


def expected_trials(method_space: MethodSpace, num_samples: int) -> int:
    """How many trials a complete study of this space has: num_samples per grid point."""
    count = num_samples
    for values in method_space.grid.values():
        count *= len(values)
    return count


def unfinished_trials(trials, expected: int) -> int:
    """Trials (an `analysis.load.load_study` frame) that neither terminated nor errored, never
    started ones included: nonzero after Ctrl+C, which Ray Tune turns into an early, quiet
    return from `fit()`."""
    done = int(trials["status"].isin(["TERMINATED", "ERROR"]).sum())
    return max(0, expected - done)


def run_study(args: argparse.Namespace) -> int:
    check_resources(args)
    set_threads(args.threads)  # the driver's, while it builds the artifacts; trials use --cpus-per-trial
    if args.device != "auto":
        resolve_device(args.device)
    space = load_space(args.space)
    method_spaces = [m for m in space.methods if args.method is None or m.method == args.method]
    if not method_spaces:
        raise UserError(f"space {space.name} has no method {args.method!r}; it has "
                        f"{', '.join(m.method for m in space.methods)}")
    if args.average_seeds and any(m.values_of("seed") for m in method_spaces):
        raise UserError(f"space {space.name} already runs each of its seeds as a trial (experiment.seeds); "
                        "--average-seeds would run them inside every trial as well")
    experiment = base_experiment(space, args)
    storage = args.storage if "://" in args.storage else str(Path(args.storage).resolve())
    if args.resume and not args.name:
        raise UserError("--resume needs --name: the study to continue")
    name = args.name or f"{space.name}-{experiment['dataset']}-{time.strftime('%Y%m%d-%H%M%S')}"
    multi = len(space.methods) > 1
    cache = ArtifactCache(args.cache_dir)
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")  # keep the experiment state fresh for --resume
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

    if args.resume:
        for method_space in method_spaces:
            study_dir = Path(storage) / name / (method_space.method if multi else "")
            if "://" not in storage and not (study_dir / STUDY_FILE).exists():
                raise UserError(f"no study to resume at {study_dir}")

    if args.gpus_per_trial > 0 and not args.address:
        import torch

        if not torch.cuda.is_available():  # said before Ray starts: trials here could not use a GPU
            raise UserError(f"--gpus-per-trial {args.gpus_per_trial} asked for, but this machine has no CUDA GPU "
                            "that torch can use; leave it at 0, or join a cluster with GPUs with --address")
    began = time.perf_counter()
    ray = connect_ray(args.address)
    ray_start_seconds = time.perf_counter() - began
    if args.gpus_per_trial > 0 and ray.cluster_resources().get("GPU", 0) < args.gpus_per_trial:
        raise UserError(f"--gpus-per-trial {args.gpus_per_trial} asked for, but the Ray cluster has "
                        f"{ray.cluster_resources().get('GPU', 0):g} GPUs")
    threads = max(1, int(args.cpus_per_trial))
    failures = 0
    for method_space in method_spaces:
        study_storage = str(Path(storage) / name) if multi and "://" not in storage else storage
        study_name = method_space.method if multi else name
        study_dir = Path(study_storage) / study_name
        print(f"\n== study {study_dir} : {method_space.method} on {experiment['dataset']}/{experiment['model']}, "
              f"forget {experiment['forget']} ==", flush=True)
        if args.objective == "retrain_free" and method_class(method_space.method).reference == "retrain":
            raise UserError("the retrain-free objective cannot tune the retrain method itself")
        from study.trainables import trial_device

        began = time.perf_counter()
        prebuild_artifacts(experiment, method_space, cache, need_retrain=args.objective != "retrain_free",
                           average_seeds=args.average_seeds, device=trial_device(args.gpus_per_trial))
        prebuild_seconds = time.perf_counter() - began
        param_space = _param_space(experiment, method_space, args, threads)
        if args.resume:
            from ray import tune

            tuner = tune.Tuner.restore(str(study_dir), trainable=resourced_trainable(args),
                                       resume_unfinished=True, resume_errored=True)
        else:
            tuner = _tuner(method_space, param_space, args, space, study_storage, study_name)
        study_meta = {"space": space.name, "space_file": str(space.path), "method": method_space.method,
                      "experiment": experiment, "objective": OBJECTIVES[args.objective],
                      "average_seeds": args.average_seeds,
                      "command": " ".join(["python -m study.tune", *sys.argv[1:]]), "status": "running"}
        if "://" not in storage:
            study_dir.mkdir(parents=True, exist_ok=True)
            if not args.resume:
                (study_dir / STUDY_FILE).write_text(json.dumps(study_meta, indent=2, default=str))
        started = time.perf_counter()
        results = tuner.fit()
        elapsed = time.perf_counter() - started
        frame = results.get_dataframe()
        errors = [r for r in results if r.error is not None]
        failures += len(errors)
        local = "://" not in storage
        if local:
            from analysis.load import load_study

            trials = load_study(study_dir)  # read once: for the interruption check and the ranking
        expected = expected_trials(method_space, args.num_samples or space.num_samples)
        missing = unfinished_trials(trials, expected) if local else 0
        if local:
            (study_dir / STUDY_FILE).write_text(json.dumps({
                **study_meta, "status": "interrupted" if missing else "finished", "wall_seconds": elapsed,
                "ray_start_seconds": ray_start_seconds, "prebuild_seconds": prebuild_seconds,
                "num_trials": len(results), "failed_trials": len(errors)}, indent=2, default=str))
        print(f"\n{method_space.method}: {len(results)} trials in {elapsed:.0f} s, {len(errors)} failed")
        for result in errors:
            print(f"  failed trial {result.path}: {str(result.error).strip().splitlines()[-1]}")
        if OBJECTIVES[args.objective] in frame and local:
            from analysis.rank import format_text, ranking

            print(format_text(ranking(trials, args.top, by=OBJECTIVES[args.objective])))
        print(f"results: {study_dir}\n  tensorboard --logdir {study_dir}\n"
              f"  python -m study.export {study_dir} --top 1 --out best.yaml")
        if missing:
            resume = [a for a in sys.argv[1:] if a != "--resume"]
            if args.name is None:
                resume += ["--name", name]
            print(f"interrupted: {missing} of {expected} trials unfinished; continue with\n"
                  f"  python -m study.tune {' '.join(resume)} --resume", file=sys.stderr)
            ray.shutdown()
            return 130
        if len(errors) == len(results):
            raise UserError(f"every trial of {method_space.method} failed; see the errors above")
    ray.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_study(build_parser().parse_args(argv))


run = cli_entry(main)

if __name__ == "__main__":
    run()
