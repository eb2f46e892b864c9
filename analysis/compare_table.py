"""A comparison's `table.md` and figure, from its records alone (compare.json and the run log).

Per sparsity level, one row per method tuned and one at its documented defaults, two tables:
  - the metrics: UA, MIA-Efficacy, RA, TA, Avg. Disparity (and its median), ToW, ToW-MIA, run time
    and time/Retrain (without and, where a method shares a pre-built artifact, with its seconds),
    mean ± std over the evaluation seeds;
  - robustness and probes (`analysis.robust`): each metric's gap to Retrain, MIA-Efficacy collapses,
    the relearning test, the held-out attacks' TPR at 1% FPR, MIA-Efficacy's spread over member
    subsets (⚑ where it exceeds the gap to the nearest other row) and the paired difference to the
    best tuned method.
With several levels, their headline columns side by side. A kept comparison re-renders from
these files without any model (gaps and ToW are recomputed from the rows; a probe a row lacks
shows as –): `python -m analysis.compare_table <folder>` prints it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from analysis.formatting import markdown_table, mean_std
from analysis.robust import (
    COLLAPSE_AT,
    RETRAIN_BELOW,
    collapses,
    gap_names,
    paired_to_best,
    with_retrain_gaps,
)
from analysis.table import TABLE_COLUMNS, sparsity_label, summarize, wide_table
from study.evaluation.names import HEADLINE, MIA_SUBSETS, TOW, label, shared_seconds, time_ratio
from study.methods import display_name, shared_artifact_keys
from study.methods import sort_key as method_sort_key
from study.records.comparison import DEFAULTS, REFERENCE_ROWS, TUNED

COLUMNS = (*HEADLINE, *TOW, "run_seconds", "time_ratio", "time_ratio_with_shared")
DIGITS = {"run_seconds": 1, "time_ratio": 3, "time_ratio_with_shared": 3, "tow": 3, "tow_mia": 3}


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


def with_row_names(runs: pd.DataFrame) -> pd.DataFrame:
    """`row`: the table's row name, the method's (`FT`) or, at its documented defaults, `FT (defaults)`."""
    variant = runs["variant"] if "variant" in runs else pd.Series(TUNED, index=runs.index)
    names = [display_name(m) + (" (defaults)" if v == DEFAULTS else "") for m, v in zip(runs["method"], variant)]
    return runs.assign(row=names, variant=variant)


def row_order(runs: pd.DataFrame, order: list[str]) -> list[str]:
    """Row names in the methods' order, each method's tuned row before its defaults row."""
    rows = []
    for method in order:
        for variant in (TUNED, DEFAULTS):
            found = runs[(runs["method"] == method) & (runs["variant"] == variant)]
            if len(found):
                rows.append(str(found["row"].iloc[0]))
    return rows


def prepared_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The evaluation rows with everything a summary reads: time ratios, gaps to Retrain, ToW, row names."""
    return with_row_names(with_retrain_gaps(with_time_ratios(runs)))


def summary_table(runs: pd.DataFrame, order: list[str], failed: dict[str, str], subsets: int) -> pd.DataFrame:
    """Per row: mean ± std over the evaluation seeds of the metrics, Avg. Disparity's median, ToW,
    ToW-MIA and the time ratios."""
    runs = prepared_runs(runs)
    shares = runs["time_ratio_with_shared"] - runs["time_ratio"]
    columns = [c for c in COLUMNS if c in runs]
    grouped = runs.groupby("row")
    means, stds, medians = grouped[columns].mean(), grouped[columns].std(), grouped["avg_disparity"].median()
    shared_rows = set(runs.loc[shares > 0, "row"])
    table_rows = []
    for method in order:
        if method in failed:
            table_rows.append({"method": display_name(method), label("avg_disparity"): f"failed: {failed[method]}"})
    for row_name in row_order(runs, order):
        m, s = means.loc[row_name], stds.loc[row_name]
        row = {"method": row_name}
        for column in columns:
            if column == "time_ratio_with_shared" and row_name not in shared_rows:
                continue
            row[label(column)] = mean_std(m[column], s[column], DIGITS.get(column, 2))
            if column == "avg_disparity":
                row["median"] = f"{medians.loc[row_name]:.2f}"
        table_rows.append(row)
    table = pd.DataFrame(table_rows)
    ordered = ["method", *(label(c) for c in COLUMNS[:5]), "median", *(label(c) for c in COLUMNS[5:])]
    return table[[c for c in ordered if c in table.columns]].fillna("–")


