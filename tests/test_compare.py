"""study.compare end to end on digits: two methods, a budget of 2, tuning and evaluation seeds apart."""
import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.cli import run_in_process
from tests.conftest import FAST_EPOCHS


def _compare(out, cache, *extra):
    command = [sys.executable, "-m", "study.compare", "--methods", "ft", "ga", "--budget", "2", "--tune-seeds", "0",
               "--eval-seeds", "1", "--epochs", str(FAST_EPOCHS), "--cache-dir", str(cache), "--out", str(out),
               "--threads", "2", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def compared(tmp_path_factory, cache_dir):
    """The comparison, sharing the suite's artifact cache (its digits models for seeds 0 and 1)."""
    root = tmp_path_factory.mktemp("compare")
    result = _compare(root / "out", cache_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, result.stdout


def test_every_method_gets_the_same_budget_and_a_row(compared):
    root, stdout = compared
    record = json.loads((root / "out" / "compare.json").read_text())
    assert record["budget"] == 2 and "budget: 2 trials per method, the same for every method" in stdout
    assert {m: s["trials"] for m, s in record["levels"]["dense"]["studies"].items()} == {"ft": 2, "ga": 2}
    table = (root / "out" / "table.md").read_text()
    for name in ("Retrain", "Original", "FT", "GA", "MIA-Efficacy over 5 subsets", "FT (defaults)", "GA (defaults)",
                 "ToW", "ToW-MIA", "median", "MIA collapses", "relearn UA", "held-out TPR@1%FPR", "selection set",
                 "On the tuning seed", "defaults' rank"):
        assert name in table
    assert "selection set" in record["selected_on"]
    for method in ("ft", "ga"):  # every trial kept, the defaults trial marked
        trials = pd.read_csv(root / "out" / "trials" / "dense" / f"{method}.csv")
        assert len(trials) == 2 and trials["defaults"].sum() == 1
    for method in ("ft", "ga"):
        assert (root / "out" / "configs" / "dense" / f"{method}.yaml").is_file()
    assert (root / "out" / "disparity_vs_time_dense.png").stat().st_size > 1000


def test_no_study_saw_an_evaluation_seed(compared):
    root, _ = compared
    record = json.loads((root / "out" / "compare.json").read_text())
    seen = set()
    for study in record["levels"]["dense"]["studies"].values():
        for params in (root / "out" / study["dir"]).glob("trial_*/params.json"):  # stored relative to --out
            experiment = json.loads(params.read_text())["experiment"]
            seen.add(experiment["seed"])
    assert seen == {0}
    assert not seen & set(record["eval_seeds"])
    runs = pd.read_csv(root / "out" / "runs.csv")
    assert set(runs["seed"]) == {1} and set(runs["method"]) == {"retrain", "original", "ft", "ga"}
    assert runs["relearn_UA"].notna().all() and runs["heldout_tpr@1%"].notna().all()


def test_running_it_again_computes_nothing_new(compared, cache_dir):
    root, _ = compared
    before = (root / "out" / "runs.csv").read_text()
    again = _compare(root / "out", cache_dir)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("reused") == 2 and "Avg. Disparity" in again.stdout
    assert (root / "out" / "runs.csv").read_text() == before


@pytest.mark.parametrize("args, needle", [
    (["--eval-seeds", "0"], "both tuning and evaluation seeds"),
    (["--budget", "-1"], "--budget"),
    (["--budget", "0", "--studies-only"], "tunes nothing"),
    (["--methods", "retrain"], "cannot be compared"),
])
def test_bad_arguments_are_one_line(tmp_path, args, needle):
    result = run_in_process("study.compare", "--methods", "ft", "ga", "--budget", "2", "--tune-seeds", "0",
                            "--eval-seeds", "1", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
                            *args)
    assert result.returncode != 0 and needle in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_a_folder_holds_one_comparison(compared):
    """Another budget (or other seeds) into the same --out is refused before any study starts; a
    sparsity level is what may be added."""
    from study.compare import main
    from study.core.errors import UserError

    root, _ = compared
    with pytest.raises(UserError, match="another budget"):
        main(["--methods", "ft", "--budget", "3", "--tune-seeds", "0", "--eval-seeds", "1", "--epochs",
              str(FAST_EPOCHS), "--cache-dir", str(root / "unused"), "--out", str(root / "out"), "--sparsity", "0.9"])


def test_levels_are_tabulated_side_by_side_from_their_chosen_configurations():
    from analysis.compare_table import side_by_side
    from study.records.comparison import level_runs
    from study.records.run_log import RunLog

    log = RunLog(None)
    chosen = {"dense": {"lr": 0.1}, "sparse-0.95": {"lr": 0.2}}
    for level, sparsity in (("dense", 0.0), ("sparse-0.95", 0.95)):
        for seed in (1, 2):
            for method, params, disparity in (("retrain", {}, 0.0), ("original", {}, 6.0), ("ft", chosen[level], 3.0),
                                              ("ft", {"lr": 9.9}, 50.0)):  # a configuration no study chose
                log.add({"preset": "digits", "forget": "random:10", "method": method, "sparsity": sparsity,
                         "seed": seed, "params": json.dumps(params, sort_keys=True), "UA": 1.0 + seed,
                         "MIA-Efficacy": 2.0, "RA": 99.0, "TA": 90.0, "avg_disparity": disparity + sparsity,
                         "run_seconds": 10.0})
    record = {"experiment": {"forget": "random:10"}, "eval_seeds": [1, 2],
              "levels": {level: {"sparsity": s, "configs": {"ft": chosen[level]}}
                         for level, s in (("dense", 0.0), ("sparse-0.95", 0.95))}}
    runs = level_runs(record, log, "digits")
    assert set(runs) == {"dense", "sparse-0.95"} and all(len(frame) == 6 for frame in runs.values())
    table = side_by_side(runs).set_index("method")
    assert table.loc["FT", "dense Avg. Disparity"] == "3.00 ± 0.00"
    assert table.loc["FT", "95% sparse Avg. Disparity"] == "3.95 ± 0.00"
    assert table.loc["FT", "dense UA"] == "2.50 ± 0.71"


def test_time_ratios_over_different_thread_counts_are_pointed_out(compared):
    from analysis.compare_table import thread_mismatches

    root, _ = compared
    # Retrain and the runs both used the suite's 2 threads: no note under the table
    assert "different thread counts" not in (root / "out" / "table.md").read_text()
    runs = pd.DataFrame([
        {"method": "retrain", "seed": 1, "threads": None, "retrain_threads": 1},
        {"method": "ft", "seed": 1, "threads": 2, "retrain_threads": 2},
        {"method": "ft", "seed": 2, "threads": 2, "retrain_threads": 1},
        {"method": "ga", "seed": 3, "threads": 2, "retrain_threads": None},
    ])
    notes = thread_mismatches(runs)
    assert len(notes) == 2
    assert notes[0] == "seed 2: runs used 2 thread(s), Retrain was trained with 1"
    assert notes[1].startswith("seed 3: Retrain's thread count was not recorded")


def test_studies_only_stops_before_the_evaluation_seeds_and_resumes_without_checkpoints(compared, cache_dir, tmp_path):
    """A comparison tuned in one sitting and evaluated in another: the finished studies' records are
    enough (their checkpoint folders deleted), and --studies-only runs no evaluation seed."""
    root, _ = compared
    copy = tmp_path / "out"
    shutil.copytree(root / "out", copy, ignore=shutil.ignore_patterns("checkpoint_*", "runs.csv", "configs",
                                                                      "table.md"))
    assert not list(copy.glob("studies/**/checkpoint_*"))
    result = _compare(copy, cache_dir, "--studies-only")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("reused") == 2 and "evaluation seeds not run" in result.stdout
    assert not (copy / "runs.csv").exists() and not (copy / "table.md").exists()
    for method in ("ft", "ga"):
        chosen, before = (yaml.safe_load((folder / "configs" / "dense" / f"{method}.yaml").read_text())
                          for folder in (copy, root / "out"))
        assert chosen["params"] == before["params"] and chosen["source"]["trial_id"] == before["source"]["trial_id"]


def test_a_comparison_without_its_studies_folder_evaluates_from_its_configurations(compared, cache_dir, tmp_path):
    """What version control keeps of a comparison (compare.json, configs/, runs.csv, no studies/)
    resumes from there on a machine without its artifact cache: no study is tuned again, no model
    is trained (every evaluation row is in runs.csv) and the chosen configurations are the ones run."""
    root, _ = compared
    copy = tmp_path / "kept"
    shutil.copytree(root / "out", copy, ignore=shutil.ignore_patterns("studies", "table.md"))
    before = (copy / "runs.csv").read_text()
    result = _compare(copy, tmp_path / "empty-cache")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.count("its folder is absent") == 2 and "study of" not in result.stdout
    assert not [line for line in result.stdout.splitlines() if line.startswith("training ")]  # no model trained
    assert not (copy / "studies").exists()
    assert (copy / "runs.csv").read_text() == before  # same params, so every evaluation row was found
    assert "FT" in (copy / "table.md").read_text()


def test_a_chosen_configuration_names_its_study_relative_to_the_comparison(compared):
    """Kept records point into their own folder by relative paths, so that the folder can be moved."""
    root, _ = compared
    chosen = yaml.safe_load((root / "out" / "configs" / "dense" / "ft.yaml").read_text())
    record = json.loads((root / "out" / "compare.json").read_text())
    assert chosen["source"]["study"] == record["levels"]["dense"]["studies"]["ft"]["dir"] == "studies/dense/ft/ft"
    assert (root / "out" / chosen["source"]["study"] / "study.json").is_file()


def test_configurations_chosen_on_one_forget_set_are_evaluated_on_another(compared, cache_dir, tmp_path):
    """--configs-from: nothing is tuned; the source's chosen configurations (and the defaults) run on
    the new forget set, and the record and table say where they were chosen. A seed the source tuned
    on, or another recipe, is refused in one line."""
    root, _ = compared
    source = root / "out"
    common = ("--methods", "ft", "--configs-from", str(source), "--forget", "random:20", "--epochs",
              str(FAST_EPOCHS), "--relearn", "0", "--no-heldout", "--cache-dir", str(cache_dir), "--quiet")
    result = run_in_process("study.compare", *common, "--eval-seeds", "1", "--out", str(tmp_path / "moved"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "study of" not in result.stdout and result.stdout.count("not tuned here") == 2
    record, chosen = (json.loads((folder / "compare.json").read_text()) for folder in (tmp_path / "moved", source))
    assert record["configs_from"] == {"folder": str(source), "forget": "random:10"}
    # the source's study, named from this comparison's folder
    assert (tmp_path / "moved" / record["levels"]["dense"]["studies"]["ft"]["dir"] / "study.json").is_file()
    assert record["levels"]["dense"]["configs"] == {"ft": chosen["levels"]["dense"]["configs"]["ft"]}
    assert (record["budget"], record["tune_seeds"]) == (chosen["budget"], chosen["tune_seeds"])
    runs = pd.read_csv(tmp_path / "moved" / "runs.csv")
    assert set(runs["forget"]) == {"random:20"} and set(runs["method"]) == {"retrain", "original", "ft"}
    assert "on forget random:10 by the comparison in" in (tmp_path / "moved" / "table.md").read_text()
    for extra, needle in ((("--eval-seeds", "0"), "both tuning and evaluation seeds"),
                          (("--tune-seeds", "5", "--eval-seeds", "0"), "its studies tuned on seed(s) 0"),
                          (("--eval-seeds", "2", "--epochs", "5"), "differs in recipe")):
        refused = run_in_process("study.compare", *common, *extra, "--out", str(tmp_path / "refused"))
        assert refused.returncode != 0 and needle in refused.stderr.strip().splitlines()[-1]


def test_budget_zero_evaluates_the_documented_defaults_without_a_study(cache_dir, tmp_path):
    """--budget 0: no tuning seed's models, no Ray, no study; every method's defaults row on the
    evaluation seeds with every probe, and the table says nothing was tuned."""
    result = run_in_process("study.compare", "--methods", "ft", "ga", "--budget", "0", "--eval-seeds", "1",
                            "--epochs", str(FAST_EPOCHS), "--relearn", "0", "--no-heldout", "--cache-dir",
                            str(cache_dir), "--out", str(tmp_path / "out"), "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "budget 0: no study" in result.stdout and "study of" not in result.stdout
    assert not (tmp_path / "out" / "studies").exists() and not (tmp_path / "out" / "configs").exists()
    record = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert record["budget"] == 0 and record["levels"]["dense"]["configs"] == {}
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert set(runs["seed"]) == {1} and set(runs["method"]) == {"retrain", "original", "ft", "ga"}
    assert runs.loc[runs["method"].isin(["ft", "ga"]), "mia_subsets_std"].notna().all()
    table = (tmp_path / "out" / "table.md").read_text()
    assert "No method tuned (budget 0)" in table and "FT (defaults)" in table and "GA (defaults)" in table
    assert "| FT |" not in table


def test_a_method_whose_version_changed_is_tuned_and_evaluated_again(compared, cache_dir, tmp_path):
    """Kept studies and rows carry their method's fingerprint; resumed after a method changed (its
    defaults, declarations or revision), the same command tunes and evaluates that method again,
    says so, and keeps the old study aside, while the unchanged method is reused."""
    root, _ = compared
    copy = tmp_path / "kept"
    shutil.copytree(root / "out", copy)
    record = json.loads((copy / "compare.json").read_text())
    assert all(len(entry["fingerprint"]) == 12 for entry in record["levels"]["dense"]["studies"].values())
    record["levels"]["dense"]["studies"]["ga"]["fingerprint"] = "0ld0ld0ld0ld"
    (copy / "compare.json").write_text(json.dumps(record))
    runs = pd.read_csv(copy / "runs.csv")
    assert runs["method_fingerprint"].notna().all()
    runs.loc[runs["method"] == "ga", "method_fingerprint"] = "0ld0ld0ld0ld"
    runs.to_csv(copy / "runs.csv", index=False)
    result = _compare(copy, cache_dir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ga: its kept study was made by another version of the method or space (0ld0ld0ld0ld" in result.stdout
    assert any(line.startswith("ga: ") and "measured by another version of it" in line
               for line in result.stdout.splitlines())
    assert result.stdout.count("reused") == 1  # ft's study
    assert (copy / "studies" / "dense" / "ga.superseded-0ld0ld0ld0ld").is_dir()
    again = pd.read_csv(copy / "runs.csv")
    asked = (again["method"] == "ga") & (again["forget"] == "random:10") & (again["sparsity"] == 0.0)
    # the defaults rows (same key) were replaced, not added beside; the re-tuned choice may be a new row
    defaults = again[asked & (again["params"] == json.dumps(
        {k: v for k, v in record["levels"]["dense"]["defaults"]["ga"].items()}, sort_keys=True))]
    assert len(defaults) == 1 and defaults["method_fingerprint"].iloc[0] != "0ld0ld0ld0ld"


def test_one_optuna_file_holds_every_methods_study_with_its_metrics(compared):
    """`<out>/optuna.db` keeps a study per method, named `<method>-<level>`, every trial carrying its
    metrics and Ray trial id (what optuna-dashboard's compare view and the front read); the
    comparison prints the one command that opens it."""
    import optuna

    root, stdout = compared
    storage = f"sqlite:///{root / 'out' / 'optuna.db'}"
    names = {summary.study_name for summary in optuna.get_all_study_summaries(storage)}
    assert names == {"ft-dense", "ga-dense"}
    for name in names:
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert len(trials) == 2
        for trial in trials:
            assert {"UA", "RA", "TA", "MIA-Efficacy", "avg_disparity", "ray_trial_id"} <= set(trial.user_attrs)
    assert "optuna-dashboard sqlite:///" in stdout and "optuna.db" in stdout


def test_the_dashboard_shows_every_methods_study_and_its_metrics_in_a_real_browser(compared, tmp_path):
    """optuna-dashboard over the comparison's one file, read in headless Chromium: the study list
    names every method's study, a study's trial page shows the metrics each trial carries, and the
    compare-studies view renders (a screenshot is written)."""
    pytest.importorskip("optuna_dashboard", reason='optuna-dashboard not installed (pip install -e ".[dashboard]")')
    from analysis.dashboard import chromium_binary, dashboard, page_text, screenshot, storage_of, study_ids

    if chromium_binary() is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it where apt exists)")
    root, _ = compared
    storage = storage_of(root / "out")
    ids = study_ids(storage)
    with dashboard(storage) as base:
        listed = page_text(base)
        assert "ft-dense" in listed and "ga-dense" in listed
        trials = page_text(f"{base}/studies/{ids['ga-dense']}/trials")
        assert "avg_disparity" in trials and "ray_trial_id" in trials
        shot = screenshot(f"{base}/compare-studies?ids={ids['ft-dense']},{ids['ga-dense']}", tmp_path / "compare.png")
        assert shot.stat().st_size > 10_000


def test_kept_rows_measured_against_other_references_run_again(compared, cache_dir, tmp_path):
    """Rows record the weights digests of the original and Retrain they were measured against; a
    resumed comparison that has rows to run for a seed checks its kept rows against the models this
    cache holds, says how many differ, and runs those again (a finished one trains nothing)."""
    root, _ = compared
    copy = tmp_path / "kept"
    shutil.copytree(root / "out", copy)
    runs = pd.read_csv(copy / "runs.csv")
    mine = (runs["forget"] == "random:10") & (runs["sparsity"] == 0.0) & (runs["seed"] == 1)
    ft = mine & (runs["method"] == "ft")
    true_digest = runs.loc[ft, "original_digest"].iloc[0]
    runs.loc[ft, "original_digest"] = "feedfeedfeed"  # as if measured on another machine's original
    missing = runs.index[mine & (runs["method"] == "ga")][:1]
    runs.drop(index=missing).to_csv(copy / "runs.csv", index=False)  # one row to run: seed 1 is prepared
    result = _compare(copy, cache_dir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"seed 1: {int(ft.sum())} kept row(s) were measured against another original or Retrain" in result.stdout
    again = pd.read_csv(copy / "runs.csv")
    assert set(again.loc[(again["method"] == "ft") & (again["seed"] == 1), "original_digest"]) == {true_digest}


def test_a_table_of_an_unfinished_comparison_says_which_seeds_it_covers():
    from analysis.compare_table import unfinished_note

    rows = pd.DataFrame({"method": ["retrain", "ft", "ga", "retrain", "ft"], "seed": [1, 1, 1, 2, 2],
                         "variant": ["tuned"] * 5})
    note = unfinished_note(rows, [1, 2, 3])
    assert "seed(s) 1, 2 of the evaluation seeds 1, 2, 3" in note and "GA (1)" in note and "FT (" not in note
    complete = pd.DataFrame({"method": ["retrain", "ft"] * 2, "seed": [1, 1, 2, 2], "variant": ["tuned"] * 4})
    assert unfinished_note(complete, [1, 2]) is None
