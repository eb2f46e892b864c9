"""The headline of docs/RESULTS.md: several kept comparisons side by side, one row per method.

For each comparison folder (`study.compare --out`): Avg. Disparity mean ± std and median over its
evaluation seeds, the method's rank by the mean, and time/Retrain without and with the shared
pre-training (DAU's attacker). Reads compare.json and runs.csv only; trains nothing. A folder
reads its tuned rows, or with `:defaults` after its name its documented-defaults rows (a
`--budget 0` comparison has only those, and reads them either way).

    python bench/headline_table.py docs/compare-fmnist-random10 docs/compare-fmnist-class0
    python bench/headline_table.py docs/table1-fmnist-random10:defaults docs/table1-cifar10-random10-defaults
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from analysis.compare_table import kept_runs, with_time_ratios
from analysis.formatting import markdown_table, mean_std
from study.core.errors import UserError, cli_entry
from study.methods import display_name
from study.methods import sort_key as method_sort_key
from study.records.comparison import DEFAULTS, REFERENCE_ROWS, TUNED

DEFAULTS_SUFFIX = ":defaults"
COLUMNS = ("Avg. Disparity", "median", "rank", "time / Retrain")  # each folder's, in this order


def comparison_columns(folder: Path, level: str = "dense", defaults: bool = False) -> tuple[str, pd.DataFrame]:
    """(the column group's name, one row per method: disparity cells, rank, time ratios), from the
    comparison's tuned rows or, with `defaults` (or a budget-0 comparison), its defaults rows."""
    record, runs_by_level = kept_runs(folder)
    runs = runs_by_level.get(level)
    if runs is None:
        raise UserError(f"{folder}: no evaluation rows for level {level}")
    defaults = defaults or record.get("budget") == 0
    wanted = (runs["variant"] == DEFAULTS) | runs["method"].isin(REFERENCE_ROWS) if defaults else (
        runs["variant"] == TUNED)
    runs = with_time_ratios(runs[wanted])
    grouped = runs.groupby("method")
    stats = pd.DataFrame({"mean": grouped["avg_disparity"].mean(), "std": grouped["avg_disparity"].std(),
                          "median": grouped["avg_disparity"].median(), "ratio": grouped["time_ratio"].mean(),
                          "with_shared": grouped["time_ratio_with_shared"].mean()})
    ranked = stats.drop(index=list(REFERENCE_ROWS), errors="ignore")["mean"].rank(method="min").astype(int)
    seeds = runs.groupby("method")["seed"].nunique().max()
    name = (f"{record['experiment']['dataset']} {record['experiment']['forget']}"
            + (" defaults" if defaults else " tuned") + f", {seeds} seeds")
    table = pd.DataFrame({
        f"{name}: Avg. Disparity": [mean_std(r["mean"], r["std"]) for _, r in stats.iterrows()],
        f"{name}: median": [f"{r['median']:.2f}" for _, r in stats.iterrows()],
        f"{name}: rank": [str(ranked.get(m, "–")) for m in stats.index],
        f"{name}: time / Retrain": [
            f"{r['ratio']:.2f}" + (f" ({r['with_shared']:.2f})" if r["with_shared"] > r["ratio"] + 1e-9 else "")
            for _, r in stats.iterrows()]}, index=stats.index)
    return name, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/headline_table.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="comparison folders written by python -m study.compare, each "
                        "optionally followed by :defaults (its documented-defaults rows instead of its tuned ones)")
    parser.add_argument("--level", default="dense", help="sparsity level (default dense)")
    parser.add_argument("--columns", nargs="+", choices=COLUMNS, default=list(COLUMNS),
                        help=f"which columns each folder gets (default: all of {', '.join(COLUMNS)})")
    args = parser.parse_args(argv)
    tables = [comparison_columns(Path(folder.removesuffix(DEFAULTS_SUFFIX)), args.level,
                                 folder.endswith(DEFAULTS_SUFFIX))[1] for folder in args.folders]
    joined = pd.concat(tables, axis=1).fillna("–")
    joined = joined[[c for c in joined.columns if c.rsplit(": ", 1)[1] in args.columns]]
    joined = joined.loc[sorted(joined.index, key=method_sort_key)]
    joined.insert(0, "method", [display_name(m) for m in joined.index])
    print(markdown_table(joined.reset_index(drop=True)))
    print("\ntime / Retrain in brackets: with the shared pre-training (DAU's attacker) added.")
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run()
