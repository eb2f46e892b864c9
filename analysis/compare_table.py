"""A comparison's `table.md` and figure, from its records alone (compare.json and the run log).

Per sparsity level: UA, MIA-Efficacy, RA, TA, Avg. Disparity, run time and time/Retrain (without
and, where a method shares a pre-built artifact, with its seconds), mean ± std over the
evaluation seeds, and MIA-Efficacy's spread over member subsets (a diagnostic: ⚑ where that
spread exceeds its gap to the nearest other method). With several levels, their headline columns
side by side. A kept comparison re-renders from these files without any model.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.formatting import markdown_table, mean_std
from analysis.table import TABLE_COLUMNS, sparsity_label, summarize, wide_table
from study.evaluation.names import HEADLINE, label, shared_seconds, time_ratio
from study.methods import display_name, shared_artifact_keys
from study.methods import sort_key as method_sort_key
from study.records.comparison import REFERENCE_ROWS

COLUMNS = (*HEADLINE, "run_seconds", "time_ratio", "time_ratio_with_shared")
DIGITS = {"run_seconds": 1, "time_ratio": 3, "time_ratio_with_shared": 3}


def with_time_ratios(runs: pd.DataFrame) -> pd.DataFrame:
    """`time_ratio` (run time / Retrain's on the same seed) and `time_ratio_with_shared` (plus the
    seconds of artifacts shared by every run on one original, e.g. DAU's attacker pre-training)."""
    keys = shared_artifact_keys()
    shared = [shared_seconds(row, keys) for row in runs.to_dict("records")]
    ratio = [time_ratio(run, retrain) for run, retrain in zip(runs["run_seconds"], runs["retrain_seconds"])]
    with_shared = [time_ratio(run, retrain, extra)
                   for run, retrain, extra in zip(runs["run_seconds"], runs["retrain_seconds"], shared)]
    return runs.assign(time_ratio=pd.Series(ratio, index=runs.index, dtype=float),
                       time_ratio_with_shared=pd.Series(with_shared, index=runs.index, dtype=float))


def summary_table(runs: pd.DataFrame, order: list[str], failed: dict[str, str], subsets: int) -> pd.DataFrame:
    """Mean ± std over evaluation seeds per method, the MIA-Efficacy diagnostic and its flag."""
    runs = with_time_ratios(runs)
    shares = runs["time_ratio_with_shared"] - runs["time_ratio"]
    spread_columns = ["mia_subsets_std"] if "mia_subsets_std" in runs else []
    means = runs.groupby("method")[[*COLUMNS, *spread_columns]].mean()
    stds = runs.groupby("method")[list(COLUMNS)].std()
    shared_methods = set(runs.loc[shares > 0, "method"])
    rows = []
    for method in order:
        if method in failed:
            rows.append({"method": display_name(method), label("avg_disparity"): f"failed: {failed[method]}"})
            continue
        if method not in means.index:
            continue
        m, s = means.loc[method], stds.loc[method]
        row = {"method": display_name(method)}
        for column in COLUMNS:
            if column == "time_ratio_with_shared" and method not in shared_methods:
                continue
            row[label(column)] = mean_std(m[column], s[column], DIGITS.get(column, 2))
        if spread_columns:
            others = means.drop(index=[method, *REFERENCE_ROWS], errors="ignore")["MIA-Efficacy"]
            gap = float((others - m["MIA-Efficacy"]).abs().min()) if len(others) else float("nan")
            spread = float(m["mia_subsets_std"])
            row[f"MIA-Efficacy over {subsets} subsets (std)"] = f"{spread:.2f}" + (" ⚑" if spread > gap else "")
        rows.append(row)
    table = pd.DataFrame(rows)
    ordered = ["method", *(label(c) for c in COLUMNS)] + [c for c in table.columns if c.startswith("MIA-Efficacy over")]
    return table[[c for c in ordered if c in table.columns]].fillna("–")


def thread_mismatches(runs: pd.DataFrame) -> list[str]:
    """Evaluation runs whose time / Retrain compares different torch thread counts (the run's and
    the one Retrain was trained with), or a Retrain whose thread count was not recorded: one line
    per such seed, for a note under the table."""
    if "threads" not in runs or "retrain_threads" not in runs:
        return []
    notes = []
    timed = runs[~runs["method"].isin(REFERENCE_ROWS)]
    for seed, group in timed.groupby("seed"):
        retrain = group["retrain_threads"].iloc[0]
        threads = sorted({int(t) for t in group["threads"].dropna()})
        if pd.isna(retrain):
            notes.append(f"seed {seed}: Retrain's thread count was not recorded (a model cached before it was kept); "
                         f"the runs used {', '.join(map(str, threads))}")
        elif threads != [int(retrain)]:
            notes.append(f"seed {seed}: runs used {', '.join(map(str, threads))} thread(s), Retrain was trained with "
                         f"{int(retrain)}")
    return notes


def side_by_side(runs_by_level: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The paper's layout: one row per method, each level's headline columns side by side."""
    runs = pd.concat(list(runs_by_level.values()), ignore_index=True)
    return wide_table(summarize(runs[["method", "sparsity", *TABLE_COLUMNS]]))


def disparity_figure(runs: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = with_time_ratios(runs[~runs["method"].isin(REFERENCE_ROWS)])
    means = runs.groupby("method")[["avg_disparity", "time_ratio"]].mean()
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.scatter(means["time_ratio"], means["avg_disparity"])
    for method, row in means.iterrows():
        axes.annotate(display_name(method), (row["time_ratio"], row["avg_disparity"]), textcoords="offset points",
                      xytext=(4, 4))
    axes.set_xlabel("run time / Retrain's")
    axes.set_ylabel("Avg. Disparity (lower is better)")
    axes.set_title("tuned methods on the evaluation seeds (mean)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def render(record: dict, runs_by_level: dict[str, pd.DataFrame], subsets: int) -> str:
    """table.md's text: the command, the protocol in one paragraph, a table per level, the side-by-side view."""
    experiment = record["experiment"]
    seeds = ", ".join(map(str, record["eval_seeds"]))
    sections = [f"Command: `{record['command']}`", "",
                f"{experiment['dataset']} / {experiment['model']}, forget {experiment['forget']}. Every method tuned "
                f"with {record['budget']} trials on seed(s) {', '.join(map(str, record['tune_seeds']))} "
                f"({record['objective']}); mean ± std over evaluation seeds {seeds}. time / Retrain leaves out "
                "artifacts shared by every run on one original (DAU's attacker pre-training); the column beside it "
                f"adds them. ⚑: MIA-Efficacy's spread over {subsets} member subsets exceeds its gap to the nearest "
                "other method.", ""]
    for name, runs in runs_by_level.items():
        entry = record["levels"][name]
        order = sorted({*REFERENCE_ROWS, *entry["methods"]}, key=method_sort_key)
        sections += [f"### {sparsity_label(entry['sparsity'])}", "",
                     markdown_table(summary_table(runs, order, entry["failed"], subsets)), ""]
        mismatches = thread_mismatches(runs)
        if mismatches:
            sections += ["time / Retrain compares different thread counts here, so read it with care: "
                         + "; ".join(mismatches) + ".", ""]
    if len(runs_by_level) > 1:
        sections += ["### side by side", "", markdown_table(side_by_side(runs_by_level)), ""]
    return "\n".join(sections)
