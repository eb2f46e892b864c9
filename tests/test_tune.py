"""Small real Ray Tune studies on digits: ranking, TensorBoard, export round trip, kill + resume."""
import glob
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from study.core.errors import UserError
from study.engine.spaces import MethodSpace, load_space
from study.engine.study import expected_trials, search_options, trial_resources, unfinished_trials
from tests.cli import run_in_process
from tests.conftest import FAST_EPOCHS
from tests.studies import write_space


def test_study_prints_the_ranking_and_writes_tensorboard(finished_study):
    _, study_dir, stdout = finished_study
    assert "avg_disparity" in stdout and "Retrain" in stdout and "3 trials" in stdout
    assert "All 3 finished trials by avg_disparity (lower is better), scored on the selection set" in stdout
    events = glob.glob(str(study_dir / "trial_*" / "events.out.tfevents*"))
    assert len(events) == 3
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(events[0])
    accumulator.Reload()
    assert "ray/tune/avg_disparity" in accumulator.Tags()["scalars"]
    assert json.loads((study_dir / "study.json").read_text())["method"] == "dau"


def test_a_finished_study_leaves_no_process(finished_study):
    root, _, _ = finished_study
    assert json.loads((root / "survivors.json").read_text()) == {}


def test_study_json_records_the_sampler_and_the_versions(finished_study):
    _, study_dir, _ = finished_study
    from study.engine.study import TPE_SETTINGS

    meta = json.loads((study_dir / "study.json").read_text())
    assert meta["sampler"] == {"name": "TPESampler", "seed": 0, **TPE_SETTINGS}
    assert {"python", "torch", "ray", "optuna"} <= set(meta["versions"])


def test_two_identical_searches_sample_the_same_trials():
    """The sampler's settings are stated, not the installed Optuna's defaults: the same seed gives the
    same trials, past TPE's random start-up ones, with several trials in flight (constant liar)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from study.engine.study import TPE_SETTINGS, tpe_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
             "alpha": optuna.distributions.FloatDistribution(0.0, 1.0)}

    def proposals(seed: int) -> list[dict]:
        search = OptunaSearch(space=space, metric="loss", mode="min", sampler=tpe_sampler(seed))
        seen = []
        for batch in range(7):  # two trials in flight at a time, 14 in all
            ids = [f"t{batch}-{k}" for k in range(2)]
            configs = [search.suggest(trial_id) for trial_id in ids]
            for trial_id, config in zip(ids, configs):
                search.on_trial_complete(trial_id, {"loss": (math.log10(config["lr"]) + 2) ** 2 + config["alpha"]})
            seen += configs
        return seen

    first, second = proposals(3), proposals(3)
    assert len(first) == 14 > TPE_SETTINGS["n_startup_trials"] and first == second
    assert proposals(4) != first


def test_export_refuses_a_folder_of_several_studies(finished_study, tmp_path):
    root, study_dir, _ = finished_study
    parent = tmp_path / "studies"
    parent.mkdir()
    for name in ("a", "b"):
        (parent / name).symlink_to(study_dir, target_is_directory=True)
    result = run_in_process("study.export", str(parent), "--out", str(tmp_path / "best.yaml"))
    assert result.returncode == 2 and "holds 2 studies (a, b)" in result.stderr, result.stderr
    assert not (tmp_path / "best.yaml").exists()


def test_ranking_matches_the_trials_own_results(finished_study):
    _, study_dir, _ = finished_study
    from study.records.trials import finished, load_study

    frame = finished(load_study(study_dir))
    for _, row in frame.iterrows():
        lines = (Path(row["trial_dir"]) / "result.json").read_text().strip().splitlines()
        last = json.loads(lines[-1])
        assert row["avg_disparity"] == pytest.approx(last["avg_disparity"])
        assert row["UA"] == pytest.approx(last["UA"])
    assert list(frame["avg_disparity"]) == sorted(frame["avg_disparity"])


def test_a_study_accounts_for_its_time(finished_study):
    """The driver records Ray's start-up; each trial, its set-up, evaluation and checkpoints, all
    inside what Ray timed for it, so bench/tune_overhead.py can split a study's wall time."""
    _, study_dir, _ = finished_study
    from study.records.trials import load_study

    meta = json.loads((study_dir / "study.json").read_text())
    assert 0 < meta["ray_start_seconds"] < meta["wall_seconds"] and meta["prebuild_seconds"] >= 0
    frame = load_study(study_dir)
    assert (frame["timing/setup_s"] > 0).all() and (frame["timing/eval_s"] > 0).all()
    # a checkpoint follows each epoch's result, so only trials that ran a second epoch report one
    assert (frame["timing/checkpoint_s"] >= 0).all() and (frame["timing/checkpoint_s"] > 0).any()
    assert (frame["timing/epochs_s"] <= frame["run_seconds"] + 1e-6).all()
    inside_steps = frame["timing/epochs_s"] + frame["timing/eval_s"]
    assert (inside_steps <= frame["time_total_s"] + 1e-6).all()
    assert (frame["time_total_s"] + frame["timing/setup_s"] <= meta["wall_seconds"] * len(frame)).all()


