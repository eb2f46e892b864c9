"""Robust summaries of evaluation rows over seeds: what a mean ± std alone hides.

- `with_retrain_gaps`: each row's gaps to Retrain on the same seed (|ΔUA|, |ΔMIA|, |ΔRA|, |ΔTA|), ToW and
  ToW-MIA, recomputed from the rows themselves (`study.evaluation.metrics.retrain_gaps`), so a
  comparison kept before these columns existed shows them too.
- `collapses`: MIA-Efficacy collapses, where the SVM calls (nearly) every forget sample a
  non-member (≥ 99%) while on the same seed Retrain's is below 90%: one such seed can set a
  method's mean Avg. Disparity on its own.
- `paired_to_best`: each method's Avg. Disparity minus the best method's, paired over the
  evaluation seeds: the mean difference, its 95% t interval and the two-sided Wilcoxon signed-rank
  p-value. With n seeds the smallest Wilcoxon p possible is 2 / 2^n (0.25 at 3 seeds, 0.0625 at 5,
  0.031 at 6): below 6 seeds no difference can reach p < 0.05 by it, and the t interval assumes
  roughly normal differences.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from study.evaluation.metrics import retrain_gaps
from study.evaluation.names import METRIC_NAMES

COLLAPSE_AT, RETRAIN_BELOW = 99.0, 90.0  # MIA-Efficacy of a collapse, and Retrain's below which it is one


def with_retrain_gaps(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` with the gaps to the same seed's Retrain row, ToW and ToW-MIA (NaN without that row)."""
    reference = {int(row["seed"]): row for row in runs[runs["method"] == "retrain"].to_dict("records")}
    computed = []
    for row in runs.to_dict("records"):
        gold = reference.get(int(row["seed"]))
        computed.append(retrain_gaps(row, gold) if gold is not None else {})
    extra = pd.DataFrame(computed, index=runs.index)
    return runs.drop(columns=[c for c in extra.columns if c in runs]).join(extra)


def collapses(runs: pd.DataFrame) -> pd.Series:
    """Per row: is its MIA-Efficacy a collapse (≥ 99 while the same seed's Retrain is below 90)?"""
    retrain = runs[runs["method"] == "retrain"].set_index("seed")["MIA-Efficacy"]
    gold = runs["seed"].map(retrain)
    return (runs["MIA-Efficacy"] >= COLLAPSE_AT) & (gold < RETRAIN_BELOW)


def paired_difference(values: pd.Series, best: pd.Series) -> dict[str, float]:
    """`values` − `best` paired by index (seed): mean, 95% t interval, Wilcoxon p, number of pairs."""
    from scipy import stats

    pairs = pd.concat([values, best], axis=1, join="inner").dropna()
    diff = (pairs.iloc[:, 0] - pairs.iloc[:, 1]).to_numpy(dtype=float)
    n = len(diff)
    result = {"n": n, "mean": float(diff.mean()) if n else math.nan, "low": math.nan, "high": math.nan,
              "p": math.nan}
    if n >= 2:
        half = stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / math.sqrt(n)
        result.update(low=result["mean"] - half, high=result["mean"] + half)
    if n >= 1 and np.any(diff != 0):
        result["p"] = float(stats.wilcoxon(diff, alternative="two-sided").pvalue)
    return result


def paired_to_best(runs: pd.DataFrame, rows: list[str], by: str = "avg_disparity") -> tuple[str | None, dict]:
    """The row (a `row` name) with the lowest mean `by`, and each other row's paired difference to it."""
    means = runs[runs["row"].isin(rows)].groupby("row")[by].mean().dropna()
    if means.empty:
        return None, {}
    best = str(means.idxmin())
    best_values = runs[runs["row"] == best].set_index("seed")[by]
    return best, {row: paired_difference(runs[runs["row"] == row].set_index("seed")[by], best_values)
                  for row in rows if row != best and row in means.index}


def gap_names() -> list[str]:
    return [f"gap/{name}" for name in METRIC_NAMES]
