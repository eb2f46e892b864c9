"""A trial evaluates only the epochs its scheduler reads, and evaluation leaves the run alone.

The Trainable is driven directly (no Ray cluster). Skipping the evaluations between ASHA's rungs
must not change what the trial computes: its results at the rungs and at its last epoch equal
those of the same trial evaluated after every epoch.
"""
import pytest
import torch

from study.core.inference import predict_logits
from study.engine.study import eval_milestones
from study.engine.trainable import UnlearningTrainable
from study.experiment.config import experiment_from_preset
from tests.conftest import FAST_EPOCHS, TEST_THREADS

HEADLINE = ("avg_disparity", "UA", "MIA-Efficacy", "RA", "TA")


def _config(cache_dir, milestones):
    return {"experiment": experiment_from_preset("digits", epochs=FAST_EPOCHS).as_dict(), "method": "ft",
            "params": {"epochs": 4, "lr": 0.05}, "cache_dir": str(cache_dir), "threads": 1, "gpus": 0,
            "eval_milestones": milestones}


def _run(trainable) -> list[dict]:
    results = []
    while not results or not results[-1]["done"]:
        results.append(trainable.train())
    return results


def test_a_trial_reports_at_the_rungs_and_its_last_epoch_with_the_every_epoch_numbers(cache_dir, digits_random):
    every = {r["epoch"]: r for r in _run(UnlearningTrainable(config=_config(cache_dir, None)))}
    rungs = _run(UnlearningTrainable(config=_config(cache_dir, [1, 2, 8])))
    last_only = _run(UnlearningTrainable(config=_config(cache_dir, [])))
    assert sorted(every) == [1, 2, 3, 4]
    assert [r["epoch"] for r in rungs] == [1, 2, 4]  # epoch 3 is skipped: no rung there
    assert [r["epoch"] for r in last_only] == [4]
    for result in (*rungs, *last_only):
        for name in HEADLINE:
            assert result[name] == pytest.approx(every[result["epoch"]][name], abs=1e-9), (result["epoch"], name)
    assert last_only[-1]["run_seconds"] > 0 and last_only[-1]["timing/eval_s"] < rungs[-1]["timing/eval_s"]


def test_the_milestones_follow_the_scheduler():
    assert eval_milestones("asha", False) == [1, 2, 4, 8, 16, 32, 64, 128]  # Ray's ASHA rungs
    assert eval_milestones("fifo", False) == []
    assert eval_milestones("asha", True) is None


def test_predictions_match_the_model_and_leave_it_as_it_was(digits_random):
    model = digits_random.fresh_original().train()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    x = digits_random.data.test_x[:300]
    logits = predict_logits(model, x)
    assert model.training  # predictions run on a copy: the caller's model keeps its mode, layout and weights
    model.eval()
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(logits, expected, atol=1e-5)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]) and tensor.is_contiguous(), name


def test_retrain_records_the_threads_it_was_timed_with(digits_random):
    assert digits_random.retrain_threads == TEST_THREADS  # the fixtures train with the suite's thread count
