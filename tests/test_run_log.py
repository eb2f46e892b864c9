"""The run log reuses a kept row only when its metrics were computed by today's definitions,
and still reads every kept row back for tables."""
from __future__ import annotations

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
