import json

import pytest

from analysis.runs import compare_runs, main
from study.core.errors import UserError
from study.methods import METHODS


def _write_run(folder, seed, params, avg_disparity, original=6.0, mia=12.0):
    folder.mkdir(parents=True)
    experiment = {"dataset": "fashion-mnist", "forget": "random:10", "seed": seed, "sparsity": 0.0}
    (folder / "config.json").write_text(json.dumps({"experiment": experiment, "method": "dau", "params": params}))
    metrics = {"UA": 4.0, "MIA-Efficacy": mia, "RA": 98.0, "TA": 88.0, "avg_disparity": avg_disparity,
               "mia/confidence": 15.0}
    (folder / "metrics.json").write_text(json.dumps({
        "method": "dau", "metrics": metrics, "run_seconds": 10.0,
        "retrain": {"mia/confidence": 20.0}, "original": {"avg_disparity": original}}))
    return folder


def test_only_the_hyperparameters_that_differ_are_shown(tmp_path):
    a = _write_run(tmp_path / "a", 3, {"lr": 0.01, "alpha": 0.9}, 3.0)
    b = _write_run(tmp_path / "b", 3, {"lr": 0.02, "alpha": 0.9}, 4.5)
    table = compare_runs([a, b])
    assert list(table["run"]) == ["a", "b"]
    assert "lr" in table and "alpha" not in table
    assert table["change vs original %"].tolist() == pytest.approx([-50.0, -25.0])
    assert "alpha" in compare_runs([a, b], all_params=True)


def test_a_run_without_a_newer_hyperparameter_reads_as_its_default(tmp_path):
    default = next(h.default for h in METHODS["dau"].hyperparams if h.name == "pretrain_lr")
    old = _write_run(tmp_path / "old", 3, {"lr": 0.01}, 3.0)
    new = _write_run(tmp_path / "new", 3, {"lr": 0.01, "pretrain_lr": default + 1.0}, 3.0)
    table = compare_runs([old, new])
    assert table["pretrain_lr"].tolist() == [default, default + 1.0]
    assert "lr" not in table


def test_markdown_output_and_bad_folders(tmp_path, capsys):
    run = _write_run(tmp_path / "a", 0, {"lr": 0.01}, 3.0)
    assert main([str(run), "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("| run | method | seed |")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(UserError, match="not a finished run folder"):
        compare_runs([tmp_path / "half"])
    (tmp_path / "half" / "metrics.json").write_text("{not json")
    with pytest.raises(UserError, match="corrupted JSON"):
        compare_runs([tmp_path / "half"])
    (tmp_path / "half" / "metrics.json").write_text("[]")
    with pytest.raises(UserError, match="must each hold a JSON object"):
        compare_runs([tmp_path / "half"])
