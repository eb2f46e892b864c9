"""`python -m study.run`: unlearn once, compare to Retrain, save a run folder.

Example (the embedded default, ~1 minute on 2 cores):
    python -m study.run --method dau --out runs/digits-dau
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from study.cache import ArtifactCache
from study.cli_common import (add_experiment_arguments, experiment_overrides, parse_params, read_method_config,
                              resolve_device, set_threads)
from study.config import resolve_experiment
from study.errors import UserError, cli_entry
from study.methods import METHODS, build_method
from study.metrics import METRIC_NAMES
from study.pipeline import prepare
from study.run_folder import write_run_folder
from study.runner import run_method


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m study.run",
        description="Unlearn a forget set from a trained classifier with one method and compare it to "
                    "retraining from scratch (UA, MIA-Efficacy, RA, TA, Avg. Disparity, run time).")
    parser.add_argument("--method", default=None, help=f"one of {', '.join(METHODS)} (default: dau)")
    parser.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                        help="method hyperparameter, repeatable (see --list-methods)")
    parser.add_argument("--no-regularizer", action="store_true",
                        help="DAU without the Barlow Twins term (same as -p regularizer=false)")
    parser.add_argument("--config", default=None,
                        help="YAML/JSON from `python -m study.export`, a run's config.json, or a method config "
                             "(bench/configs/*.yaml: 'method' and 'params' only, the experiment then comes from "
                             "the flags); flags override it")
    parser.add_argument("--out", default=None, help="run folder to write (model.pt, metrics.json, config.json, splits)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--eval-every-epoch", action="store_true", help="print the metrics after every epoch")
    parser.add_argument("--retrain-free", action="store_true",
                        help="never build or read a Retrain model: report held-out attacks and the retrain-free score "
                             "instead of Avg. Disparity (the production setting)")
    parser.add_argument("--list-methods", action="store_true", help="list methods and their hyperparameters, then exit")
    add_experiment_arguments(parser)
    return parser


def list_methods() -> None:
    for name, cls in METHODS.items():
        print(f"{name}: {cls.summary}")
        for hyperparam in cls.hyperparams:
            print(f"    {hyperparam.describe()}")


def format_table(rows: list[tuple[str, dict, float | None]], retrain_seconds: float | None) -> str:
    header = f"{'method':<12}" + "".join(f"{name:>14}" for name in (*METRIC_NAMES, "Avg.Disparity", "time (s)", "time/Retrain"))
    lines = [header, "-" * len(header)]
    for name, metrics, seconds in rows:
        cells = [f"{metrics.get(m, float('nan')):>14.2f}" for m in (*METRIC_NAMES, "avg_disparity")]
        cells.append(f"{seconds:>14.2f}" if seconds is not None else f"{'-':>14}")
        ratio = seconds / retrain_seconds if seconds is not None and retrain_seconds else None
        cells.append(f"{ratio:>14.3f}" if ratio is not None else f"{'-':>14}")
        lines.append(f"{name:<12}" + "".join(cells))
    return "\n".join(lines)


def artifact_time_line(name: str, seconds: float, run_seconds: float, retrain_seconds: float | None) -> str:
    """A shared artifact's time (DAU's attacker pre-training) and the run's time/Retrain with and without it."""
    what = name.removesuffix("_seconds").replace("_", " ")
    line = f"{what}: {seconds:.2f} s, once per original model and shared by every run on it (not in time (s))"
    if retrain_seconds:
        line += (f"; time/Retrain {run_seconds / retrain_seconds:.3f} without it, "
                 f"{(run_seconds + seconds) / retrain_seconds:.3f} with it")
    return line


