"""analysis.table / ablation / plots / report on a real finished digits study and on hand-made frames."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import ablation, plots, report, table
from study.records.trials import load_study
from tests.cli import run_in_process

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.exists() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000


def _hand_made_ablation() -> pd.DataFrame:
    rows = []
    for seed, (ua_on, ua_off) in enumerate([(10.0, 11.0), (12.0, 14.0), (14.0, 17.0)]):
        for on, ua in ((True, ua_on), (False, ua_off)):
            rows.append({"trial_id": f"{seed}{int(on)}", "status": "TERMINATED", "method": "dau",
                         "params.regularizer": on, "params.lr": 0.01, "experiment.seed": seed,
                         "avg_disparity": ua / 2, "UA": ua, "MIA-Efficacy": 50.0, "RA": 99.0, "TA": 90.0 + seed,
                         "run_seconds": 1.0, **{f"retrain.{m}": 10.0 for m in ("UA", "MIA-Efficacy", "RA", "TA")},
                         "retrain.avg_disparity": 0.0, "retrain_seconds": 5.0})
    return pd.DataFrame(rows)


def test_ablation_statistics_by_hand():
    frame = _hand_made_ablation()
    assert ablation.on_off_factors(frame) == ["params.regularizer"]
    levels, tests = ablation.ablation_statistics(frame, "params.regularizer")
    assert list(levels["regularizer"]) == [True, False]
    assert levels.loc[0, "UA_mean"] == pytest.approx(12.0) and levels.loc[0, "UA_std"] == pytest.approx(2.0)
    ua = tests.set_index("metric").loc["UA"]
    # paired differences (off - on) = 1, 2, 3: mean 2, std 1, t = 2 / (1 / sqrt 3), two-sided p with 2 dof
    assert ua["difference_mean"] == pytest.approx(2.0) and ua["difference_std"] == pytest.approx(1.0)
    assert ua["t"] == pytest.approx(2 * math.sqrt(3))
    from scipy.stats import t as student_t

    assert ua["p_value"] == pytest.approx(2 * student_t.sf(2 * math.sqrt(3), df=2))
    # a constant difference has no variance to test against: no p-value rather than a fake one
    assert math.isnan(tests.set_index("metric").loc["TA", "p_value"])
    assert "regularizer" in ablation.markdown_report(frame, "params.regularizer")


def test_ablation_refuses_a_factor_without_pairs():
    frame = _hand_made_ablation()
    frame.loc[frame["params.regularizer"] == False, "experiment.seed"] += 10  # noqa: E712
    from study.core.errors import UserError

    with pytest.raises(UserError, match="no pair"):
        ablation.ablation_statistics(frame, "params.regularizer")


def test_method_table_mean_and_std_over_seeds():
    frame = _hand_made_ablation()
    frame["experiment.sparsity"] = 0.0
    summary = table.summarize(table.study_runs(frame))
    assert list(summary["method"]) == ["retrain", "dau"]
    dau = summary.set_index("method").loc["dau"]
    assert dau["n"] == 3 and dau["UA_mean"] == pytest.approx(12.0)  # the best configuration (regularizer on)
    assert dau["TA_std"] == pytest.approx(1.0)
    wide = table.wide_table(summary)
    assert wide.loc[1, "UA"] == "12.00 ± 2.00" and wide.loc[0, "method"] == "Retrain"


def test_pareto_mask():
    disparity = np.array([5.0, 3.0, 4.0, 1.0])
    seconds = np.array([1.0, 2.0, 3.0, 10.0])
    assert list(plots.pareto_mask(disparity, seconds)) == [True, True, False, True]


def test_plots_write_valid_pngs(finished_study, tmp_path):
    _, study_dir, _ = finished_study
    frame = load_study(study_dir)
    assert _is_png(plots.pareto_front(frame, tmp_path / "pareto.png"))
    rng = np.random.default_rng(0)
    searched = pd.DataFrame({"trial_id": [f"t{i}" for i in range(12)], "status": "TERMINATED", "method": "dau",
                             "params.lr": rng.uniform(1e-3, 1e-1, 12), "params.alpha": rng.uniform(0.1, 1.0, 12)})
    searched["avg_disparity"] = 100 * searched["params.lr"] + rng.normal(0, 0.1, 12)  # lr matters, alpha does not
    path, scores = plots.importance(searched, tmp_path / "importance.png",
                                    {"lr": {"loguniform": [1e-3, 1e-1]}, "alpha": {"uniform": [0.1, 1.0]}})
    assert _is_png(path) and set(scores) == {"lr", "alpha"} and scores["lr"] > scores["alpha"]
    constant = searched.assign(avg_disparity=1.0)
    assert plots.importance(constant, tmp_path / "none.png") is None
    assert _is_png(plots.parallel_coordinates(frame, tmp_path / "parallel.png"))
    summary = table.summarize(table.study_runs(frame))
    assert _is_png(plots.metric_bars(summary, tmp_path / "bars.png"))
    assert _is_png(ablation.ablation_figure(_hand_made_ablation(), "params.regularizer", tmp_path / "ab.png"))


def test_report_cli_writes_markdown_html_and_figures(finished_study, tmp_path):
    _, study_dir, _ = finished_study
    out = tmp_path / "report"
    result = run_in_process("analysis.report", str(study_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = (out / "report.md").read_text()
    for needle in ("Ranking", "Retrain", "python -m study.tune", "torch", "pareto_front.png", "parallel_dau.png"):
        assert needle in text
    assert (out / "report.html").read_text().startswith("<!doctype html>")
    figures = list((out / "figures").glob("*.png"))
    assert len(figures) >= 3 and all(_is_png(f) for f in figures) and "fANOVA" in text
    ranking = pd.read_csv(out / "ranking.csv")
    for _, row in ranking[ranking["trial_id"] != "Retrain"].iterrows():
        last = json.loads((study_dir / f"trial_{row['trial_id']}" / "result.json").read_text().strip().splitlines()[-1])
        assert row["avg_disparity"] == pytest.approx(last["avg_disparity"])
    again = run_in_process("analysis.report", str(study_dir), "--out", str(out))
    assert again.returncode == 0, again.stderr  # regenerating a report replaces it


def test_table_cli(finished_study):
    _, study_dir, _ = finished_study
    result = run_in_process("analysis.table", str(study_dir))
    assert result.returncode == 0, result.stderr
    assert "| Retrain |" in result.stdout and "| DAU |" in result.stdout


@pytest.mark.parametrize("module", ["analysis.rank", "analysis.table", "analysis.ablation", "analysis.report",
                                    "analysis.selection"])
def test_analysis_commands_refuse_a_folder_that_is_not_a_study(module, tmp_path):
    extra = ["--out", str(tmp_path / "r")] if module == "analysis.report" else []
    result = run_in_process(module, str(tmp_path), *extra)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "not a Ray Tune study" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_in_process(module, str(tmp_path / "nope"), *extra)
    assert missing.returncode == 2 and "is not a directory" in missing.stderr


def test_report_with_only_failed_trials_exits_non_zero_and_writes_nothing(monkeypatch, tmp_path, capsys):
    failed = pd.DataFrame([{"trial_id": "a1", "method": "dau", "status": "ERROR", "error": "TrainingDiverged: NaN",
                            "avg_disparity": None, "objective": "avg_disparity"}])
    monkeypatch.setattr(report, "load_study", lambda path: failed)
    with pytest.raises(SystemExit) as exit_info:
        report.run([str(tmp_path), "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2 and not (tmp_path / "r").exists()
    captured = capsys.readouterr()
    assert "nothing to report" in captured.err and "TrainingDiverged" in captured.out


def test_report_refuses_to_overwrite_a_folder_that_is_not_a_report(finished_study, tmp_path):
    _, study_dir, _ = finished_study
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    result = run_in_process("analysis.report", str(study_dir), "--out", str(precious))
    assert result.returncode == 2 and "not a previous report" in result.stderr
    assert (precious / "thesis.tex").read_text() == "keep me"


def test_small_parameters_keep_significant_digits_in_tables():
    """A searched learning rate of 0.00024 must not print as 0.000 in a ranking."""
    import pandas as pd

    from analysis.formatting import format_number, markdown_table

    assert format_number(0.00024443) == "0.000244"
    assert format_number(0.0) == "0.000" and format_number(12.3456) == "12.346"
    assert format_number(float("nan")) == ""
    table = markdown_table(pd.DataFrame({"trial": ["a"], "lr": [0.0020224], "UA": [3.85]}))
    assert "| a | 0.00202 | 3.850 |" in table


def test_trial_drivers_rank_correlations_and_split_by_hand(tmp_path):
    import pandas as pd

    from analysis.trial_drivers import correlations, main, split_ranges
    from study.core.errors import UserError

    trials = pd.DataFrame({"trial_id": list("abcde"), "params.gamma": [0.001, 0.002, 0.01, 0.05, 0.07],
                           "params.alpha": [0.9, 0.1, 0.5, 0.3, 0.7], "params.batch_size": [256] * 5,
                           "params.use_softmax": [True, False, True, False, True],
                           "UA": [0.0, 0.5, 1.0, 8.0, 13.0], "RA": [99.9, 99.8, 99.5, 95.0, 88.0],
                           "MIA-Efficacy": [1.0, 2.0, 3.0, 4.0, 5.0], "TA": [90.0] * 4 + [85.0],
                           "avg_disparity": [6.0, 5.5, 5.0, 4.0, 7.0]})
    table = correlations(trials).set_index("hyperparameter")
    assert list(table.index) == ["gamma", "alpha"]  # constant and boolean columns are left out
    assert table.loc["gamma", "UA"] == pytest.approx(1.0) and table.loc["gamma", "RA"] == pytest.approx(-1.0)
    assert table.loc["alpha", "UA"] == pytest.approx(pd.Series([0.9, 0.1, 0.5, 0.3, 0.7]).rank().corr(
        pd.Series([1, 2, 3, 4, 5.0])))  # Spearman: Pearson on ranks
    split = split_ranges(trials, "gamma", 0.03).set_index("trials")
    assert split.loc["gamma <= 0.03", "UA"] == "0.00–1.00" and split.loc["gamma > 0.03", "n"] == 2
    path = tmp_path / "t.csv"
    trials.to_csv(path, index=False)
    assert main([str(path), "--split", "gamma=0.03"]) == 0
    with pytest.raises(UserError, match="PARAM=NUMBER"):
        main([str(path), "--split", "gamma=high"])
    with pytest.raises(UserError, match="no trial table"):
        main([str(tmp_path / "missing.csv")])


def test_figure_labels_of_close_methods_do_not_cover_each_other():
    """Methods with close costs and disparities (class 0's SalUn, RL, SCRUB) each keep a readable
    label: no two label boxes overlap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.compare_table import place_labels

    figure, axes = plt.subplots(figsize=(6, 4))
    points = [(f"method {i}", 0.3 + 0.01 * i, 1.0 + 0.02 * i) for i in range(5)]
    axes.scatter([x for _, x, _ in points], [y for _, _, y in points])
    axes.set_xlim(0, 1.5)
    axes.set_ylim(0, 10)
    place_labels(axes, points)
    renderer = figure.canvas.get_renderer()
    boxes = [text.get_window_extent(renderer) for text in axes.texts]
    plt.close(figure)
    assert [text.get_text() for text in axes.texts] == [name for name, _, _ in points]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_the_ranking_header_says_how_many_trials_and_which_set():
    from analysis.rank import ranking_header

    frame = _hand_made_ablation().assign(**{"experiment.select_size": 180})
    assert ranking_header(frame, top=4) == ("Top 4 of 6 finished trials by avg_disparity (lower is better), "
                                            "scored on the selection set")
    assert ranking_header(frame.assign(**{"experiment.select_size": 0}), top=10).startswith("All 6 finished trials")
    assert ranking_header(frame.assign(**{"experiment.select_size": 0})).endswith("scored on the test set")


def test_the_html_report_keeps_small_hyperparameters():
    """A learning rate of 0.00024 must not print as 0.000 in the HTML report."""
    document = report.Report()
    document.table(pd.DataFrame({"lr": [0.00024], "avg_disparity": [1.23456]}))
    page = document.html("t")
    assert "0.00024" in page and "1.235" in page and "0.000<" not in page
