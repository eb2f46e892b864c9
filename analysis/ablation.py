"""`python -m analysis.ablation <study dir>`: DAU with vs without each on/off factor, paired over seeds.

An on/off factor is a searched or gridded hyperparameter that takes exactly two values in the
study (the `ablation` space grids `regularizer: [true, false]` over seeds 0, 1, 2). Trials
are paired when they agree on everything else (in the ablation space: the seed), and each
metric gets mean ± std per level, the mean paired difference and a paired t-test, as in the
paper's Table 2. With 3 seeds a paired t-test has 2 degrees of freedom: read p-values as a
rough guide, and the differences with their std as the main evidence.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from analysis.formatting import markdown_table, mean_std, output_folder
from study.core.errors import UserError, cli_entry
from study.evaluation.names import HEADLINE, label
from study.records.trials import finished, load_study

REPORT_FILE = "ablation.md"


def on_off_factors(frame: pd.DataFrame) -> list[str]:
    """Hyperparameter columns (`params.*`) that take exactly two values among finished trials."""
    ok = finished(frame)
    return [c for c in ok.columns if c.startswith("params.") and ok[c].nunique(dropna=True) == 2]


def _levels(values: pd.Series) -> list:
    """The two levels, 'on' first: True before False, otherwise the larger value first."""
    levels = list(values.dropna().unique())
    if len(levels) != 2:
        raise UserError(f"{values.name} takes {len(levels)} values in this study; an ablation needs exactly 2")
    return sorted(levels, key=lambda v: (not bool(v), -float(v) if isinstance(v, (int, float)) else 0), reverse=False)


def paired_trials(frame: pd.DataFrame, factor: str) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """(trials at level 0, trials at level 1, [level 0, level 1]) aligned row by row on their pair key."""
    ok = finished(frame)
    if factor not in ok:
        raise UserError(f"no finished trial has {factor}; factors here: {', '.join(on_off_factors(frame)) or 'none'}")
    levels = _levels(ok[factor])
    varying = [c for c in ok.columns if (c.startswith("params.") or c.startswith("experiment."))
               and c != factor and ok[c].astype(str).nunique() > 1]
    keyed = ok.assign(pair_key=ok[varying].astype(str).agg("|".join, axis=1) if varying else "all")
    sides = []
    for level in levels:
        side = keyed[keyed[factor] == level]
        if side["pair_key"].duplicated().any():
            side = side.groupby("pair_key").mean(numeric_only=True).reset_index()  # repeated trials: their mean
        sides.append(side.set_index("pair_key"))
    common = sides[0].index.intersection(sides[1].index)
    if len(common) == 0:
        raise UserError(f"no pair of trials differs only in {factor}; cannot pair them")
    return sides[0].loc[common], sides[1].loc[common], levels


def ablation_statistics(frame: pd.DataFrame, factor: str, metrics=HEADLINE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-level table, per-metric paired test table) for one on/off factor."""
    first, second, levels = paired_trials(frame, factor)
    name = factor.removeprefix("params.")
    level_rows = []
    for level, side in zip(levels, (first, second)):
        row = {name: level, "pairs": len(side)}
        row.update({f"{m}_mean": side[m].mean() for m in metrics})
        row.update({f"{m}_std": side[m].std() for m in metrics})
        level_rows.append(row)
    tests = []
    for metric in metrics:
        difference = (second[metric] - first[metric]).to_numpy(dtype=float)
        if len(difference) >= 2 and np.any(difference != difference[0]):
            result = stats.ttest_rel(second[metric], first[metric])
            t_value, p_value = float(result.statistic), float(result.pvalue)
        else:  # one pair, or a constant difference: no variance to test against
            t_value = p_value = float("nan")
        tests.append({"metric": metric, "difference_mean": difference.mean(),
                      "difference_std": difference.std(ddof=1) if len(difference) > 1 else float("nan"),
                      "t": t_value, "p_value": p_value, "pairs": len(difference)})
    return pd.DataFrame(level_rows), pd.DataFrame(tests)


def markdown_report(frame: pd.DataFrame, factor: str) -> str:
    levels, tests = ablation_statistics(frame, factor)
    name = factor.removeprefix("params.")
    shown_levels = pd.DataFrame([{name: str(row[name]), **{label(m): mean_std(row[f"{m}_mean"], row[f"{m}_std"])
                                                           for m in HEADLINE}, "trials": row["pairs"]}
                                 for row in levels.to_dict("records")])
    shown_tests = pd.DataFrame([{"metric": label(row["metric"]),
                                 f"difference ({name}={levels[name][1]} − {name}={levels[name][0]})":
                                     mean_std(row["difference_mean"], row["difference_std"]),
                                 "t": row["t"], "p (paired t-test)": row["p_value"], "pairs": row["pairs"]}
                                for row in tests.to_dict("records")])
    return (f"### {name}: {levels[name][0]} vs {levels[name][1]}\n\n" + markdown_table(shown_levels) + "\n\n"
            + markdown_table(shown_tests) + "\n")


def ablation_figure(frame: pd.DataFrame, factor: str, path: Path) -> Path:
    """Grouped bars (mean ± std per level) for each metric, Retrain's value as a black tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels, _ = ablation_statistics(frame, factor)
    name = factor.removeprefix("params.")
    ok = finished(frame)
    x = np.arange(len(HEADLINE))
    width = 0.8 / len(levels)
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, row in enumerate(levels.to_dict("records")):
        ax.bar(x + (i - (len(levels) - 1) / 2) * width, [row[f"{m}_mean"] for m in HEADLINE], width,
               yerr=[0 if np.isnan(row[f"{m}_std"]) else row[f"{m}_std"] for m in HEADLINE], capsize=3,
               label=f"{name}={row[name]}")
    retrain = [ok[f"retrain.{m}"].mean() if f"retrain.{m}" in ok else np.nan for m in HEADLINE]
    retrain[HEADLINE.index("avg_disparity")] = 0.0
    ax.scatter(x, retrain, marker="_", s=600, color="black", label="Retrain", zorder=3)
    ax.set_xticks(x, [label(m) for m in HEADLINE])
    ax.set_ylabel("%")
    ax.set_title(f"Ablation of {name} (mean ± std over paired trials)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.ablation", description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", nargs="+")
    parser.add_argument("--factor", action="append", default=None,
                        help="hyperparameter to compare (default: every one that takes two values)")
    parser.add_argument("--out", default=None, help=f"folder for {REPORT_FILE} and one PNG per factor")
    args = parser.parse_args(argv)
    frame = pd.concat([load_study(path) for path in args.study_dir], ignore_index=True)
    if finished(frame).empty:
        raise UserError("no trial of this study finished; nothing to compare")
    factors = [f if f.startswith("params.") else f"params.{f}" for f in args.factor] if args.factor \
        else on_off_factors(frame)
    if not factors:
        raise UserError("no hyperparameter takes exactly two values in this study; pass --factor or run the "
                        "'ablation' space")
    sections = [markdown_report(frame, factor) for factor in factors]
    print("\n".join(sections))
    if args.out:
        with output_folder(Path(args.out), REPORT_FILE) as staging:
            figures = [ablation_figure(frame, f, staging / f"ablation_{f.removeprefix('params.')}.png")
                       for f in factors]
            links = "\n".join(f"![{p.stem}]({p.name})" for p in figures)
            (staging / REPORT_FILE).write_text("# Ablation\n\n" + "\n".join(sections) + "\n" + links + "\n")
        print(f"written: {Path(args.out) / REPORT_FILE}")
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run()
