"""bench/mia_balance.py on digits: its table's "equal" column is the metric every row reports."""
from __future__ import annotations

import importlib
from pathlib import Path

from study.evaluation.evaluate import split_logits
from study.evaluation.metrics import mia_efficacy, true_label_confidence
from tests.conftest import FAST_EPOCHS

ROOT = Path(__file__).resolve().parent.parent


def test_the_balance_bench_prints_both_estimators_for_each_model_and_view(cache_dir, digits_random, capsys,
                                                                          monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    bench = importlib.import_module("mia_balance")
    args = ["--preset", "digits", "--seed", "0", "--epochs", str(FAST_EPOCHS), "--method", "ft", "-p", "epochs=1",
            "--cache-dir", str(cache_dir)]
    assert bench.main(args) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    table = {(cells[0].strip(), cells[1].strip()): [float(c) for c in cells[2:]] for cells in rows[1:]}
    assert sorted(table) == sorted((m, v) for m in ("Retrain", "Original", "FT") for v in ("test", "select"))
    prepared = digits_random  # the same experiment: digits, random:10, seed 0, FAST_EPOCHS
    logits, labels = split_logits(prepared.retrain, prepared.data, prepared.splits, view="test")
    conf = {k: true_label_confidence(logits[k], labels[k]) for k in ("retain", "test", "forget")}
    subset, held_out, unequal, equal = table[("Retrain", "test")]
    assert subset == min(len(conf["retain"]), len(conf["test"])) and held_out == len(conf["test"])
    assert equal == round(mia_efficacy(conf["retain"], conf["test"], conf["forget"], 0), 1)
    assert 0.0 <= unequal <= 100.0