def test_export_reruns_outside_ray_to_the_same_metrics(finished_study, cache_dir):
    root, study_dir, _ = finished_study
    best = root / "best.yaml"
    exported = run_in_process("study.export", str(study_dir), "--top", "1", "--out", str(best))
    assert exported.returncode == 0, exported.stderr
    assert "scored on the selection set (study.run --config scores the test set)" in exported.stdout
    config = yaml.safe_load(best.read_text())
    assert config["source"]["threads"] == 1  # the trial's threads, which the re-run takes by default
    rerun = subprocess.run([sys.executable, "-m", "study.run", "--config", str(best), "--cache-dir", str(cache_dir),
                            "--out", str(root / "rerun")], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    metrics = json.loads((root / "rerun" / "metrics.json").read_text())["metrics"]
    # one of the 180 test images may flip, within float summation order: on an Intel Xeon the Ray worker and
    # the re-run gave TA 97.78 and 98.33 (2026-12-04); that one image is the bound for every metric (on the
    # 108-image forget set a single flip of UA already exceeds it). TA and MIA-Efficacy are not compared: the
    # trial scored them on the selection set, the re-run on the test set.
    one_example = 100 / 180 + 1e-3
    for key in ("UA", "RA"):
        assert abs(metrics[key] - _trial_metric(study_dir, config, key)) <= one_example


def _trial_metric(study_dir, config, key):
    trial_dir = study_dir / f"trial_{config['source']['trial_id']}"
    return json.loads((trial_dir / "result.json").read_text().strip().splitlines()[-1])[key]


def _terminated_trials(study_dir: Path) -> dict[str, float]:
    from study.records.trials import load_study

    try:
        frame = load_study(study_dir)
    except UserError:
        return {}
    done = frame[frame["status"] == "TERMINATED"]
    return dict(zip(done["trial_id"], done["avg_disparity"]))


def test_killed_study_resumes_and_keeps_finished_trials(tmp_path, digits_random, cache_dir):
    # FT trials: the resume path is the same for every method, and FT's trials cost a fraction of DAU's.
    # Each runs 60 short epochs (evaluated once, at the end, under FIFO), so that a trial lasts a few
    # seconds even on a fast machine and the kill lands mid-study (with 2 epochs a fast machine finished
    # all 8 trials before the kill, with 20 an Intel Xeon all 4): one at a time, 4 trials need at least
    # 3 more trial lengths after the first ends, against the 3-5 s the kill waits.
    trials = 4
    space = write_space(tmp_path, method="ft", fixed={"epochs": 60}, search={"lr": {"loguniform": [1e-3, 1e-1]}},
                        study={"num_samples": trials, "max_concurrent": 1})
    storage, name = tmp_path / "studies", "killed"
    command = [sys.executable, "-m", "study.tune", "--space", str(space), "--storage", str(storage), "--name", name,
               "--cache-dir", str(cache_dir), "--epochs", str(FAST_EPOCHS), "--quiet", "--scheduler", "fifo"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    study_dir = storage / name
    deadline = time.time() + 300
    try:
        while time.time() < deadline and len(_terminated_trials(study_dir)) < 1:
            time.sleep(2)
        time.sleep(3)  # let the driver save its experiment state once more
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = _terminated_trials(study_dir)
    assert 1 <= len(before) < trials, "the kill must land mid-study"
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = _terminated_trials(study_dir)
    assert len(after) == trials
    for trial_id, value in before.items():
        assert after[trial_id] == pytest.approx(value)


def test_an_interrupted_study_is_told_apart_from_a_finished_one(finished_study):
    from study.records.trials import load_study

    _, study_dir, _ = finished_study
    assert json.loads((study_dir / "study.json").read_text())["status"] == "finished"
    trials = load_study(study_dir)
    assert unfinished_trials(trials, 3) == 0
    assert unfinished_trials(trials, 5) == 2  # e.g. Ctrl+C after 3 of 5 trials
    grid = MethodSpace(method="dau", grid={"gamma": [0.0, 1e-3], "seed": [0, 1, 2]})
    assert expected_trials(grid, 1) == 6 and expected_trials(MethodSpace(method="dau"), 16) == 16


def test_fractional_gpu_request_reaches_ray():
    assert trial_resources(1, 0.25) == {"cpu": 1, "gpu": 0.25}
    from ray import tune

    from study.engine.trainable import UnlearningTrainable

    wrapped = tune.with_resources(UnlearningTrainable, trial_resources(1, 0.25))
    factory = wrapped.default_resource_request({})
    assert factory.required_resources.get("GPU") == 0.25


def test_every_shipped_space_loads():
    from study.engine.spaces import available_spaces

    assert {"random", "classwise", "sparse", "ablation", "baselines"} <= set(available_spaces())
    for name in available_spaces():
        space = load_space(name)
        assert space.methods and space.experiment["seed"] == 0


@pytest.mark.parametrize("change,needle", [
    ({"colour": "red"}, "unknown key(s) colour"),
    ({"search": {"lr": {"loguniform": [0.1, 0.01]}}}, "invalid range"),
    ({"search": {"lr": {"loguniform": [0, 0.01]}}}, "loguniform needs low > 0"),
    ({"search": {"alpha": {"uniform": [-1.0, 1.0]}}}, "invalid range"),
    ({"search": {"learning_rate": {"uniform": [0.1, 1.0]}}}, "unknown key search.learning_rate"),
    ({"search": {"lr": {"gaussian": [0, 1]}}}, "unknown distribution"),
    ({"experiment": {"preset": "digits", "colour": 1}}, "experiment.colour"),
    ({"method": "magic"}, "unknown method"),
])
def test_bad_space_files(tmp_path, change, needle):
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_space(str(write_space(tmp_path, **change)))


@pytest.mark.parametrize("args,needle", [
    (["--space", "nonexistent"], "unknown search space"),
    (["--space", "classwise", "--gpus-per-trial", "-1"], "--gpus-per-trial must be 0 or positive"),
    (["--space", "classwise", "--gpus-per-trial", "0.25"], "no CUDA GPU"),
    (["--space", "classwise", "--address", "127.0.0.1:1"], "cannot reach a Ray cluster"),
    (["--space", "classwise", "--resume"], "--resume needs --name"),
    (["--space", "classwise", "--resume", "--name", "never-ran"], "no study to resume"),
    (["--space", "classwise", "--num-samples", "0"], "--num-samples"),
    (["--space", "classwise", "--average-seeds", "0", "1", "0"], "lists a seed twice"),
    (["--space", "classwise", "--average-seeds", "-1"], "seeds of 0 or more"),
    (["--space", "ablation", "--average-seeds", "0", "1"], "already runs each of its seeds as a trial"),
])
def test_bad_tune_input(tmp_path, args, needle):
    result = run_in_process("study.tune", *args, "--storage", str(tmp_path / "s"), "--cache-dir", str(tmp_path / "c"))
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.returncode == 2 and lines and lines[-1].startswith("error: ") and needle in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


def test_analysis_rank_cli(finished_study, tmp_path):
    _, study_dir, _ = finished_study
    for flag in ([], ["--csv"], ["--markdown"], ["--latex"]):
        result = run_in_process("analysis.rank", str(study_dir), *flag)
        assert result.returncode == 0, result.stderr
        assert "Retrain" in result.stdout
    csv = run_in_process("analysis.rank", str(study_dir), "--csv").stdout
    import io

    import pandas as pd

    table = pd.read_csv(io.StringIO(csv))
    ranked = table[table["trial_id"] != "Retrain"]
    for _, row in ranked.iterrows():
        last = json.loads((study_dir / f"trial_{row['trial_id']}" / "result.json").read_text().strip().splitlines()[-1])
        assert row["avg_disparity"] == pytest.approx(last["avg_disparity"])
    not_a_study = run_in_process("analysis.rank", str(tmp_path))
    assert not_a_study.returncode == 2 and "not a Ray Tune study" in not_a_study.stderr


def test_a_trial_stopped_early_is_exported_as_the_run_that_was_ranked():
    from study.records.trials import as_run

    config = {"experiment": {}, "method": "dau", "params": {"epochs": 3, "lr": 0.1}}
    shortened, why = as_run(config, 1)
    assert shortened["params"] == {"epochs": 1, "lr": 0.1} and why == "after epoch 1 of 3; exported with epochs 1"
    assert config["params"]["epochs"] == 3  # the trial's own config is left alone
    assert as_run(config, 3) == (config, None)
    assert as_run(config, float("nan")) == (config, None)
    default_epochs, why = as_run({"experiment": {}, "method": "dau", "params": {}}, 1)
    assert default_epochs["params"]["epochs"] == 1 and why.endswith("epochs 1")  # DAU's default is 3 epochs
    assert as_run({"experiment": {}, "method": "original", "params": {}}, 1)[1] is None


def test_attacker_variants_cover_every_pretrained_attacker_a_space_can_load():
    from study.methods.dau import DAU
    from study.methods.dau.store import attacker_variants

    space = MethodSpace(method="dau", fixed={"noise_copies": 2},
                        search={"attacker_pretrain_iters": {"choice": [0, 250, 1000]},
                                "use_softmax": {"choice": [False, True]}, "lr": {"loguniform": [1e-3, 1e-1]}})
    options = search_options(space)
    assert options["lr"] is None and options["noise_copies"] == [2]
    variants = attacker_variants(DAU, options, seed=0, retain_size=1000, log=lambda message: None)
    assert sorted((settings.use_softmax, lengths) for settings, lengths in variants) == [
        (False, [0, 250, 1000]), (True, [0, 250, 1000])]
    assert all(settings.noise_copies == 2 for settings, _ in variants)
    # unset, the length is the reference's rule: 10 passes over ceil(1000 / 256) = 4 retain batches
    default = attacker_variants(DAU, search_options(MethodSpace(method="dau")), 0, 1000, lambda message: None)
    assert [lengths for _, lengths in default] == [[40]]
    ranged = MethodSpace(method="dau", search={"pretrain_lr": {"loguniform": [1e-4, 1e-2]}})
    assert attacker_variants(DAU, search_options(ranged), 0, 1000, lambda m: None) == []  # each trial builds its own
