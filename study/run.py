"""`python -m study.run`: unlearn once, compare to Retrain, save a run folder.

Example (the embedded default, ~1 minute on 2 cores):
    python -m study.run --method dau --out runs/digits-dau
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from study.cli_common import (
    add_experiment_arguments,
    experiment_overrides,
    parse_params,
    resolve_device,
    set_threads,
)
from study.core.cache import ArtifactCache
from study.core.errors import UserError, cli_entry
from study.core.progress import set_quiet
from study.core.splits import parse_forget_spec
from study.core.versions import package_versions
from study.engine.runner import run_method
from study.evaluation.margins import example_margins
from study.evaluation.names import time_ratio
from study.evaluation.noise import within_sampling_noise
from study.experiment.config import resolve_experiment
from study.experiment.prepare import prepare
from study.methods import METHODS, build_method
from study.records.method_config import read_method_config
from study.records.paths import portable_command
from study.records.run_folder import write_run_folder


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m study.run",
        description="Unlearn a forget set from a trained classifier with one method and compare it to "
                    "retraining from scratch (UA, MIA-Efficacy, RA, TA, Avg. Disparity, run time).")
    parser.add_argument("--method", default=None, help=f"one of {', '.join(METHODS)} (default: dau)")
    parser.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                        help="method hyperparameter, repeatable (see --list-methods)")
    parser.add_argument("--no-regularizer", action="store_true",
                        help="the same as -p regularizer=false: a method's regularizer off (DAU's Barlow Twins term)")
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
    parser.add_argument("--relearn", type=int, default=0, metavar="K",
                        help="the relearning test: UA on half the forget set after K fine-tuning steps on the other "
                             "half, for the method, "
                             "the original and Retrain (lower than Retrain's: the knowledge was hidden, not removed; "
                             "default 0 = off)")
    parser.add_argument("--list-methods", action="store_true", help="list methods and their hyperparameters, then exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    add_experiment_arguments(parser)
    return parser


def list_methods() -> None:
    for name, cls in METHODS.items():
        print(f"{name}: {cls.summary}")
        for hyperparam in cls.hyperparams:
            print(f"    {hyperparam.describe()}")


def main(argv: list[str] | None = None) -> int:
    from analysis.run_tables import (
        artifact_time_line,
        format_mia_table,
        format_retrain_free_table,
        format_table,
    )

    args = build_parser().parse_args(argv)
    if args.list_methods:
        list_methods()
        return 0
    set_quiet(args.quiet)
    file_config = read_method_config(args.config, "--config") if args.config else {}
    method_name = args.method or file_config.get("method") or "dau"
    params = dict(file_config.get("params") or {}) if method_name == file_config.get("method") else {}
    params.update(parse_params(args.param))
    if args.no_regularizer:
        params["regularizer"] = False
    method = build_method(method_name, params)  # validates before any training

    experiment = resolve_experiment(args.preset, file_config.get("experiment"), experiment_overrides(args))
    # an exported trial re-runs with the threads it ran with (float results, and so a min-max run's
    # course, depend on them); --threads overrides
    threads = args.threads if args.threads is not None else (file_config.get("source") or {}).get("threads")
    set_threads(threads)
    device = resolve_device(args.device)
    print(f"experiment: {experiment.dataset} / {experiment.model} / forget {experiment.forget} / "
          f"seed {experiment.seed} / sparsity {experiment.sparsity:g} / device {device}"
          + (f" / {threads} thread(s), as the exported trial ran" if threads and args.threads is None else ""))
    if args.relearn < 0:
        raise UserError("--relearn takes a number of steps, 0 (off) or more")
    if args.retrain_free and method.reference == "retrain":
        raise UserError("--retrain-free cannot run the retrain method itself")
    cache = ArtifactCache(args.cache_dir)
    prepared = prepare(experiment, cache, device=device, need_retrain=not args.retrain_free)
    print(f"split: retain {len(prepared.splits.retain)}, forget {len(prepared.splits.forget)}, "
          f"val {len(prepared.splits.val)}, test {len(prepared.splits.test)}; precision {prepared.config.precision}")
    print(f"running {method.name} with {json.dumps(resolved_params(method, experiment))}")
    result = run_method(prepared, method, eval_every_epoch=args.eval_every_epoch)

    rows = [("original", prepared.original_metrics, None)]
    if prepared.retrain_metrics is not None:
        rows.append(("retrain", prepared.retrain_metrics, prepared.retrain_seconds))
    if method.reference is None:
        rows.append((method.name, result.metrics, result.run_seconds))
    print("\nscored on the test set (TA; MIA-Efficacy's non-members), the forget set (UA) and the retain set (RA); "
          "a study's trials are scored on the selection set instead, so their TA differs")
    print(format_table(rows, prepared.retrain_seconds))
    if prepared.retrain_metrics is not None:
        print_noise_note(prepared)
    for name, seconds in result.artifact_seconds.items():
        print(artifact_time_line(name, seconds, result.run_seconds, prepared.retrain_seconds))
    print()
    print(format_mia_table(rows))
    if args.retrain_free:
        from study.evaluation.heldout import RetrainFreeJudge

        print("\nheld-out attacks (fresh SAMIA, offline RMIA) and the retrain-free score (no Retrain model used) ...")
        judge = RetrainFreeJudge(prepared, cache)
        prepared.original_metrics.update(judge(prepared.original))
        judged = [("original", prepared.original_metrics)]
        if method.reference != "original":
            result.metrics.update(judge(result.model))
            judged.append((method.name, result.metrics))
        print(format_retrain_free_table(judged))
    if args.relearn:
        relearn_rows(args.relearn, prepared, method, result, device)
    if args.out:
        config = {"experiment": experiment.as_dict(), "method": method.name, "params": method.params,
                  "versions": package_versions(), "command": portable_command("python -m study.run", sys.argv[1:] if argv is None else argv)}
        metrics = {"method": method.name, "metrics": result.metrics, "run_seconds": result.run_seconds,
                   "retrain": prepared.retrain_metrics, "retrain_seconds": prepared.retrain_seconds,
                   "original": prepared.original_metrics, "references": {**prepared.reference_digests(), **result.artifact_digests},
                   "time_ratio_to_retrain": time_ratio(result.run_seconds, prepared.retrain_seconds),
                   **result.artifact_seconds, "epochs": result.epochs}
        margins = example_margins(result.model, prepared.data, prepared.splits, device, result.predictions)
        folder = write_run_folder(Path(args.out), result.model, prepared.splits, config, metrics, args.overwrite,
                                  margins)
        print(f"\nwrote {folder}/ (metrics.json, model.pt, config.json, splits.npz, margins.npz)")
    return 0


def print_noise_note(prepared) -> None:
    """Say so when the untouched original is already as close to Retrain as the set sizes can tell."""
    splits = prepared.splits
    sizes = {"forget": len(splits.forget), "retain": len(splits.retain), "test": len(splits.test)}
    if within_sampling_noise(prepared.original_metrics, prepared.retrain_metrics, sizes):
        print(f"note: the original is already within sampling noise of Retrain on every metric (forget set of "
              f"{sizes['forget']}, test set of {sizes['test']}): this split leaves little to unlearn, and Avg. "
              "Disparity differences of about a point here are noise")


def resolved_params(method, experiment) -> dict:
    """The values the run takes: those given, and for a default left open (None) the one the setting
    resolves it to (DAU's learning rate and epochs follow the reference's command for the scheme)."""
    defaults = type(method).documented_defaults(parse_forget_spec(experiment.forget).scheme, experiment.dataset,
                                                experiment.sparsity)
    return {name: defaults.get(name) if value is None else value for name, value in method.params.items()}


def relearn_rows(steps: int, prepared, method, result, device: str) -> None:
    """The relearning test for the original, Retrain and the method (`study.evaluation.relearn`),
    printed and kept in the method's metrics (`relearn_UA`, `relearn_steps`)."""
    from study.evaluation.relearn import relearn_ua

    models = [("original", prepared.original)]
    if prepared.retrain is not None:
        models.append(("retrain", prepared.retrain))
    if method.reference is None:
        models.append((method.name, result.model))
    print(f"\nrelearning test: UA on half the forget set after {steps} fine-tuning steps on the other half (with "
          "retain samples); below Retrain's: the forgotten data comes back faster than data never learned")
    for name, model in models:
        value = relearn_ua(model, prepared.data, prepared.splits, steps, prepared.config.seed, device)
        print(f"  {name:>10}: {value:6.2f}")
        if name == method.name or (method.reference and name == method.reference):
            result.metrics.update(relearn_UA=value, relearn_steps=steps)


run = cli_entry(main)

if __name__ == "__main__":
    run()
