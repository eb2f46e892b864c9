"""`python -m analysis.rank <study dir>`: trials ranked by Avg. Disparity to Retrain.

Shows UA, MIA-Efficacy, RA, TA, run time and the searched parameters, with Retrain's values
as the reference row. Failed and unfinished trials are listed apart, never silently dropped;
ties are broken by trial id so the order is stable.
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from analysis.formatting import format_number, markdown_table
from study.core.errors import UserError, cli_entry
from study.evaluation.names import HEADLINE, OBJECTIVE_COLUMNS, PARETO, TOW, label
from study.records.trials import default_objective, finished, load_study


def ranking(frame: pd.DataFrame, top: int | None = None, by: str | None = None) -> pd.DataFrame:
    """The ranking table by `by` (default: the study's objective): one row per finished trial,
    plus Retrain's reference row when the trials were measured against Retrain."""
    by = ranked_by(frame, by)  # a Pareto study is ranked by Avg. Disparity here (its front: format_front)
    ok = finished(frame, by)
    if top:
        ok = ok.head(top)
    searched = [c for c in frame.columns if c.startswith("params.") and frame[c].nunique(dropna=True) > 1]
    shown = [c for c in dict.fromkeys((*OBJECTIVE_COLUMNS, *HEADLINE, *TOW))
             if c in ok and (c == by or ok[c].notna().any())]
    shown = list(dict.fromkeys([by, *shown]))
    table = ok[["trial_id", "method", *shown, "run_seconds", *searched]].copy()
    spread = f"seed_std/{by}"
    if spread in ok and ok[spread].notna().any():  # trials averaged over seeds: show how much they vary
        table.insert(table.columns.get_loc(by) + 1, f"{by} std over seeds", ok[spread])
    table.insert(0, "rank", range(1, len(table) + 1))
    if len(ok) and ok["retrain.UA"].notna().any():
        first = ok.iloc[0]
        reference = {"rank": "", "trial_id": "Retrain", "method": "retrain", "run_seconds": first["retrain_seconds"],
                     **{m: first[f"retrain.{m}"] for m in HEADLINE}}
        reference.update({"avg_disparity": 0.0, **{name: 1.0 for name in TOW}})
        table = pd.concat([table, pd.DataFrame([reference])], ignore_index=True)
    return table.rename(columns=lambda c: c.removeprefix("params."))


def ranking_header(frame: pd.DataFrame, top: int | None = None, by: str | None = None) -> str:
    """What a ranking shows, in one line: how many of the finished trials, by what, scored on which set
    (`Top 5 of 8 finished trials by avg_disparity (lower is better), scored on the selection set`)."""
    by = ranked_by(frame, by)
    count = len(finished(frame, by))
    shown = f"Top {top} of {count}" if top and top < count else f"All {count}"
    column = "experiment.select_size"
    sizes = set(frame[column].dropna().astype(int)) if column in frame else set()
    scored = ("the selection set" if sizes and min(sizes) > 0 else "the test set" if sizes == {0}
              else "the set each study read")
    return f"{shown} finished trials by {by} (lower is better), scored on {scored}"


def ranked_by(frame: pd.DataFrame, by: str | None) -> str:
    """The column a ranking sorts by: `by`, else the study's objective (Avg. Disparity for a Pareto study)."""
    by = by or default_objective(frame)
    return "avg_disparity" if by == PARETO else by


def not_finished(frame: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    rest = frame[~frame.index.isin(finished(frame, ranked_by(frame, by)).index)]
    return rest[["trial_id", "method", "status", "error"]]


def format_front(front_rows: pd.DataFrame, objectives: list[str]) -> str:
    """A Pareto study's non-dominated trials (ordered by the pick rule, `balanced` first) as text."""
    searched = [c for c in front_rows.columns if c.startswith("params.") and front_rows[c].nunique(dropna=True) > 1]
    shown = ["trial_id", *objectives, *[c for c in ("avg_disparity", *TOW) if c in front_rows], *searched]
    table = front_rows[shown].rename(columns=lambda c: label(c).removeprefix("params."))
    return (f"Pareto front: {len(front_rows)} non-dominated trial(s) on {', '.join(label(o) for o in objectives)} "
            "(first: the balanced pick, which study.export takes by default)\n" + format_text(table))


def format_text(table: pd.DataFrame) -> str:
    return table.to_string(index=False, float_format=format_number)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.rank", description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", nargs="+", help="one or more study folders")
    parser.add_argument("--top", type=int, default=None, help="only the best N trials")
    parser.add_argument("--by", choices=OBJECTIVE_COLUMNS, default=None,
                        help="rank by this column (default: the objective the study optimised)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--csv", action="store_true", help="CSV instead of a text table")
    output.add_argument("--markdown", action="store_true", help="Markdown table")
    output.add_argument("--latex", action="store_true", help="LaTeX tabular")
    args = parser.parse_args(argv)
    frame = pd.concat([load_study(path) for path in args.study_dir], ignore_index=True)
    table = ranking(frame, args.top, args.by)
    if table.empty:
        print(not_finished(frame, args.by).to_string(index=False), file=sys.stderr)
        raise UserError("no trial of this study finished; nothing to rank")
    if args.csv:
        print(table.to_csv(index=False), end="")
    elif args.markdown:
        print(markdown_table(table))
    elif args.latex:
        print(table.to_latex(index=False, float_format=format_number))
    else:
        print(ranking_header(frame, args.top, args.by))
        print(format_text(table))
    failed = not_finished(frame, args.by)
    if len(failed):
        print(f"\n{len(failed)} trial(s) without a result:", file=sys.stderr)
        print(failed.to_string(index=False), file=sys.stderr)
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run()
