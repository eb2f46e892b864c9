"""The paper-protocol benchmark on digits: it writes its table, and a rerun reuses finished runs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
import yaml

from study.core.errors import UserError
from tests.conftest import FAST_EPOCHS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def protocol():
    spec = importlib.util.spec_from_file_location("paper_protocol", ROOT / "bench" / "paper_protocol.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(cache_dir, out, methods, *extra, seeds=(0,)):
    return ["--preset", "digits", "--forget", "random:10", "--sparsity", "0", "--seeds", *map(str, seeds),
            "--methods", *methods, "--epochs", str(FAST_EPOCHS), "--cache-dir", str(cache_dir), "--threads", "2",
            "--out", str(out), *extra]


def test_protocol_writes_its_table_and_reuses_finished_runs(protocol, cache_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "protocol.md"
    assert protocol.main(_args(cache_dir, out, ["ga"])) == 0
    runs = pd.read_csv(tmp_path / "protocol.runs.csv")
    assert sorted(runs["method"]) == ["ga", "original", "retrain"]
    table = out.read_text()
    assert "Avg. Disparity" in table and "GA" in table and "time / Retrain" in table

    import study.engine.seed_runs as seed_runs

    computed = []
    real_run_method = seed_runs.run_method
    monkeypatch.setattr(seed_runs, "run_method",
                        lambda prepared, method, **kw: computed.append(method.name)
                        or real_run_method(prepared, method, **kw))
    capsys.readouterr()
    # a rerun of the same cell only computes what the run log lacks
    assert protocol.main(_args(cache_dir, out, ["ga", "ft"])) == 0
    assert computed == ["ft"]
    assert "ga on seed 0: kept from" in capsys.readouterr().out
    runs = pd.read_csv(tmp_path / "protocol.runs.csv")
    assert sorted(runs["method"]) == ["ft", "ga", "original", "retrain"]
    assert "FT" in out.read_text() and "GA" in out.read_text()

    computed.clear()
    assert protocol.main(_args(cache_dir, out, ["ga", "ft"])) == 0
    assert computed == [] and capsys.readouterr().out.count("kept from") == 4

    # the seed is part of a run's identity: seed 0's runs do not stand in for seed 1's
    run_log = protocol.RunLog(tmp_path / "protocol.runs.csv")
    seed0 = {"preset": runs["preset"][0], "forget": "random:10", "method": "ga", "sparsity": 0.0, "seed": 0,
             "params": runs.loc[runs["method"] == "ga", "params"].iloc[0]}
    assert run_log.get(seed0) is not None and run_log.get({**seed0, "seed": 1}) is None
    # with every seed's runs in the log, the table reports both seeds without training anything
    pd.concat([runs, runs.assign(seed=1)]).to_csv(tmp_path / "protocol.runs.csv", index=False)
    assert protocol.main(_args(cache_dir, out, ["ga", "ft"], seeds=(0, 1))) == 0
    assert computed == []
    assert "(mean ± std over seeds)" in out.read_text() and "seeds 0, 1" in out.read_text()

    # another configuration of the same method is a different run, not a reused one
    config = tmp_path / "ga.yaml"
    config.write_text(yaml.safe_dump({"method": "ga", "params": {"lr": 1e-5}}))
    assert protocol.main(_args(cache_dir, out, ["ga"], "--config", f"ga={config}")) == 0
    assert computed == ["ga"]


@pytest.mark.parametrize("content", ["method,seed\nga,0\n", "\x00\x01garbage\n\"unterminated"])
def test_a_broken_run_log_is_refused_before_any_training(protocol, cache_dir, tmp_path, content):
    runs = tmp_path / "runs.csv"
    runs.write_text(content)
    with pytest.raises(UserError, match="run log"):
        protocol.main(_args(cache_dir, tmp_path / "p.md", ["ga"], "--runs", str(runs)))
    assert not (tmp_path / "p.md").exists()


def test_a_config_can_target_one_forget_scheme(protocol, tmp_path):
    general, classwise = tmp_path / "ga.yaml", tmp_path / "ga-class.yaml"
    general.write_text(yaml.safe_dump({"method": "ga", "params": {"lr": 1e-5}}))
    classwise.write_text(yaml.safe_dump({"method": "ga", "params": {"lr": 1e-3}}))
    configs = protocol.parse_configs([f"ga={general}", f"ga@class:0={classwise}"], ["random:10", "class:0"])
    assert configs["random:10"]["ga"]["params"]["lr"] == 1e-5
    assert configs["class:0"]["ga"]["params"]["lr"] == 1e-3
    # the order on the command line does not matter: the scheme's own config wins
    configs = protocol.parse_configs([f"ga@class:0={classwise}", f"ga={general}"], ["random:10", "class:0"])
    assert configs["class:0"]["ga"]["params"]["lr"] == 1e-3


@pytest.mark.parametrize("item, message", [
    ("ga", "expected METHOD=FILE"),
    ("ga@class:3={file}", "not one of --forget"),
    ("ga=missing.yaml", "not found"),
    ("ga={broken}", "not valid YAML"),
    ("ga={scalar}", "must hold a mapping"),
])
def test_a_bad_config_item_is_refused_before_any_training(protocol, tmp_path, item, message):
    (tmp_path / "ga.yaml").write_text(yaml.safe_dump({"method": "ga"}))
    (tmp_path / "broken.yaml").write_text("method: [ga\n")
    (tmp_path / "scalar.yaml").write_text("ga\n")
    item = item.format(file=tmp_path / "ga.yaml", broken=tmp_path / "broken.yaml", scalar=tmp_path / "scalar.yaml")
    with pytest.raises(UserError, match=message):
        protocol.main(["--forget", "random:10", "class:0", "--config", item, "--cache-dir", str(tmp_path / "c"),
                       "--out", str(tmp_path / "p.md")])
    assert not (tmp_path / "p.md").exists()
