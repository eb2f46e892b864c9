"""study.compare end to end on digits: two methods, a budget of 2, tuning and evaluation seeds apart."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import FAST_EPOCHS


def _compare(out, cache, *extra):
    command = [sys.executable, "-m", "study.compare", "--methods", "ft", "ga", "--budget", "2", "--tune-seeds", "0",
               "--eval-seeds", "1", "--epochs", str(FAST_EPOCHS), "--cache-dir", str(cache), "--out", str(out),
               "--threads", "2", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    result = _compare(root / "out", root / "cache")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, result.stdout


def test_every_method_gets_the_same_budget_and_a_row(compared):
    root, stdout = compared
    record = json.loads((root / "out" / "compare.json").read_text())
    assert record["budget"] == 2 and "budget: 2 trials per method, the same for every method" in stdout
    assert {m: s["trials"] for m, s in record["studies"].items()} == {"ft": 2, "ga": 2}
    table = (root / "out" / "table.md").read_text()
    for name in ("Retrain", "Original", "FT", "GA", "MIA-Efficacy over 5 subsets"):
        assert name in table
    for method in ("ft", "ga"):
        assert (root / "out" / "configs" / f"{method}.yaml").is_file()
    assert (root / "out" / "disparity_vs_time.png").stat().st_size > 1000


def test_no_study_saw_an_evaluation_seed(compared):
    root, _ = compared
    record = json.loads((root / "out" / "compare.json").read_text())
    seen = set()
    for study in record["studies"].values():
        for params in __import__("pathlib").Path(study["dir"]).glob("trial_*/params.json"):
            experiment = json.loads(params.read_text())["experiment"]
            seen.add(experiment["seed"])
    assert seen == {0}
    assert not seen & set(record["eval_seeds"])
    runs = pd.read_csv(root / "out" / "runs.csv")
    assert set(runs["seed"]) == {1} and set(runs["method"]) == {"retrain", "original", "ft", "ga"}


def test_running_it_again_computes_nothing_new(compared):
    root, _ = compared
    before = (root / "out" / "runs.csv").read_text()
    again = _compare(root / "out", root / "cache")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("reused") == 2 and "Avg. Disparity" in again.stdout
    assert (root / "out" / "runs.csv").read_text() == before


@pytest.mark.parametrize("args, needle", [
    (["--eval-seeds", "0"], "both tuning and evaluation seeds"),
    (["--budget", "0"], "--budget"),
    (["--methods", "retrain"], "cannot be compared"),
])
def test_bad_arguments_are_one_line(tmp_path, args, needle):
    result = _compare(tmp_path / "out", tmp_path / "cache", *args)
    assert result.returncode != 0 and needle in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
