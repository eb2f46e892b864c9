"""`python -m analysis.runs RUN [RUN ...]`: run folders side by side, for ablations run by hand.

Reads only each folder's `config.json` and `metrics.json` (written by `python -m study.run
--out RUN`), so it is instant and needs no dataset. One row per run: experiment (seed,
forget, sparsity), the four headline metrics and Avg. Disparity, the original's Avg.
Disparity on the same split and the change against it, the per-class confidence attack
beside the SVM's MIA-Efficacy (they disagree when the SVM collapses, docs/RESULTS.md, the MIA-Efficacy jump section), and
every hyperparameter whose value differs between the runs, i.e. what the ablation varied.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from analysis.formatting import format_number, markdown_table
from study.core.errors import UserError, cli_entry
from study.evaluation.names import HEADLINE, shared_seconds, time_ratio
from study.methods import METHODS, shared_artifact_keys
from study.records.run_folder import read_run_json


def read_run(folder: str | Path) -> dict:
    """One row: the run's experiment, metrics and hyperparameters (prefixed `params.`)."""
    folder = Path(folder)
    files = {name: folder / f"{name}.json" for name in ("config", "metrics")}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise UserError(f"{folder} is not a finished run folder (missing {', '.join(missing)})")
    config, metrics = read_run_json(folder)
    if not isinstance(metrics.get("metrics"), dict) or not isinstance(config.get("experiment"), dict):
        raise UserError(f"{folder}: metrics.json or config.json lacks the fields study.run writes")
    experiment, own = config["experiment"], metrics["metrics"]
    row = {"run": folder.name, "method": config.get("method", metrics.get("method", "")),
           "seed": experiment.get("seed"), "forget": experiment.get("forget"), "sparsity": experiment.get("sparsity")}
    row.update({name: own.get(name) for name in HEADLINE})
    original = metrics.get("original") or {}
    row["original avg_disparity"] = original.get("avg_disparity")
    if row["avg_disparity"] is not None and row["original avg_disparity"]:
        row["change vs original %"] = 100.0 * (row["avg_disparity"] / row["original avg_disparity"] - 1.0)
    row["confidence attack"] = own.get("mia/confidence")
    row["retrain confidence attack"] = (metrics.get("retrain") or {}).get("mia/confidence")
    retrain = metrics.get("retrain") or {}
    if own.get("TA") is not None and retrain.get("TA") is not None:
        row["TA - Retrain"] = own["TA"] - retrain["TA"]
    row["run_seconds"] = metrics.get("run_seconds")
    row["time/Retrain"] = metrics.get("time_ratio_to_retrain")
    if any(key in metrics for key in shared_artifact_keys()):  # shared pre-training, apart from the run time
        pretrain = shared_seconds(metrics, shared_artifact_keys())
        row["pretrain_seconds"] = pretrain
        row["time/Retrain with pretrain"] = time_ratio(metrics.get("run_seconds"), metrics.get("retrain_seconds"),
                                                        pretrain)
    row.update({f"params.{key}": value for key, value in with_defaults(row["method"], config.get("params")).items()})
    return row


def with_defaults(method: str, params: dict | None) -> dict:
    """The run's hyperparameters, completed with today's defaults for any it does not record:
    a run written before a hyperparameter existed ran with what is now its default."""
    declared = METHODS[method].hyperparams if method in METHODS else ()
    return {**{h.name: h.default for h in declared}, **(params or {})}


def compare_runs(folders: list[str | Path], all_params: bool = False) -> pd.DataFrame:
    """The comparison table, in the order given; `params.*` columns only where the runs differ
    (all of them with `all_params`), shown without the prefix."""
    frame = pd.DataFrame([read_run(folder) for folder in folders])
    params = [c for c in frame.columns if c.startswith("params.")]
    varying = [c for c in params if all_params or frame[c].astype(str).nunique() > 1]
    frame = frame.drop(columns=[c for c in params if c not in varying])
    frame = frame.dropna(axis=1, how="all")
    return frame.rename(columns=lambda c: c.removeprefix("params."))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis.runs", description=__doc__.splitlines()[0],
                                     epilog="Example: python -m analysis.runs runs/dau-s3 runs/dau-s3-no-bt --markdown")
    parser.add_argument("runs", nargs="+", help="run folders (python -m study.run --out RUN)")
    parser.add_argument("--all-params", action="store_true",
                        help="show every hyperparameter, not only those that differ between the runs")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--csv", action="store_true", help="CSV instead of a text table")
    output.add_argument("--markdown", action="store_true", help="Markdown table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    table = compare_runs(args.runs, args.all_params)
    if args.csv:
        print(table.to_csv(index=False), end="")
    elif args.markdown:
        print(markdown_table(table))
    else:
        print(table.to_string(index=False, float_format=format_number))
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run()
