"""The relearning test, checked against Retrain on digits."""
import numpy as np
import pytest
import torch

from study.evaluation.relearn import relearn_halves, relearn_ua


def test_the_halves_split_the_forget_set(digits_random):
    fit, held = relearn_halves(digits_random.splits, seed=0)
    assert not set(fit) & set(held)
    np.testing.assert_array_equal(np.sort(np.concatenate([fit, held])), digits_random.splits.forget)


def test_relearning_leaves_the_model_alone_and_repeats_exactly(digits_classwise):
    model = digits_classwise.retrain
    before = [p.detach().clone() for p in model.parameters()]
    first = relearn_ua(model, digits_classwise.data, digits_classwise.splits, 10, seed=0)
    second = relearn_ua(model, digits_classwise.data, digits_classwise.splits, 10, seed=0)
    assert first == second
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_the_original_knows_the_forgotten_class_and_retrain_must_learn_it(digits_classwise):
    """Class-wise: Retrain never saw class 3 (UA 100); after 5 steps it still misses most of the
    held-out half, while the original (which learned it) misses none: the probe tells knowledge
    from its absence."""
    data, splits = digits_classwise.data, digits_classwise.splits
    retrain = relearn_ua(digits_classwise.retrain, data, splits, 5, seed=0)
    original = relearn_ua(digits_classwise.original, data, splits, 5, seed=0)
    assert original <= 5.0 < 50.0 <= retrain
    longer = relearn_ua(digits_classwise.retrain, data, splits, 60, seed=0)
    assert longer < retrain  # Retrain learns the class too, given steps


def test_no_steps_is_refused(digits_random):
    with pytest.raises(ValueError):
        relearn_ua(digits_random.original, digits_random.data, digits_random.splits, 0, seed=0)
