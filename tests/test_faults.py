"""Faults during a study: a trial whose loss overflows is marked failed with its error, the
others finish, and the analysis commands list the failed trial apart instead of dropping it.
(Driver kill + resume is in test_tune.py; a crash while caching an artifact is in test_cache.py.)"""
from study.records.trials import load_study
from tests.cli import run_in_process
from tests.studies import TINY_SPACE, tune_cli, write_space


def test_a_diverging_trial_fails_visibly_and_the_study_goes_on(tmp_path, digits_random, cache_dir):
    # gamma = 3e38 makes the Barlow Twins term overflow float32 on the first step: a NaN/inf loss.
    space = write_space(tmp_path, search={}, fixed={**TINY_SPACE["fixed"], "lr": 0.005, "alpha": 0.5},
                        grid={"gamma": [0.001, 3.0e38]}, study={"num_samples": 1, "max_concurrent": 2})
    storage = tmp_path / "studies"
    result = tune_cli("--space", str(space), "--storage", str(storage), "--name", "faulty", cache=cache_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 failed" in result.stdout and "loss became" in result.stdout
    frame = load_study(storage / "faulty")
    statuses = dict(zip(frame["params.gamma"], frame["status"]))
    assert statuses == {0.001: "TERMINATED", 3.0e38: "ERROR"}
    error = frame.loc[frame["status"] == "ERROR", "error"].iloc[0]
    assert "loss became" in error
    ranked = run_in_process("analysis.rank", str(storage / "faulty"))
    assert ranked.returncode == 0 and "1 trial(s) without a result" in ranked.stderr and "ERROR" in ranked.stderr
