"""Trials that run their configuration on several seeds and report the mean (`--average-seeds`).

The Trainable is driven directly (no Ray cluster): each seed's share of an averaged trial must
be exactly the single-seed trial of that seed, the mean must be their mean, and a checkpoint
must bring every seed's method back.
"""
import statistics

import pytest
import torch

from study.core.errors import UserError
from study.engine.trainable import UnlearningTrainable
from study.evaluation.seeds import mean_over_seeds
from study.experiment.config import experiment_from_preset
from tests.conftest import FAST_EPOCHS

HEADLINE = ("avg_disparity", "UA", "MIA-Efficacy", "RA", "TA")


def _config(cache_dir, seed=0, average_seeds=None):
    config = {"experiment": experiment_from_preset("digits", epochs=FAST_EPOCHS, seed=seed).as_dict(),
              "method": "ft", "params": {"epochs": 2, "lr": 0.05}, "cache_dir": str(cache_dir), "threads": 1,
              "gpus": 0}
    if average_seeds:
        config["average_seeds"] = average_seeds
    return config


@pytest.fixture(scope="module")
def averaged_and_single(cache_dir, digits_random):
    averaged = UnlearningTrainable(config=_config(cache_dir, average_seeds=[0, 1]))
    singles = {seed: UnlearningTrainable(config=_config(cache_dir, seed=seed)) for seed in (0, 1)}
    first = averaged.train()
    single_first = {seed: trainable.train() for seed, trainable in singles.items()}
    return averaged, singles, first, single_first


def test_each_seed_of_an_averaged_trial_is_that_seeds_own_trial(averaged_and_single):
    _, _, result, singles = averaged_and_single
    for seed, single in singles.items():
        for name in HEADLINE:
            assert result[f"seed{seed}/{name}"] == pytest.approx(single[name], abs=1e-6)
    for name in HEADLINE:
        assert result[name] == pytest.approx(statistics.fmean(single[name] for single in singles.values()))
    assert result["seed_std/avg_disparity"] == pytest.approx(
        statistics.stdev(single["avg_disparity"] for single in singles.values()))
    assert singles[0]["avg_disparity"] != singles[1]["avg_disparity"]  # two splits, not one run twice


def test_each_seed_of_an_averaged_dau_trial_draws_its_own_random_numbers(cache_dir, digits_random):
    """DAU's attacker uses dropout, which draws from torch's global generator: a seed stepped
    after another seed's setup or epoch must still see the numbers its own trial would."""
    params = {"epochs": 2, "attacker_pretrain_iters": 5, "noise_copies": 2, "lr": 0.01}

    def dau_config(**kwargs):
        return {**_config(cache_dir, **kwargs), "method": "dau", "params": params}

    averaged = UnlearningTrainable(config=dau_config(average_seeds=[0, 1]))
    singles = {seed: UnlearningTrainable(config=dau_config(seed=seed)) for seed in (0, 1)}
    for _ in range(2):
        result = averaged.train()
        single = {seed: trainable.train() for seed, trainable in singles.items()}
        for seed in (0, 1):
            for name in ("UA", "RA", "TA", "MIA-Efficacy"):
                assert result[f"seed{seed}/{name}"] == single[seed][name], (seed, name)
            assert result[f"seed{seed}/avg_disparity"] == pytest.approx(single[seed]["avg_disparity"], abs=1e-9)


def test_an_averaged_trial_resumes_every_seed_from_its_checkpoint(averaged_and_single, cache_dir, tmp_path):
    averaged, _, _, _ = averaged_and_single
    averaged.save_checkpoint(str(tmp_path))
    restored = UnlearningTrainable(config=_config(cache_dir, average_seeds=[0, 1]))
    restored.load_checkpoint(str(tmp_path))
    assert restored.epochs_done == 1
    for before, after in zip(averaged.seed_runs, restored.seed_runs):
        assert after.run_seconds == before.run_seconds
        for name, tensor in before.method.model.state_dict().items():
            assert torch.equal(tensor, after.method.model.state_dict()[name])
    final = restored.train()
    assert final["epoch"] == 2 and final["done"]
    other = UnlearningTrainable(config=_config(cache_dir, average_seeds=[1, 0]))
    with pytest.raises(UserError, match="holds seeds"):
        other.load_checkpoint(str(tmp_path))


def test_one_seed_reports_exactly_its_own_results():
    result = {"avg_disparity": 1.5, "UA": 2.0, "note": "kept"}
    assert mean_over_seeds([result], [3]) == result


def test_the_ranking_shows_how_much_seed_averaged_trials_vary():
    import pandas as pd

    from analysis.rank import ranking

    rows = []
    for trial_id, mean, spread in (("b", 2.0, 0.5), ("a", 1.0, 1.5)):
        rows.append({"trial_id": trial_id, "method": "dau", "status": "TERMINATED", "objective": "avg_disparity",
                     "avg_disparity": mean, "seed_std/avg_disparity": spread, "UA": 1.0, "MIA-Efficacy": 2.0,
                     "RA": 99.0, "TA": 90.0, "run_seconds": 10.0, "retrain_seconds": 20.0, "params.lr": mean,
                     **{f"retrain.{m}": 0.0 for m in HEADLINE}})
    table = ranking(pd.DataFrame(rows))
    assert list(table["trial_id"][:2]) == ["a", "b"]
    assert list(table["avg_disparity std over seeds"][:2]) == [1.5, 0.5]
    assert list(table.columns).index("avg_disparity std over seeds") == list(table.columns).index("avg_disparity") + 1


def test_disparity_measured_afterwards_matches_what_the_trials_reported(averaged_and_single, cache_dir, tmp_path):
    """analysis.selection --compute-disparity, for a one-seed trial and an averaged one."""
    import json

    import pandas as pd

    from analysis.selection import SCORE, compute_disparity

    averaged, singles, first, single_first = averaged_and_single
    rows = []
    for trial_id, trainable, reported in (("one", singles[0], single_first[0]), ("avg", averaged, first)):
        trial_dir = tmp_path / trial_id
        (trial_dir / "checkpoint_000001").mkdir(parents=True)
        trainable.save_checkpoint(str(trial_dir / "checkpoint_000001"))
        (trial_dir / "params.json").write_text(json.dumps(trainable.config))
        rows.append({"trial_id": trial_id, "status": "TERMINATED", "trial_dir": str(trial_dir), SCORE: 1.0,
                     "expected": reported["avg_disparity"]})
    measured = compute_disparity(pd.DataFrame(rows), str(cache_dir))
    for _, row in measured.iterrows():
        assert row["avg_disparity"] == pytest.approx(row["expected"], abs=1e-6), row["trial_id"]
