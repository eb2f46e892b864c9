"""Defaults first, and the multi-objective (Pareto) search, on digits."""
import re

import optuna
import pytest
import yaml

from study.engine.spaces import load_space
from study.methods import method_class
from study.records.pareto import load_optuna_study, order_front
from tests.cli import run_in_process
from tests.studies import TINY_SPACE, tune_cli


@pytest.fixture(scope="module")
def pareto_study(tmp_path_factory, cache_dir, digits_random):
    root = tmp_path_factory.mktemp("pareto")
    result = tune_cli("--space", "baselines", "--method", "ft", "--num-samples", "3", "--objective", "pareto",
                      "--storage", str(root), "--name", "front", cache=cache_dir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return root / "front" / "ft", result.stdout  # a multi-method space keeps each method's study in a folder of its own


def test_a_pareto_study_prints_its_front_and_keeps_a_study_the_dashboard_opens(pareto_study):
    study_dir, stdout = pareto_study
    assert "Pareto front:" in stdout and "non-dominated trial(s)" in stdout
    storage = re.search(r"optuna-dashboard (sqlite:///\S+)", stdout).group(1)
    study = optuna.load_study(study_name="ft", storage=storage)  # what optuna-dashboard opens: a study per method
    assert len(study.trials) == 3 and len(study.directions) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert storage.endswith("front/optuna.db")  # one file for the whole run
    for trial in study.trials:  # each trial carries its metrics and Ray trial id for the dashboard and the front
        assert {"UA", "RA", "TA", "MIA-Efficacy", "avg_disparity", "ray_trial_id"} <= set(trial.user_attrs)
    assert 1 <= len(study.best_trials) <= 3


def test_the_first_trial_of_a_study_is_the_methods_documented_defaults(pareto_study, finished_study):
    study_dir, _ = pareto_study
    first = min(load_optuna_study(study_dir).trials, key=lambda t: t.number)
    defaults = method_class("ft").documented_defaults("random")
    assert first.params == {f"params/{k}": defaults[k] for k in ("lr", "epochs")}
    _, dau_study, _ = finished_study  # a single-objective DAU study: its defaults for the searched keys
    first = min(load_optuna_study(dau_study).trials, key=lambda t: t.number)
    assert first.params == {"params/lr": 0.01, "params/alpha": 0.9}  # DAU's random-forgetting defaults


def test_export_picks_a_point_of_the_front_by_a_stated_rule(pareto_study, tmp_path):
    study_dir, _ = pareto_study
    for rule in ("balanced", "time"):
        result = run_in_process("study.export", str(study_dir), "--pick", rule, "--out", str(tmp_path / f"{rule}.yaml"))
        assert result.returncode == 0, result.stderr
        assert yaml.safe_load((tmp_path / f"{rule}.yaml").read_text())["source"]["objective"] == f"pareto:{rule}"


def test_the_pick_rules_by_hand():
    import pandas as pd

    front = pd.DataFrame({"trial_id": ["a", "b", "c"], "x": [0.0, 5.0, 10.0], "y": [10.0, 4.0, 0.0]})
    assert list(order_front(front, ["x", "y"])["trial_id"]) == ["b", "a", "c"]  # 0.5 + 0.4 is the smallest sum


def test_asha_and_a_pareto_search_are_refused_in_one_line(tmp_path):
    result = run_in_process("study.tune", "--space", "baselines", "--method", "ft", "--objective", "pareto",
                            "--scheduler", "asha", "--storage", str(tmp_path))
    assert result.returncode != 0 and "--scheduler fifo" in result.stderr.strip().splitlines()[-1]


def test_a_space_that_cannot_give_the_defaults_is_refused(tmp_path):
    space = {**TINY_SPACE, "search": {"lr": {"loguniform": [0.05, 0.3]}}}  # DAU's default 0.01 lies outside
    path = tmp_path / "narrow.yaml"
    path.write_text(yaml.safe_dump(space))
    result = run_in_process("study.tune", "--space", str(path), "--storage", str(tmp_path))
    assert result.returncode != 0 and "documented default lr=0.01" in result.stderr.strip().splitlines()[-1]


def test_every_kept_space_contains_its_methods_defaults():
    from study.engine.spaces import available_spaces

    for name in available_spaces():
        space = load_space(name)
        scheme = space.experiment.get("forget", "random:10").split(":")[0]
        for section in space.methods:
            for sparsity in (0.0, 0.95):  # DAU's defaults change on a pruned original
                section.defaults(scheme, None, sparsity)  # raises when the search cannot give them


def test_asha_never_stops_the_defaults_trial_early():
    from ray.tune.schedulers import TrialScheduler

    from study.engine.asha import DefaultsFirstASHA, matches_point

    point = {"params/lr": 0.01, "params/epochs": 10}
    assert matches_point({"params": {"lr": 0.01, "epochs": 10, "other": 1}}, point)
    assert not matches_point({"params": {"lr": 0.02, "epochs": 10}}, point)

    class Trial:
        def __init__(self, trial_id, lr):
            self.trial_id, self.config = trial_id, {"params": {"lr": lr, "epochs": 10}}

    scheduler = DefaultsFirstASHA(point, time_attr="epoch", metric="avg_disparity", mode="min", max_t=16,
                                  grace_period=1, reduction_factor=2)
    good, defaults, bad = Trial("good", 0.5), Trial("defaults", 0.01), Trial("bad", 0.3)
    for trial in (good, defaults, bad):
        scheduler.on_trial_add(None, trial)
    assert scheduler.on_trial_result(None, good, {"epoch": 1, "avg_disparity": 1.0}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, bad, {"epoch": 1, "avg_disparity": 9.0}) == TrialScheduler.STOP
    assert scheduler.on_trial_result(None, defaults, {"epoch": 1, "avg_disparity": 9.0}) == TrialScheduler.CONTINUE
