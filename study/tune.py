"""`python -m study.tune --space classwise`: search a method's hyperparameters with Ray Tune + Optuna.

Parses the command line, asks the study engine (`study.engine.study`) for one study per method
of the space, and prints each study's ranking (`analysis.rank`) and where its results are.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from study.cli_common import (
    add_experiment_arguments,
    experiment_overrides,
    resolve_device,
    set_threads,
)
from study.core.errors import UserError, cli_entry
from study.core.progress import set_quiet
from study.engine.ray_cluster import ray_session
from study.engine.spaces import SearchSpace, available_spaces, load_space
from study.engine.study import StudyRequest, check_request, check_resumable, run_study
from study.evaluation.names import OBJECTIVE_CHOICES, PARETO, PARETO_OBJECTIVES
from study.experiment.config import resolve_experiment
from study.records.pareto import OPTUNA_FILE
from study.records.paths import portable_command


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
    parser.add_argument("--objective", choices=OBJECTIVE_CHOICES, default="avg_disparity",
                        help="what trials minimise: Avg. Disparity to Retrain (default), the retrain-free score "
                             "(held-out attacks + accuracy gaps; no Retrain model is built or read), or pareto: "
                             "several gaps at once (--pareto-objectives), ending with the non-dominated trials")
    parser.add_argument("--pareto-objectives", nargs="+", choices=tuple(PARETO_OBJECTIVES),
                        default=list(PARETO_OBJECTIVES), metavar="NAME",
                        help="a Pareto search's objectives (absolute gaps to Retrain), two or more of: forget (UA), "
                             "utility (RA + TA), "
                             "mia (MIA-Efficacy), time (time / Retrain) (default: all four)")
    parser.add_argument("--retrain-free-score", action="store_true",
                        help="also report the retrain-free score and held-out attacks (to compare the objectives)")
    parser.add_argument("--scheduler", choices=("asha", "fifo"), default=None,
                        help="trial scheduler (default asha; fifo for a Pareto search, which ASHA cannot stop on)")
    parser.add_argument("--eval-every-epoch", action="store_true",
                        help="evaluate every epoch, for per-epoch curves (default: only the epochs the scheduler "
                             "reads, ASHA's rungs 1, 2, 4, 8, ..., and each trial's last epoch)")
    parser.add_argument("--max-failures", type=int, default=0, help="retries of a failed trial (default 0)")
    parser.add_argument("--top", type=int, default=5, help="trials shown in the final ranking (default 5)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines or bars")
    parser.add_argument("--verbose", action="store_true",
                        help="Ray Tune's trial table (every trial's parameters and metrics) instead of one "
                             "progress line")
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
    if args.resume and not args.name:
        raise UserError("--resume needs --name: the study to continue")
    if args.gpus_per_trial > 0 and not args.address:
        import torch

        if not torch.cuda.is_available():  # said before Ray starts: trials here could not use a GPU
            raise UserError(f"--gpus-per-trial {args.gpus_per_trial} asked for, but this machine has no CUDA GPU "
                            "that torch can use; leave it at 0, or join a cluster with GPUs with --address")


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


def requests(args: argparse.Namespace) -> list[StudyRequest]:
    """One study request per method of the space (a multi-method space keeps them side by side)."""
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
    name = args.name or f"{space.name}-{experiment['dataset']}-{time.strftime('%Y%m%d-%H%M%S')}"
    multi = len(space.methods) > 1
    return [StudyRequest(
        space=space, method_space=method_space, experiment=experiment,
        storage=str(Path(storage) / name) if multi and "://" not in storage else storage,
        name=method_space.method if multi else name, cache_dir=args.cache_dir, num_samples=args.num_samples,
        max_concurrent=args.max_concurrent, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        resume=args.resume, average_seeds=args.average_seeds, objective=args.objective,
        pareto=tuple(dict.fromkeys(args.pareto_objectives)), retrain_free_score=args.retrain_free_score,
        scheduler=args.scheduler or ("fifo" if args.objective == PARETO else "asha"),
        eval_every_epoch=args.eval_every_epoch,
        max_failures=args.max_failures, quiet=args.quiet, verbose=args.verbose,
        sampler_seed=args.seed if args.seed is not None else 0,
        command=portable_command("python -m study.tune", sys.argv[1:]),
        # one Optuna file per run: <storage>/<name>/optuna.db, a study per method of a multi-method space
        optuna_file=str(Path(storage) / name / OPTUNA_FILE) if "://" not in storage else None,
        optuna_study=method_space.method if multi else name) for method_space in method_spaces]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_resources(args)
    set_quiet(args.quiet)
    set_threads(args.threads)  # the driver's, while it builds the artifacts; trials use --cpus-per-trial
    if args.device != "auto":
        resolve_device(args.device)
    studies = requests(args)
    for request in studies:
        check_request(request)
        check_resumable(request)
    log = lambda message: print(message, flush=True)  # noqa: E731
    with ray_session(args.address) as ray_start_seconds:
        if args.gpus_per_trial > 0:
            import ray

            if ray.cluster_resources().get("GPU", 0) < args.gpus_per_trial:
                raise UserError(f"--gpus-per-trial {args.gpus_per_trial} asked for, but the Ray cluster has "
                                f"{ray.cluster_resources().get('GPU', 0):g} GPUs")
        for request in studies:
            log(f"\n== study {request.study_dir} : {request.method_space.method} on {request.experiment['dataset']}/"
                f"{request.experiment['model']}, forget {request.experiment['forget']} ==")
            outcome = run_study(request, log, ray_start_seconds)
            report(outcome, request, args)
            if outcome.missing:
                resume = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--resume"]
                if args.name is None:
                    resume += ["--name", request.name if len(studies) == 1 else Path(request.storage).name]
                print(f"interrupted: {outcome.missing} of {outcome.expected} trials unfinished; continue with\n"
                      f"  python -m study.tune {' '.join(resume)} --resume", file=sys.stderr)
                return 130
            if outcome.status == "failed":
                raise UserError(f"every trial of {outcome.method} failed; see the errors above")
    return 0


def report(outcome, request: StudyRequest, args: argparse.Namespace) -> None:
    """The study's trial counts, failures, ranking and the commands that read it."""
    print(f"\n{outcome.method}: {outcome.trials} trials in {outcome.wall_seconds:.0f} s, {len(outcome.failures)} failed")
    for path, error in outcome.failures:
        print(f"  failed trial {path}: {error}")
    if outcome.trial_table is not None and request.objective == PARETO and request.local:
        from analysis.rank import format_front
        from study.records.pareto import front, order_front

        rows = order_front(front(outcome.trial_table, outcome.study_dir, request.metrics), request.metrics)
        print(format_front(rows, request.metrics))
    elif outcome.trial_table is not None and request.metric in outcome.trial_table:
        from analysis.rank import format_text, ranking, ranking_header

        print(ranking_header(outcome.trial_table, args.top, by=request.metric))
        print(format_text(ranking(outcome.trial_table, args.top, by=request.metric)))
    print(f"results: {outcome.study_dir}\n  tensorboard --logdir {outcome.study_dir}\n"
          f"  python -m study.export {outcome.study_dir} --top 1 --out best.yaml")
    if request.optuna_storage and request.method_space.uses_optuna:
        print(f"  optuna-dashboard {request.optuna_storage}")


run = cli_entry(main)

if __name__ == "__main__":
    run()
