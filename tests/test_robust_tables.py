"""ToW, ToW-MIA and the robust comparison tables, checked by hand on synthetic rows."""
import math

import pandas as pd
import pytest

from analysis.compare_table import render, robustness_table, summary_table
from analysis.robust import collapses, paired_difference, with_retrain_gaps
from study.evaluation.metrics import retrain_gaps


def test_tow_and_tow_mia_by_hand():
    retrain = {"UA": 10.0, "MIA-Efficacy": 20.0, "RA": 100.0, "TA": 90.0}
    method = {"UA": 4.0, "MIA-Efficacy": 30.0, "RA": 98.0, "TA": 89.0}
    gaps = retrain_gaps(method, retrain)
    assert gaps["tow"] == pytest.approx(0.94 * 0.98 * 0.99)
    assert gaps["tow_mia"] == pytest.approx(0.90 * 0.98 * 0.99)
    assert gaps["avg_disparity"] == pytest.approx((6 + 10 + 2 + 1) / 4)
    assert (gaps["gap/UA"], gaps["gap/utility"]) == (6.0, 3.0)
    assert retrain_gaps(retrain, retrain)["tow"] == 1.0


def _row(method, seed, ua, mia, ra=99.0, ta=88.0, variant="tuned", **extra):
    return {"method": method, "seed": seed, "UA": ua, "MIA-Efficacy": mia, "RA": ra, "TA": ta,
            "run_seconds": 10.0, "retrain_seconds": 100.0, "variant": variant, "mia_subsets_std": 0.1,
            "relearn_UA": 5.0, "heldout_tpr@1%": 2.0, **extra}


def _runs():
    rows = []
    for seed, offset in ((1, 0.0), (2, 1.0), (3, -1.0), (4, 0.5), (5, 0.2)):
        rows.append(_row("retrain", seed, 9.0, 20.0 + offset, 100.0, 89.0))
        rows.append(_row("original", seed, 0.0, 2.0, 100.0, 89.0))
        rows.append(_row("ft", seed, 7.0 + offset, 22.0, 99.0, 88.0))
        rows.append(_row("ga", seed, 9.0, 100.0 if seed == 2 else 25.0, 95.0, 85.0))
        rows.append(_row("ga", seed, 3.0, 10.0, 99.5, 88.5, variant="defaults"))
    frame = pd.DataFrame(rows)
    return frame.assign(avg_disparity=with_retrain_gaps(frame)["avg_disparity"])


def test_gaps_are_recomputed_against_the_same_seeds_retrain():
    runs = with_retrain_gaps(_runs())
    ft_seed2 = runs[(runs["method"] == "ft") & (runs["seed"] == 2)].iloc[0]
    assert ft_seed2["gap/UA"] == pytest.approx(1.0) and ft_seed2["gap/MIA-Efficacy"] == pytest.approx(1.0)
    assert ft_seed2["tow"] == pytest.approx(0.99 * 0.99 * 0.99)


def test_a_collapse_is_counted_once_for_its_seed():
    runs = _runs()
    flagged = runs[collapses(runs)]
    assert list(zip(flagged["method"], flagged["seed"])) == [("ga", 2)]


def test_the_paired_difference_by_hand():
    best = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0], index=[1, 2, 3, 4, 5])
    other = best + pd.Series([1.0, 2.0, 1.0, 2.0, 1.5], index=[1, 2, 3, 4, 5])
    d = paired_difference(other, best)
    assert d["n"] == 5 and d["mean"] == pytest.approx(1.5)
    half = 2.7764451 * pd.Series([1.0, 2.0, 1.0, 2.0, 1.5]).std(ddof=1) / math.sqrt(5)
    assert (d["low"], d["high"]) == (pytest.approx(1.5 - half), pytest.approx(1.5 + half))
    assert d["p"] == pytest.approx(0.0625)  # all five differences positive: the smallest p at n = 5


def test_tables_show_medians_defaults_gaps_collapses_probes_and_the_paired_test():
    runs, order = _runs(), ["retrain", "original", "ft", "ga"]
    summary = summary_table(runs, order, {}, 5)
    assert list(summary["method"]) == ["Retrain", "Original", "FT", "GA", "GA (defaults)"]
    assert {"median", "ToW", "ToW-MIA"} <= set(summary.columns)
    robust, best = robustness_table(runs, order, 5)
    row = robust.set_index("method")
    assert best == "FT" and row.loc["GA", "MIA collapses"] == "1 of 5" and row.loc["FT", "MIA collapses"] == "0 of 5"
    assert row.loc["GA", "relearn UA"].startswith("5.00") and "held-out TPR@1%FPR" in robust
    assert row.loc["GA", "Δ Avg. Disparity to the best (95% CI; Wilcoxon p)"].endswith("p 0.062")
    record = {"command": "x", "experiment": {"dataset": "d", "model": "m", "forget": "random:10"}, "budget": 4,
              "tune_seeds": [0], "eval_seeds": [1, 2, 3, 4, 5], "objective": "avg_disparity", "relearn_steps": 20,
              "selected_on": "selection set (9 held-out training-pool images; the test set is never read)",
              "levels": {"dense": {"sparsity": 0.0, "methods": ["ft", "ga"], "failed": {}}}}
    text = render(record, {"dense": runs}, 5)
    for needle in ("ToW-MIA", "GA (defaults)", "MIA collapses", "relearn UA", "after 20 fine-tuning steps",
                   "selection set", "median"):
        assert needle in text


def test_the_tuning_seed_table_places_the_defaults_among_the_trials(tmp_path):
    from analysis.compare_table import tuning_table

    folder = tmp_path / "trials" / "dense"
    folder.mkdir(parents=True)
    pd.DataFrame({"trial_id": ["a", "b", "c"], "defaults": [False, True, False], "avg_disparity": [3.0, 2.5, 1.0],
                  "epoch": [4, 2, 8]}).to_csv(folder / "ft.csv", index=False)
    table = tuning_table(tmp_path, "dense", ["retrain", "ft"]).set_index("method")
    assert table.loc["FT", "best Avg. Disparity"] == "1.00" and table.loc["FT", "defaults Avg. Disparity"] == "2.50"
    assert table.loc["FT", "defaults' rank"] == "2 of 3" and table.loc["FT", "defaults' epochs reached"] == "2"
