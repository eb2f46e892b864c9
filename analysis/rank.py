"""`python -m analysis.rank <study dir>`: trials ranked by Avg. Disparity to Retrain.

Shows UA, MIA-Efficacy, RA, TA, run time and the searched parameters, with Retrain's values
as the reference row. Failed and unfinished trials are listed apart, never silently dropped;
ties are broken by trial id so the order is stable.
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from analysis.load import METRICS, finished, load_study
from study.errors import UserError, cli_entry


def ranking(frame: pd.DataFrame, top: int | None = None) -> pd.DataFrame:
    """The ranking table: one row per finished trial plus Retrain's reference row."""
    ok = finished(frame)
    if top:
        ok = ok.head(top)
    searched = [c for c in frame.columns if c.startswith("params.") and frame[c].nunique(dropna=True) > 1]
    table = ok[["trial_id", "method", *METRICS, "run_seconds", *searched]].copy()
    table.insert(0, "rank", range(1, len(table) + 1))
    if len(ok):
        first = ok.iloc[0]
        reference = {"rank": "", "trial_id": "Retrain", "method": "retrain", "run_seconds": first["retrain_seconds"],
                     **{m: first[f"retrain.{m}"] for m in METRICS}}
        reference["avg_disparity"] = 0.0
        table = pd.concat([table, pd.DataFrame([reference])], ignore_index=True)
    return table.rename(columns=lambda c: c.removeprefix("params."))


def not_finished(frame: pd.DataFrame) -> pd.DataFrame:
    rest = frame[~frame.index.isin(finished(frame).index)]
    return rest[["trial_id", "method", "status", "error"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.rank", description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", nargs="+", help="one or more study folders")
    parser.add_argument("--top", type=int, default=None, help="only the best N trials")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--csv", action="store_true", help="CSV instead of a text table")
    output.add_argument("--markdown", action="store_true", help="Markdown table")
    output.add_argument("--latex", action="store_true", help="LaTeX tabular")
    args = parser.parse_args(argv)
    frame = pd.concat([load_study(path) for path in args.study_dir], ignore_index=True)
    table = ranking(frame, args.top)
    if table.empty:
        print(not_finished(frame).to_string(index=False), file=sys.stderr)
        raise UserError("no trial of this study finished; nothing to rank")
    if args.csv:
        print(table.to_csv(index=False), end="")
    elif args.markdown:
        print(table.to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else _markdown(table))
    elif args.latex:
        print(table.to_latex(index=False, float_format="%.3f"))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    failed = not_finished(frame)
    if len(failed):
        print(f"\n{len(failed)} trial(s) without a result:", file=sys.stderr)
        print(failed.to_string(index=False), file=sys.stderr)
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def _markdown(table: pd.DataFrame) -> str:
    """Markdown without the optional `tabulate` dependency."""
    cells = lambda row: [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row]  # noqa: E731
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


run = cli_entry(main)

if __name__ == "__main__":
    run()
