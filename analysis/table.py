"""`python -m analysis.table <study dir>...`: the paper's Table 1 layout from finished studies.

Rows are methods (Retrain first, the paper's order), columns UA, MIA-Efficacy, RA, TA,
Avg. Disparity and run time, dense and sparse side by side. Each method is represented by
its best configuration: the one with the lowest Avg. Disparity averaged over the seeds it
ran with; cells are mean ± std over those seeds. Retrain's row is the reference every trial
reported (one value per seed and sparsity).
"""
from __future__ import annotations

import argparse

import pandas as pd

from analysis.formatting import markdown_table, mean_std
from study.core.errors import UserError, cli_entry
from study.evaluation.names import HEADLINE, TABLE_COLUMNS, label
from study.methods import display_name
from study.methods import sort_key as method_sort_key
from study.records.trials import finished, load_study


def _config_key(frame: pd.DataFrame) -> pd.Series:
    """One string per distinct hyperparameter configuration (seed excluded)."""
    params = sorted(c for c in frame.columns if c.startswith("params."))
    return frame[params].astype(str).agg("|".join, axis=1) if params else pd.Series("", index=frame.index)


def best_configurations(frame: pd.DataFrame) -> pd.DataFrame:
    """The finished trials of each (method, sparsity)'s best configuration, all its seeds."""
    ok = finished(frame).copy()
    if ok.empty:
        return ok
    ok["config_key"] = _config_key(ok)
    ok["sparsity"] = ok.get("experiment.sparsity", 0.0)
    chosen = []
    for _, group in ok.groupby(["method", "sparsity"], sort=False):
        means = group.groupby("config_key")["avg_disparity"].mean().sort_values(kind="stable")
        chosen.append(group[group["config_key"] == means.index[0]])
    return pd.concat(chosen)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Long table: one row per (method, sparsity) with `<metric>_mean`, `<metric>_std`, `n`.

    `runs` has one row per run: `method`, `sparsity`, the metric columns; Retrain rows are
    ordinary rows with method 'retrain'. Used for studies and for the paper-protocol benchmark.
    """
    grouped = runs.groupby(["method", "sparsity"], sort=False)
    summary = grouped[list(TABLE_COLUMNS)].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    summary["n"] = grouped.size()
    summary = summary.reset_index()
    order = summary["method"].map(method_sort_key)
    return summary.loc[sorted(summary.index, key=lambda i: (order[i], summary["sparsity"][i]))].reset_index(drop=True)


def retrain_runs(trials: pd.DataFrame) -> pd.DataFrame:
    """Retrain's reference values, one row per (seed, sparsity) the trials were run on."""
    trials = trials.assign(sparsity=trials.get("experiment.sparsity", 0.0), seed=trials.get("experiment.seed", 0))
    if "experiment.forget" in trials:
        trials = trials.assign(forget=trials["experiment.forget"])
    keys = [k for k in ("seed", "sparsity", "forget") if k in trials]
    unique = trials.drop_duplicates(keys)
    rows = pd.DataFrame({"method": "retrain", "sparsity": unique["sparsity"].to_numpy()})
    for metric in HEADLINE:
        rows[metric] = unique[f"retrain.{metric}"].to_numpy()
    rows["avg_disparity"] = 0.0
    rows["run_seconds"] = unique["retrain_seconds"].to_numpy()
    return rows


def study_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Best configuration of each method plus Retrain, one row per run, ready for `summarize`."""
    forgets = frame["experiment.forget"].dropna().unique() if "experiment.forget" in frame else []
    if len(forgets) > 1:
        raise UserError(f"these studies mix forget specs ({', '.join(map(str, forgets))}); "
                        "make one table per forget spec")
    best = best_configurations(frame)
    if best.empty:
        raise UserError("no trial finished; there is no method table to make")
    runs = best[["method", "sparsity", *TABLE_COLUMNS]]
    return pd.concat([retrain_runs(best), runs], ignore_index=True)


def sparsity_label(sparsity: float) -> str:
    return "dense" if not sparsity else f"{sparsity:.0%} sparse"


def wide_table(summary: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Display table: one row per method, 'mean ± std' cells, sparsities side by side."""
    rows: dict[str, dict] = {}
    sparsities = sorted(summary["sparsity"].unique())
    for record in summary.to_dict("records"):
        row = rows.setdefault(record["method"], {"method": display_name(record["method"])})
        prefix = f"{sparsity_label(record['sparsity'])} " if len(sparsities) > 1 else ""
        for metric in TABLE_COLUMNS:
            row[prefix + label(metric)] = mean_std(record[f"{metric}_mean"], record[f"{metric}_std"],
                                                          1 if metric == "run_seconds" else digits)
        if len(sparsities) == 1:
            row["seeds"] = int(record["n"])
    return pd.DataFrame(list(rows.values())).fillna("–")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.table", description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", nargs="+", help="study folders (e.g. a baselines study and a DAU study)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--csv", action="store_true", help="the numeric long table as CSV")
    output.add_argument("--latex", action="store_true", help="LaTeX tabular")
    args = parser.parse_args(argv)
    frame = pd.concat([load_study(path) for path in args.study_dir], ignore_index=True)
    summary = summarize(study_runs(frame))
    if args.csv:
        print(summary.to_csv(index=False), end="")
    elif args.latex:
        print(wide_table(summary).to_latex(index=False))
    else:
        print(markdown_table(wide_table(summary)))
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run()
