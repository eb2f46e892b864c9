"""`python -m study.compare`: a fair Table 1. Every method is tuned with the same budget on the
tuning seeds, then its best configuration is run on evaluation seeds that no study saw.

    python -m study.compare --preset fmnist-proxy --forget random:10 --budget 16 --tune-seeds 0 \
        --eval-seeds 1 2 3 --out compare/

Each method is tuned on its own search space (a baseline: its section of `baselines`; DAU: the
space for the preset and forget scheme; `--space METHOD=SPACE` names another), all with the same
objective (or, with `--objective pareto`, the same Pareto objectives and pick rule), in this process
under one Ray session. Every study's first trial is the method's documented defaults, and trials are
scored on the experiment's selection set, never on the test set the tables report. Each method
then runs on the evaluation seeds twice: its chosen configuration and its documented defaults.
Writes `table.md` (mean ± std and median over the evaluation seeds, ToW, ToW-MIA, time/Retrain
without and with shared pre-training; per-metric gaps, MIA-Efficacy collapses, the relearning
test, the held-out attacks' TPR at 1% FPR, MIA-Efficacy's spread over 5 member subsets and the
paired difference to the best), `disparity_vs_time_<level>.png`, `configs/<level>/<method>.yaml`,
`trials/<level>/<method>.csv` (every trial of each study), `compare.json` and `runs.csv`. Run
again, it reuses finished studies and evaluation runs and computes only what
is missing; `--studies-only` stops after the studies, so a long comparison is tuned in one
sitting and evaluated in another. The same command with `--sparsity 0.95` into the same `--out`
adds the sparse level beside the dense one. The engine is `study.engine.comparison`.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from study.cli_common import add_experiment_arguments, experiment_overrides, set_threads
from study.core.errors import UserError, cli_entry
from study.core.progress import set_quiet
from study.core.staging import write_file_atomically
from study.engine.comparison import RELEARN_STEPS, ComparisonRequest, run_comparison
from study.evaluation.names import MIA_SUBSETS, OBJECTIVE_CHOICES, PARETO_OBJECTIVES
from study.experiment.config import resolve_experiment
from study.methods import METHODS, tunable_methods
from study.records.comparison import check_same_comparison, level_name, level_runs, transferred_configs
from study.records.pareto import PICK_RULES
from study.records.pareto import OPTUNA_FILE
from study.records.paths import portable_command
from study.records.run_log import RunLog


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m study.compare", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    tunable = tunable_methods()
    parser.add_argument("--methods", nargs="+", default=tunable, help=f"methods to compare (default: {' '.join(tunable)})")
    parser.add_argument("--budget", type=int, default=16,
                        help="trials per method, the same for every method (default 16); 0: no study, every "
                             "method at its documented defaults on the evaluation seeds (a defaults-only table, "
                             "without a tuning seed's models and trials)")
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[0], help="seeds the studies tune on (default 0)")
    parser.add_argument("--eval-seeds", type=int, nargs="+", default=[1, 2, 3],
                        help="seeds the chosen configurations are evaluated on; never seen by a study (default 1 2 3)")
    parser.add_argument("--objective", choices=OBJECTIVE_CHOICES, default="avg_disparity",
                        help="what every study minimises (default Avg. Disparity to Retrain); pareto: several gaps "
                             "at once (FIFO scheduler), each method's point picked on its front by --pick")
    parser.add_argument("--pareto-objectives", nargs="+", choices=tuple(PARETO_OBJECTIVES),
                        default=list(PARETO_OBJECTIVES), metavar="NAME",
                        help="a Pareto comparison's objectives, two or more of: forget, utility, mia, time "
                             "(default: all four)")
    parser.add_argument("--pick", choices=PICK_RULES, default="balanced",
                        help="the point of each Pareto front evaluated: balanced (default) or the front's best on "
                             "one objective")
    parser.add_argument("--relearn", type=int, default=RELEARN_STEPS, metavar="K",
                        help=f"the relearning test's steps on every evaluation row (default {RELEARN_STEPS}; 0: off)")
    parser.add_argument("--no-heldout", action="store_true",
                        help="leave the held-out attacks (TPR at 1%% FPR) out of the evaluation rows")
    parser.add_argument("--space", nargs="+", default=[], metavar="METHOD=SPACE",
                        help="tune METHOD on SPACE (a search_spaces/ name or a .yaml path holding its section) "
                             "instead of its default")
    parser.add_argument("--cpus-per-trial", type=float, default=None, help="CPU cores per trial (default 1)")
    parser.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: the space's)")
    parser.add_argument("--configs-from", default=None, metavar="FOLDER",
                        help="tune nothing: evaluate the configurations the comparison in FOLDER chose (and the "
                             "documented defaults) on this command's forget set and evaluation seeds, e.g. "
                             "configurations tuned on random:10 evaluated on memorised:10; the table says where "
                             "they were chosen")
    parser.add_argument("--eval-workers", type=int, default=1, metavar="N",
                        help="evaluation rows run N at a time, each in its own process with cores/N torch threads "
                             "(default 1: one after another in this process); rows are recorded as each finishes, "
                             "and Ctrl+C lets the rows in flight finish (twice: abandons them)")
    parser.add_argument("--out", default="compare", help="output folder (default ./compare)")
    parser.add_argument("--studies-only", action="store_true",
                        help="run (or reuse) the studies and write the chosen configurations, then stop before the "
                             "evaluation seeds: a long comparison can be tuned in one sitting and evaluated in another")
    parser.add_argument("--quiet", action="store_true", help="no progress lines or bars")
    parser.add_argument("--verbose", action="store_true",
                        help="Ray Tune's trial tables (every trial's parameters and metrics) instead of progress lines")
    add_experiment_arguments(parser)
    return parser


def parse_spaces(items: list[str]) -> dict[str, str]:
    """`--space METHOD=SPACE ...` -> {method: space}."""
    spaces = {}
    for item in items:
        method, sep, space = item.partition("=")
        if not sep or not method or not space:
            raise UserError(f"--space {item!r}: expected METHOD=SPACE")
        spaces[method] = space
    return spaces


def check_arguments(args: argparse.Namespace) -> None:
    unknown = [m for m in args.methods if m not in METHODS or METHODS[m].reference is not None]
    if unknown:
        raise UserError(f"--methods: {', '.join(unknown)} cannot be compared; choose from "
                        f"{', '.join(tunable_methods())} (Original and Retrain are always shown as reference rows)")
    if args.budget < 0:
        raise UserError("--budget must be 0 (documented defaults only, no study) or more trials")
    if args.budget == 0 and (args.configs_from or args.studies_only):
        raise UserError("--budget 0 tunes nothing, so it takes neither --configs-from nor --studies-only")
    if args.eval_workers < 1:
        raise UserError("--eval-workers must be at least 1")
    if args.relearn < 0:
        raise UserError("--relearn takes a number of steps, 0 (off) or more")
    if len(set(args.pareto_objectives)) < 2:
        raise UserError("--pareto-objectives needs two or more distinct objectives")
    overlap = sorted(set(args.tune_seeds) & set(args.eval_seeds))
    if overlap:
        raise UserError(f"seed(s) {' '.join(map(str, overlap))} are both tuning and evaluation seeds; "
                        "the evaluation seeds must be ones no study saw")
    for flag, seeds in (("--tune-seeds", args.tune_seeds), ("--eval-seeds", args.eval_seeds)):
        if len(set(seeds)) != len(seeds) or any(seed < 0 for seed in seeds):
            raise UserError(f"{flag} must list distinct seeds of 0 or more")


def exit_status(record: dict, level: str, out: Path) -> int:
    """0 when at least one study finished; every study failing is an error (after what could be written is)."""
    entry = record["levels"][level]
    if len(entry["failed"]) == len(entry["methods"]):
        raise UserError(f"every study failed; see the log above and {out / 'studies' / level}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from analysis.compare_table import disparity_figure, render

    args = build_parser().parse_args(argv)
    check_arguments(args)
    set_quiet(args.quiet)
    set_threads(args.threads)
    experiment = resolve_experiment(args.preset, None, experiment_overrides(args))
    source, transferred = (transferred_configs(Path(args.configs_from), level_name(experiment.sparsity),
                                               list(args.methods), experiment.as_dict(), args.eval_seeds)
                           if args.configs_from else (None, {}))
    # with --configs-from, the header records the protocol that chose the configurations, not a budget spent here
    tuning = source or {"budget": args.budget, "tune_seeds": args.tune_seeds, "objective": args.objective}
    request = ComparisonRequest(
        methods=list(args.methods), experiment=experiment, preset=args.preset or "digits", out=Path(args.out),
        cache_dir=args.cache_dir, budget=tuning["budget"], tune_seeds=tuning["tune_seeds"], eval_seeds=args.eval_seeds,
        objective=tuning["objective"], pareto=tuple(dict.fromkeys(args.pareto_objectives)), pick=args.pick,
        relearn_steps=args.relearn, heldout=not args.no_heldout, eval_workers=args.eval_workers,
        spaces=parse_spaces(args.space), cpus_per_trial=args.cpus_per_trial,
        max_concurrent=args.max_concurrent, studies_only=args.studies_only, quiet=args.quiet,
        verbose=args.verbose,
        source=source, transferred=transferred,
        command=portable_command("python -m study.compare", sys.argv[1:] if argv is None else argv))
    previous = check_same_comparison(request.out, request.header())
    log = lambda message: print(message, flush=True)  # noqa: E731
    tuned = (f"configurations chosen by {args.configs_from} (forget {source['configs_from']['forget']}; "
             f"{request.budget} trials per method on seed(s) {' '.join(map(str, request.tune_seeds))}), not tuned here"
             if source else "budget 0: no study, every method at its documented defaults" if not args.budget
             else f"budget: {args.budget} trials per method, the same for every method; tuning seed(s) "
             f"{' '.join(map(str, args.tune_seeds))}")
    log(f"{tuned}; evaluation seed(s) {' '.join(map(str, args.eval_seeds))}; level {request.level}")
    began = time.perf_counter()
    record = run_comparison(request, previous, log)
    if args.studies_only:
        log(f"--studies-only: {len(record['levels'][request.level]['configs'])} configuration(s) in "
            f"{request.out / 'configs' / request.level}; evaluation seeds not run (the same command without "
            "--studies-only runs them)")
        print_dashboard_command(request.out)
        return exit_status(record, request.level, request.out)
    runs_by_level = level_runs(record, RunLog(request.out / "runs.csv"), request.preset)
    if request.level in runs_by_level:
        disparity_figure(runs_by_level[request.level], request.out, request.level)
    text = (render(record, runs_by_level, MIA_SUBSETS, request.out) + f"\nWall time of this sitting: "
            f"{time.perf_counter() - began:.0f} s (a resumed comparison counts only what it ran this time)")
    write_file_atomically(request.out / "table.md", text + "\n")
    print("\n" + text)
    print_dashboard_command(request.out)
    return exit_status(record, request.level, request.out)


def print_dashboard_command(out: Path) -> None:
    """The one command that browses every method's study of the comparison side by side."""
    if (out / OPTUNA_FILE).is_file():
        print("\nEvery method's study, with each trial's metrics: "
              f"optuna-dashboard sqlite:///{(out / OPTUNA_FILE).resolve()}  (pip install -e \".[dashboard]\")")


run = cli_entry(main)

if __name__ == "__main__":
    run()
