"""Which searched hyperparameter moves which metric: Spearman's rank correlation, over a study's
trials, between each numeric hyperparameter and each metric (UA, MIA-Efficacy, RA, TA, Avg.
Disparity), from a kept trial table (`trials/<level>/<method>.csv` of a comparison) or a study
folder. A rank correlation because the ranges are searched on log scales and the effects need not
be linear; with 16 trials |rho| below about 0.5 is within what chance gives (the 5% two-sided
critical value for n = 16 is 0.50), so the table reports n beside every column.

    python -m analysis.trial_drivers docs/table1-fmnist-random10/trials/dense/dau.csv

`--split PARAM=VALUE` adds each metric's range among the trials at or below VALUE and above it,
so a threshold effect (e.g. every trial with a small Barlow Twins weight keeps UA near zero) is
visible beside the correlation.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from analysis.formatting import markdown_table
from study.core.errors import UserError, cli_entry
from study.evaluation.names import HEADLINE

METRICS = HEADLINE  # the four metrics, then Avg. Disparity


def read_trials(path: str | Path) -> pd.DataFrame:
    """A kept trial table (CSV) or every trial of a study folder."""
    path = Path(path)
    if path.suffix == ".csv":
        if not path.is_file():
            raise UserError(f"no trial table at {path}")
        return pd.read_csv(path)
    from study.records.trials import load_study

    return load_study(path)


def correlations(trials: pd.DataFrame, metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Spearman rho of each numeric, varying `params.*` column with each metric (rows: parameters)."""
    scored = trials[trials[[m for m in metrics if m in trials]].notna().all(axis=1)]
    params = [c for c in scored.columns if c.startswith("params.") and pd.api.types.is_numeric_dtype(scored[c])
              and not pd.api.types.is_bool_dtype(scored[c]) and scored[c].nunique() > 1]
    if not params:
        raise UserError("no numeric hyperparameter varies across these trials")
    table = pd.DataFrame({"hyperparameter": [p.removeprefix("params.") for p in params]})
    for metric in (m for m in metrics if m in scored):
        table[metric] = [scored[p].corr(scored[metric], method="spearman") for p in params]
    table.insert(1, "trials", len(scored))
    return table


def split_ranges(trials: pd.DataFrame, param: str, value: float, metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Each metric's min–max among the trials with `param` at or below `value`, and above it."""
    column = f"params.{param}"
    if column not in trials:
        raise UserError(f"--split: no hyperparameter {param!r} in these trials")
    rows = []
    for label, part in ((f"{param} <= {value:g}", trials[trials[column] <= value]),
                        (f"{param} > {value:g}", trials[trials[column] > value])):
        row = {"trials": label, "n": len(part)}
        for metric in (m for m in metrics if m in trials):
            row[metric] = f"{part[metric].min():.2f}–{part[metric].max():.2f}" if len(part) else "–"
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trials", help="a trial table (trials/<level>/<method>.csv) or a study folder")
    parser.add_argument("--split", default=None, metavar="PARAM=VALUE",
                        help="also each metric's range at or below VALUE of PARAM and above it")
    args = parser.parse_args(argv)
    trials = read_trials(args.trials)
    print(f"Spearman rank correlation over {args.trials}:\n")
    print(markdown_table(correlations(trials), digits=2))
    if args.split:
        name, _, value = args.split.partition("=")
        try:
            threshold = float(value)
        except ValueError:
            raise UserError(f"--split {args.split!r}: expected PARAM=NUMBER") from None
        print()
        print(markdown_table(split_ranges(trials, name, threshold)))
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run()
