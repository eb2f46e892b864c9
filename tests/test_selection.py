"""The search never reads the test set: trials are scored on a selection set held out from everything.

The selection set is the training pool's last `select_size` images: never trained on (original,
Retrain), never given to a method, apart from validation and from the test set the tables report.
"""
import dataclasses

import numpy as np
import pytest

from study.core.data import load_dataset
from study.core.errors import UserError
from study.core.inference import predict_logits
from study.core.splits import make_splits, parse_forget_spec
from study.engine.trainable import UnlearningTrainable
from study.experiment.config import PRESETS, experiment_from_preset
from tests.conftest import FAST_EPOCHS

TRAIN_Y = np.repeat(np.arange(10), 300)
TEST_Y = np.repeat(np.arange(10), 50)


@pytest.mark.parametrize("spec", ["random:10", "class:4"])
def test_the_selection_set_is_apart_from_training_validation_and_forget(spec):
    split = make_splits(TRAIN_Y, TEST_Y, parse_forget_spec(spec), seed=2, val_size=200, select_size=300)
    select = np.concatenate([split.select, split.select_forget])
    assert len(select) == 300 and len(np.unique(select)) == 300
    for other in (split.retain, split.forget, split.val):
        assert not set(select) & set(other)
    assert len(split.retain) + len(split.forget) + len(split.val) + 300 == len(TRAIN_Y)
    if spec.startswith("class"):
        assert set(TRAIN_Y[split.select_forget]) == {4} and 4 not in set(TRAIN_Y[split.select])


def test_with_a_fixed_training_size_the_selection_set_leaves_the_training_set_as_it_was():
    spec = parse_forget_spec("random:10")
    before = make_splits(TRAIN_Y, TEST_Y, spec, seed=5, val_size=200, train_size=1000)
    after = make_splits(TRAIN_Y, TEST_Y, spec, seed=5, val_size=200, train_size=1000, select_size=500)
    for name in ("retain", "forget", "val", "test"):
        np.testing.assert_array_equal(getattr(before, name), getattr(after, name))
    assert len(after.select) == 500 and not len(before.select)


def test_a_selection_set_that_leaves_no_training_data_is_refused():
    with pytest.raises(UserError, match="selection size"):
        make_splits(TRAIN_Y, TEST_Y, parse_forget_spec("random:10"), seed=0, val_size=200, select_size=2800)


def test_every_preset_keeps_a_selection_set():
    assert all(preset.get("select_size", 0) > 0 for preset in PRESETS.values())


class Forbidden:
    """Stands in for the test images: any read of them fails the test."""

    def __getitem__(self, index):
        raise AssertionError("a trial read the test set")

    def __len__(self):
        return 0


def test_a_trials_objective_never_reads_a_test_image(cache_dir, digits_random, monkeypatch):
    """The trial's metrics, Retrain's reference and the held-out attacks run with the test images
    replaced by an object that fails on any read. (The fixture cached the test-view evaluations of
    the original and Retrain first, as a study's driver does before any trial starts.)"""
    import study.experiment.prepare as prepare_module

    real = load_dataset("digits")
    monkeypatch.setattr(prepare_module, "load_dataset",
                        lambda *args, **kwargs: dataclasses.replace(real, test_x=Forbidden()))
    config = {"experiment": experiment_from_preset("digits", epochs=FAST_EPOCHS).as_dict(), "method": "ft",
              "params": {"epochs": 2, "lr": 0.05}, "cache_dir": str(cache_dir), "threads": 1, "gpus": 0,
              "retrain_free_score": True, "eval_milestones": []}
    trial = UnlearningTrainable(config=config)
    result = trial.train()
    assert result["done"] and 0 <= result["avg_disparity"] and "retrain_free_score" in result
    data, splits = digits_random.data, digits_random.splits
    predicted = predict_logits(digits_random.retrain, data.train_x[splits.select]).argmax(dim=1)
    expected = 100.0 * float((predicted == data.train_y[splits.select]).float().mean())
    assert result["retrain/TA"] == pytest.approx(expected)
