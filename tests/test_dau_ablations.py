"""The DAU ablation benchmark on digits: per-epoch rows of the long reference run, a table, a resume."""
from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FAST_EPOCHS
from tests.test_dau import FAST_DAU

ROOT = Path(__file__).resolve().parent.parent


def test_the_ablation_bench_keeps_each_epoch_it_evaluates_and_resumes(cache_dir, digits_random, tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # importable by name, as its spawned workers import it
    bench = importlib.import_module("dau_ablations")
    fast = [f"-p{key}={value}" for key, value in FAST_DAU.items() if key != "epochs"]  # test_dau's attacker
    args = ["--preset", "digits", "--seeds", "0", "--variants", "reference", "--long-epochs", "6",
            "--epochs", str(FAST_EPOCHS), *fast, "--cache-dir", str(cache_dir), "--out", str(tmp_path), "--threads", "2"]
    assert bench.main(args) == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert sorted(zip(runs["variant"], runs["epoch"])) == [("Original", 0), ("Retrain", 0), ("reference", 3),
                                                          ("reference", 6)]
    reference = runs[runs["variant"] == "reference"].set_index("epoch")
    assert reference.loc[6, "defender_steps"] == 2 * reference.loc[3, "defender_steps"] > 0
    assert (runs["val_minus_TA"] == runs["val_acc_eval"] - runs["TA"]).all()
    assert runs.loc[runs["variant"] == "Retrain", "avg_disparity"].item() == 0
    best_attack = max(v for k, v in digits_random.original_metrics.items() if k.startswith("mia/") and
                      k.endswith("_bacc"))  # every metric attack, modified entropy included
    assert runs.loc[runs["variant"] == "Original", "best_metric_attack_bacc"].item() == pytest.approx(best_attack)
    table = (tmp_path / "table.md").read_text()
    assert "| reference | 1 |" in table and "trajectory" in table and "best metric attack" in table
    capsys.readouterr()
    assert bench.main(args) == 0  # everything kept: nothing runs again
    assert "done in" not in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "runs.csv").equals(runs)