def robustness_table(runs: pd.DataFrame, order: list[str], subsets: int) -> tuple[pd.DataFrame, str | None]:
    """Per row: each metric's mean gap to Retrain, the count of MIA-Efficacy collapses, the relearning
    test, the held-out attacks' TPR at 1% FPR, MIA-Efficacy's spread over member subsets (⚑ where it
    exceeds the gap to the nearest other row) and the paired difference to the best tuned method."""
    runs = prepared_runs(runs)
    runs = runs.assign(collapse=collapses(runs))
    names = row_order(runs, order)
    tuned = [r for r in names if r in set(runs.loc[(runs["variant"] == TUNED)
                                                   & ~runs["method"].isin(REFERENCE_ROWS), "row"])]
    best, paired = paired_to_best(runs, tuned + [r for r in names if r.endswith("(defaults)")])
    grouped = runs.groupby("row")
    means = grouped.mean(numeric_only=True)
    table_rows = []
    for row_name in names:
        m = means.loc[row_name]
        row = {"method": row_name}
        for gap in gap_names():
            row[label(gap)] = f"{m[gap]:.2f}"
        group = runs[runs["row"] == row_name]
        row["MIA collapses"] = f"{int(group['collapse'].sum())} of {len(group)}"
        if "relearn_UA" in runs and group["relearn_UA"].notna().any():
            row["relearn UA"] = mean_std(group["relearn_UA"].mean(), group["relearn_UA"].std())
        if "heldout_tpr@1%" in runs and group["heldout_tpr@1%"].notna().any():
            row["held-out TPR@1%FPR"] = mean_std(group["heldout_tpr@1%"].mean(), group["heldout_tpr@1%"].std())
        if "mia_subsets_std" in runs and m["mia_subsets_std"] == m["mia_subsets_std"]:  # not on defaults rows
            others = means.drop(index=[row_name], errors="ignore")["MIA-Efficacy"]
            gap = float((others - m["MIA-Efficacy"]).abs().min()) if len(others) else float("nan")
            spread = float(m["mia_subsets_std"])
            row[f"MIA-Efficacy over {subsets} subsets (std)"] = f"{spread:.2f}" + (" ⚑" if spread > gap else "")
        if row_name == best:
            row["Δ Avg. Disparity to the best (95% CI; Wilcoxon p)"] = "best"
        elif row_name in paired:
            d = paired[row_name]
            interval = f" [{d['low']:+.2f}, {d['high']:+.2f}]" if d["n"] >= 2 else ""
            p_value = f"; p {d['p']:.3f}" if d["p"] == d["p"] and d["n"] >= 2 else ""  # one seed pairs nothing
            row["Δ Avg. Disparity to the best (95% CI; Wilcoxon p)"] = f"{d['mean']:+.2f}{interval}{p_value}"
        table_rows.append(row)
    return pd.DataFrame(table_rows).fillna("–"), best


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


def reference_notes(runs: pd.DataFrame) -> list[str]:
    """Which reference models (original and Retrain, by weights digest) each seed's rows were measured
    against: one line per seed whose rows name more than one, and one for rows that name none (kept
    before digests were recorded), so that a table never mixes references without saying so."""
    columns = [c for c in ("original_digest", "retrain_digest") if c in runs]
    if not columns:
        return [f"none of the {len(runs)} rows records the reference models it was measured on (rows kept "
                "before digests were recorded)"]
    notes = []
    missing = int(runs[columns[0]].isna().sum())
    if missing:
        notes.append(f"{missing} of {len(runs)} rows record no reference digests (kept before they were recorded)")
    for seed, group in runs.groupby("seed"):
        for column in columns:
            seen = group[column].dropna().astype(str)
            if seen.nunique() > 1:
                counts = ", ".join(f"{digest} ({count} rows)" for digest, count in seen.value_counts().items())
                notes.append(f"seed {seed}: rows measured against {seen.nunique()} different "
                             f"{column.removesuffix('_digest')} models: {counts}")
    return notes