def format_mia_table(rows: list[tuple[str, dict, float | None]]) -> str:
    """The metric-based MIAs: % of forget samples called non-member (balanced accuracy of the attack)."""
    from study.mia import SIGNALS

    header = f"{'method':<12}" + "".join(f"{name:>22}" for name in SIGNALS)
    lines = ["metric-based MIAs: forget samples called non-member, % (attack balanced accuracy on retain vs test, %)",
             header, "-" * len(header)]
    for name, metrics, _ in rows:
        cells = [f"{metrics.get(f'mia/{s}', float('nan')):>12.2f} ({metrics.get(f'mia/{s}_bacc', float('nan')):5.1f})"
                 for s in SIGNALS]
        lines.append(f"{name:<12}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def format_retrain_free_table(rows: list[tuple[str, dict]]) -> str:
    columns = ("retrain_free_score", "retrain_free/forget_gap", "retrain_free/attack_gap", "retrain_free/retain_drop",
               "retrain_free/val_drop", "heldout/samia_auc", "heldout/rmia_auc")
    names = [c.split("/")[-1] for c in columns]
    header = f"{'method':<12}" + "".join(f"{n:>20}" for n in names)
    lines = [header, "-" * len(header)]
    for name, values in rows:
        lines.append(f"{name:<12}" + "".join(f"{values.get(c, float('nan')):>20.3f}" for c in columns))
    return "\n".join(lines)


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("torch", "ray", "optuna", "scikit-learn", "pandas", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_methods:
        list_methods()
        return 0
    file_config = read_method_config(args.config, "--config") if args.config else {}
    method_name = args.method or file_config.get("method") or "dau"
    params = dict(file_config.get("params") or {}) if method_name == file_config.get("method") else {}
    params.update(parse_params(args.param))
    if args.no_regularizer:
        params["regularizer"] = False
    method = build_method(method_name, params)  # validates before any training

    experiment = resolve_experiment(args.preset, file_config.get("experiment"), experiment_overrides(args))
    set_threads(args.threads)
    device = resolve_device(args.device)
    print(f"experiment: {experiment.dataset} / {experiment.model} / forget {experiment.forget} / "
          f"seed {experiment.seed} / sparsity {experiment.sparsity:g} / device {device}")
    if args.retrain_free and method.reference == "retrain":
        raise UserError("--retrain-free cannot run the retrain method itself")
    cache = ArtifactCache(args.cache_dir)
    prepared = prepare(experiment, cache, device=device, need_retrain=not args.retrain_free)
    print(f"split: retain {len(prepared.splits.retain)}, forget {len(prepared.splits.forget)}, "
          f"val {len(prepared.splits.val)}, test {len(prepared.splits.test)}")
    print(f"running {method.name} with {json.dumps(method.params)}")
    result = run_method(prepared, method, eval_every_epoch=args.eval_every_epoch)

    rows = [("original", prepared.original_metrics, None)]
    if prepared.retrain_metrics is not None:
        rows.append(("retrain", prepared.retrain_metrics, prepared.retrain_seconds))
    if method.reference is None:
        rows.append((method.name, result.metrics, result.run_seconds))
    print()
    print(format_table(rows, prepared.retrain_seconds))
    for name, seconds in result.artifact_seconds.items():
        print(artifact_time_line(name, seconds, result.run_seconds, prepared.retrain_seconds))
    print()
    print(format_mia_table(rows))
    if args.retrain_free:
        from study.heldout import RetrainFreeJudge

        print("\nheld-out attacks (fresh SAMIA, offline RMIA) and the retrain-free score (no Retrain model used) ...")
        judge = RetrainFreeJudge(prepared, cache)
        prepared.original_metrics.update(judge(prepared.original))
        judged = [("original", prepared.original_metrics)]
        if method.reference != "original":
            result.metrics.update(judge(result.model))
            judged.append((method.name, result.metrics))
        print(format_retrain_free_table(judged))
    if args.out:
        config = {"experiment": experiment.as_dict(), "method": method.name, "params": method.params,
                  "versions": package_versions(), "command": "python -m study.run " + " ".join(sys.argv[1:] if argv is None else argv)}
        metrics = {"method": method.name, "metrics": result.metrics, "run_seconds": result.run_seconds,
                   "retrain": prepared.retrain_metrics, "retrain_seconds": prepared.retrain_seconds,
                   "original": prepared.original_metrics,
                   "time_ratio_to_retrain": result.run_seconds / prepared.retrain_seconds if prepared.retrain_seconds else None,
                   **result.artifact_seconds, "epochs": result.epochs}
        folder = write_run_folder(Path(args.out), result.model, prepared.splits, config, metrics, args.overwrite)
        print(f"\nwrote {folder}/ (metrics.json, model.pt, config.json, splits.npz)")
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run()
