"""The run log reuses a kept row only when its metrics were computed by today's definitions,
and still reads every kept row back for tables."""
from __future__ import annotations

import json

import pandas as pd

from study.evaluation.metrics import METRICS_VERSION
from study.records.run_log import RunLog, run_key


def test_a_row_of_older_metrics_is_computed_again_and_replaced(tmp_path):
    path = tmp_path / "runs.csv"
    key = run_key("digits", "random:10", "ga", 0.0, 1, {"lr": 0.01})
    other = run_key("digits", "random:10", "ga", 0.0, 2, {"lr": 0.01})
    pd.DataFrame([{**key, "MIA-Efficacy": 100.0}, {**other, "MIA-Efficacy": 99.0, "metrics_version": None}]).to_csv(
        path, index=False)  # rows from before the column existed, and one with it empty
    log = RunLog(path)
    assert log.reusable(key) is None and log.reusable(other) is None
    assert log.get(key)["MIA-Efficacy"] == 100.0  # a kept table still shows it (with a note)
    log.add({**key, "MIA-Efficacy": 16.1, "metrics_version": METRICS_VERSION})
    reread = RunLog(path)
    assert reread.reusable(key)["MIA-Efficacy"] == 16.1 and reread.reusable(other) is None
    assert len(pd.read_csv(path)) == 2  # replaced, not added beside the old row


def test_a_table_counts_its_rows_of_older_metrics():
    from analysis.compare_table import older_metric_rows

    rows = pd.DataFrame([{"metrics_version": METRICS_VERSION}, {"metrics_version": 1}, {"metrics_version": None}])
    assert older_metric_rows(rows) == 2
    assert older_metric_rows(pd.DataFrame([{"UA": 1.0}])) == 1  # a table from before the column existed


def test_an_evaluation_rows_margins_are_kept_in_a_file_beside_the_log(tmp_path, digits_random):
    import numpy as np

    from study.engine.seed_runs import evaluation_row
    from tests.conftest import FAST_METHOD_PARAMS

    key = run_key("digits", "random:10", "ga", 0.0, 0, FAST_METHOD_PARAMS["ga"])
    row = evaluation_row(digits_random, "ga", FAST_METHOD_PARAMS["ga"], key)
    splits = digits_random.splits
    assert {name: len(m) for name, m in row["margins"].items()} == {
        "forget": len(splits.forget), "retain": len(splits.retain), "test": len(splits.test)}
    assert row["margins"]["forget"].dtype == np.float16
    log = RunLog(tmp_path / "runs.csv")
    log.add(row)
    kept = RunLog(tmp_path / "runs.csv").get(key)
    with np.load(tmp_path / kept["margins_file"]) as stored:
        assert set(stored.files) == {"forget", "retain", "test"} and len(stored["test"]) == len(splits.test)
        assert np.array_equal(stored["forget"], row_margins := evaluation_margins(digits_random, row))
    assert np.isfinite(row_margins.astype(np.float32)).all()


def evaluation_margins(prepared, row):
    """The forget margins recomputed from the run: the file must hold exactly these."""
    from study.engine.runner import run_method
    from study.evaluation.margins import example_margins
    from study.methods import build_method

    result = run_method(prepared, build_method("ga", json.loads(row["params"])), log=lambda m: None)
    return example_margins(result.model, prepared.data, prepared.splits)["forget"]


def test_a_row_of_another_method_version_is_not_reused(tmp_path):
    key = run_key("digits", "random:10", "ga", 0.0, 1, {"lr": 0.01})
    log = RunLog(tmp_path / "runs.csv")
    log.add({**key, "MIA-Efficacy": 16.1, "metrics_version": METRICS_VERSION, "method_fingerprint": "aaaaaaaaaaaa"})
    reread = RunLog(tmp_path / "runs.csv")
    assert reread.reusable(key, "aaaaaaaaaaaa") is not None and not reread.superseded(key, "aaaaaaaaaaaa")
    assert reread.reusable(key, "bbbbbbbbbbbb") is None and reread.superseded(key, "bbbbbbbbbbbb")
    unversioned = run_key("digits", "random:10", "ga", 0.0, 2, {"lr": 0.01})
    log.add({**unversioned, "MIA-Efficacy": 16.1, "metrics_version": METRICS_VERSION})
    assert RunLog(tmp_path / "runs.csv").reusable(unversioned, "aaaaaaaaaaaa") is None  # kept before versions


def test_a_method_fingerprint_follows_its_declarations():
    from study.methods import build_method, method_class

    ga = method_class("ga")
    before = ga.fingerprint()
    assert len(before) == 12 and before != method_class("ft").fingerprint()
    ga.revision += 1
    try:
        assert ga.fingerprint() != before
    finally:
        ga.revision -= 1
    assert ga.fingerprint() == before and build_method("ga").fingerprint() == before