def unfinished_note(runs: pd.DataFrame, eval_seeds: list[int]) -> str | None:
    """A line for a comparison whose rows do not yet cover every evaluation seed (stopped, to be
    resumed by the same command): which seeds have rows, and the rows on fewer seeds than the most
    complete one, so that a partial table never reads as the finished one."""
    counts = with_row_names(runs).groupby("row")["seed"].nunique()
    present = sorted(int(seed) for seed in runs["seed"].unique())
    if len(present) == len(eval_seeds) and (counts == len(eval_seeds)).all():
        return None
    short = counts[counts < counts.max()]
    return (f"Unfinished: rows exist on seed(s) {', '.join(map(str, present))} of the evaluation seeds "
            f"{', '.join(map(str, eval_seeds))}, so each mean is over the seeds a row has"
            + (f"; on fewer seeds than the rest: {', '.join(f'{row} ({n})' for row, n in short.items())}"
               if len(short) else "") + ". The same command resumes the comparison.")


def older_metric_rows(runs: pd.DataFrame) -> int:
    """Rows whose metrics predate today's definitions (`METRICS_VERSION`; version 1 fitted
    MIA-Efficacy's SVM on unequal sets where test outnumbers retain)."""
    from study.records.run_log import has_current_metrics

    return sum(not has_current_metrics(row) for row in runs.to_dict("records"))


def side_by_side(runs_by_level: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The paper's layout: one row per method, each level's headline columns side by side."""
    runs = pd.concat(list(runs_by_level.values()), ignore_index=True)
    if "variant" in runs:
        runs = runs[runs["variant"] != DEFAULTS]
    return wide_table(summarize(runs[["method", "sparsity", *TABLE_COLUMNS]]))


def disparity_figure(runs: pd.DataFrame, folder: Path, level: str) -> Path:
    """Avg. Disparity against time / Retrain, one point per tuned method (per method at its defaults
    where nothing was tuned, budget 0): the comparison folder's `disparity_vs_time_<level>.png`
    (written by `study.compare`, redrawn by `--figures`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = with_time_ratios(runs[~runs["method"].isin(REFERENCE_ROWS)])
    tuned = (runs["variant"] != DEFAULTS) if "variant" in runs else None
    if tuned is not None and tuned.any():
        runs = runs[tuned]
    means = runs.groupby("method")[["avg_disparity", "time_ratio"]].mean()
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.scatter(means["time_ratio"], means["avg_disparity"])
    axes.set_xlim(right=means["time_ratio"].max() * 1.15)  # room for the rightmost point's label
    # one method far off (e.g. 43 against 0.3) would squash the rest onto the axis
    log_scale = means["avg_disparity"].max() / max(means["avg_disparity"].min(), 1e-3) > 20
    if log_scale:
        axes.set_yscale("log")
    axes.set_xlabel("run time / Retrain's")
    axes.set_ylabel("Avg. Disparity (lower is better" + (", log scale)" if log_scale else ")"))
    axes.set_title(("tuned methods" if tuned is None or tuned.any() else "methods at their documented defaults")
                   + " on the evaluation seeds (mean)")
    figure.tight_layout()
    place_labels(axes, [(display_name(method), row["time_ratio"], row["avg_disparity"])
                        for method, row in means.sort_values("avg_disparity").iterrows()])
    path = Path(folder) / f"disparity_vs_time_{level}.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def place_labels(axes, points: list[tuple[str, float, float]], lines: int = 6) -> None:
    """Label each point right of it, level with it, else a line higher, a line lower, and so on
    (offsets in points), until the label covers no other label or point: methods with close costs
    and disparities stay readable. Call it once the axes are laid out (scales, limits, labels): it
    measures the labels as drawn."""
    from matplotlib.transforms import Bbox

    axes.figure.canvas.draw()
    renderer = axes.figure.canvas.get_renderer()
    placed = [Bbox.from_bounds(px - 6, py - 6, 12, 12)
              for px, py in axes.transData.transform([(x, y) for _, x, y in points])]
    offsets = [-3] + [rise for line in range(1, max(lines, 1) + 1) for rise in (-3 + 10 * line, -3 - 10 * line)]
    for name, x, y in points:
        for rise in offsets:
            label = axes.annotate(name, (x, y), textcoords="offset points", xytext=(5, rise), fontsize=9)
            label.update_positions(renderer)
            box = label.get_window_extent(renderer)
            if rise == offsets[-1] or not any(box.overlaps(other) for other in placed):
                break
            label.remove()
        placed.append(box)


def tuning_table(folder: Path, level: str, order: list[str]) -> pd.DataFrame | None:
    """From the kept trial tables (`trials/<level>/<method>.csv`): per method, the study's best
    objective on the tuning seed, the defaults trial's, the defaults' rank among the trials and the
    epochs it reached (fewer than its own: ASHA stopped it, as studies before DefaultsFirstASHA could)."""
    found = {path.stem: pd.read_csv(path) for path in sorted((Path(folder) / "trials" / level).glob("*.csv"))}
    rows = []
    for method in [m for m in order if m in found]:
        trials = found[method]
        scored = trials[trials["avg_disparity"].notna()].sort_values(["avg_disparity", "trial_id"]).reset_index()
        defaults = scored[scored["defaults"].astype(bool)]
        row = {"method": display_name(method), "trials": len(trials),
               "best Avg. Disparity": f"{scored['avg_disparity'].iloc[0]:.2f}" if len(scored) else "–"}
        if len(defaults):
            row.update({"defaults Avg. Disparity": f"{defaults['avg_disparity'].iloc[0]:.2f}",
                        "defaults' rank": f"{int(defaults.index[0]) + 1} of {len(scored)}",
                        "defaults' epochs reached": str(defaults["epoch"].iloc[0]) if "epoch" in defaults else "–"})
        rows.append(row)
    return pd.DataFrame(rows).fillna("–") if rows else None


def render(record: dict, runs_by_level: dict[str, pd.DataFrame], subsets: int, folder: Path | None = None) -> str:
    """table.md's text: the command, the protocol in one paragraph, two tables per level (the metrics;
    robustness and probes), the side-by-side view."""
    experiment = record["experiment"]
    seeds = ", ".join(map(str, record["eval_seeds"]))
    selected = record.get("selected_on", "test set (recorded before selection sets existed)")
    relearn = (f"relearn UA (UA on half the forget set after {record['relearn_steps']} fine-tuning steps on the "
               "other half; below Retrain's: the knowledge comes back); " if record.get("relearn_steps") else "")
    source = record.get("configs_from")
    where = (f" on forget {source['forget']} by the comparison in `{source['folder']}` (not on this forget set)"
             if source else "")
    tuned = ("No method tuned (budget 0): every method at its documented defaults. Mean ± std over evaluation "
             f"seeds {seeds}, on the test set" if record["budget"] == 0 else
             f"Every method tuned with {record['budget']} trials on seed(s) "
             f"{', '.join(map(str, record['tune_seeds']))} ({record['objective']}){where}"
             + (", each study's first trial at the method's documented defaults" if record.get("defaults_first")
                else "") + f"; trials scored on: {selected}. Mean ± std over evaluation seeds {seeds}, on the "
             "test set" + ("; \"(defaults)\" rows run the documented defaults on the same seeds"
                           if record.get("defaults_first") else ""))
    sections = [f"Command: `{record['command']}`", "",
                f"{experiment['dataset']} / {experiment['model']}, forget {experiment['forget']}. {tuned}"
                + ". ToW and ToW-MIA: products of "
                "(1 − gap) over UA (or MIA-Efficacy), RA and TA against Retrain, 1 is Retrain. time / Retrain "
                "leaves out artifacts shared by every run on one original (DAU's attacker pre-training); the "
                "column beside it adds them.", ""]
    for name, runs in runs_by_level.items():
        entry = record["levels"][name]
        order = sorted({*REFERENCE_ROWS, *entry["methods"]}, key=method_sort_key)
        robust, best = robustness_table(runs, order, subsets)
        unfinished = unfinished_note(runs, record["eval_seeds"])
        sections += [f"### {sparsity_label(entry['sparsity'])}", "", *([f"**{unfinished}**", ""] if unfinished else []),
                     markdown_table(summary_table(runs, order, entry["failed"], subsets)), "",
                     "Robustness and probes: each metric's mean absolute gap to Retrain; MIA collapses (MIA-Efficacy "
                     f"≥ {COLLAPSE_AT:g} while Retrain's is below {RETRAIN_BELOW:g} on the seed); {relearn}"
                     "the held-out attacks' (fresh SAMIA, offline "
                     f"RMIA) stronger TPR at 1% FPR, forget vs unseen validation samples; ⚑: MIA-Efficacy's spread "
                     f"over {subsets} member subsets exceeds its gap to the nearest other row; Avg. Disparity minus "
                     f"the best tuned method's ({best}), paired over the {runs['seed'].nunique()} seeds with rows (with n "
                     "seeds the smallest two-sided Wilcoxon p is 2/2^n: below 6 seeds none reaches 0.05).", "",
                     markdown_table(robust), ""]
        tuning = tuning_table(folder, name, order) if folder is not None else None
        if tuning is not None:
            sections += [f"On the tuning seed, scored on: {selected}. Each study's best trial against its defaults "
                         "trial (its first), from `trials/" + name + "/<method>.csv`:", "", markdown_table(tuning), ""]
        older = older_metric_rows(runs)
        if older:
            sections += [f"{older} of {len(runs)} rows were computed before MIA-Efficacy's SVM was fitted on equal "
                         "member and non-member sets: where the test set outnumbers retain (the Fashion-MNIST "
                         "proxy), their MIA-Efficacy can read 100 for any model whose retain and test confidences "
                         "are alike. Running the command again computes them anew.", ""]
        references = reference_notes(runs)
        if references:
            sections += ["Reference models: " + "; ".join(references) + ".", ""]
        mismatches = thread_mismatches(runs)
        if mismatches:
            sections += ["time / Retrain compares different thread counts here, so read it with care: "
                         + "; ".join(mismatches) + ".", ""]
    if len(runs_by_level) > 1:
        sections += ["### side by side", "", markdown_table(side_by_side(runs_by_level)), ""]
    return "\n".join(sections)


def kept_runs(folder: Path) -> tuple[dict, dict[str, pd.DataFrame]]:
    """A comparison folder's record and its evaluation rows per level, from compare.json and runs.csv."""
    from study.core.errors import UserError
    from study.records.comparison import level_runs, read_comparison
    from study.records.run_log import RunLog

    record = read_comparison(folder)
    if not record:
        raise UserError(f"{folder} holds no comparison (no compare.json)")
    run_log = RunLog(Path(folder) / "runs.csv")
    presets = {str(row["preset"]) for row in run_log.runs.values()}  # the rows' key names the preset
    if len(presets) != 1:
        raise UserError(f"{folder}/runs.csv holds rows of {len(presets)} presets; one comparison has one")
    return record, level_runs(record, run_log, presets.pop())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.compare_table",
                                     description="Print a kept comparison's table.md from its records alone "
                                                 "(compare.json, runs.csv); trains and evaluates nothing.")
    parser.add_argument("folder", help="a folder written by python -m study.compare")
    parser.add_argument("--figures", action="store_true",
                        help="also redraw each level's disparity_vs_time_<level>.png in the folder")
    args = parser.parse_args(argv)
    record, runs_by_level = kept_runs(Path(args.folder))
    print(render(record, runs_by_level, MIA_SUBSETS, Path(args.folder)))
    if args.figures:
        for level, runs in runs_by_level.items():
            disparity_figure(runs, Path(args.folder), level)
    return 0


if __name__ == "__main__":
    from study.core.errors import cli_entry

    cli_entry(main)()
