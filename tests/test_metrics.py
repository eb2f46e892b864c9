import math

import numpy as np
import pytest
import torch

from study.evaluation.metrics import (
    accuracy,
    avg_disparity,
    fit_confidence_svm,
    fit_svm,
    mia_efficacy,
    mia_sets,
    true_label_confidence,
    unlearning_metrics,
)


def test_accuracy_by_hand():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 1, 1])
    assert accuracy(logits, labels) == 75.0
    assert math.isnan(accuracy(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)))


def test_true_label_confidence_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    conf = true_label_confidence(logits, torch.tensor([1, 0]))
    assert np.allclose(conf, [0.5, 0.75])


def test_mia_efficacy_separable_and_reversed():
    members = np.full(50, 0.99)
    non_members = np.full(50, 0.30)
    # forget samples that look like non-members are "forgotten": efficacy 100
    assert mia_efficacy(members, non_members, np.full(20, 0.31)) == 100.0
    # forget samples that look like members are not: efficacy 0
    assert mia_efficacy(members, non_members, np.full(20, 0.98)) == 0.0
    # half and half
    assert mia_efficacy(members, non_members, np.array([0.98] * 10 + [0.31] * 10)) == 50.0


def test_mia_efficacy_uses_a_retain_subset_as_large_as_test():
    # 1000 member confidences, 10 non-members: the member subset must be 10, so a plain
    # majority vote would not dominate; a forget point at the non-member value is still TN.
    members = np.full(1000, 0.95)
    non_members = np.full(10, 0.2)
    assert mia_efficacy(members, non_members, np.array([0.2])) == 100.0


def test_mia_sets_are_equal_in_number_whichever_set_is_larger():
    # retain the larger (CIFAR-10): the reference's retain subset as large as test, and all of test
    members, non_members = mia_sets(50, 10, seed=3)
    expected = np.random.Generator(np.random.PCG64(3)).choice(50, size=10, replace=False)
    assert np.array_equal(members, expected) and np.array_equal(non_members, np.arange(10))
    # test the larger (the proxy: 9,000 retain vs 10,000 test): all of retain, a test subset as large
    members, non_members = mia_sets(9, 12, seed=3)
    assert sorted(members) == list(range(9))
    assert len(non_members) == 9 and len(set(non_members)) == 9 and non_members.max() < 12
    assert np.array_equal(non_members, mia_sets(9, 12, seed=3)[1])
    assert not np.array_equal(non_members, mia_sets(9, 12, seed=4)[1])


def test_unequal_sets_call_every_sample_non_member_and_equal_ones_do_not():
    """The proxy's old collapse: retain (900 here) as (un)confident as the larger test set (1,000).
    Fitted on all of both, the SVM calls every sample non-member (MIA-Efficacy 100 for any forget
    set); fitted on the metric's equal sets it has no majority to fall back on."""
    for seed in (0, 2, 5):
        rng = np.random.default_rng(seed)
        retain, test = (np.clip(1.0 - rng.exponential(0.05, n), 0.0, 1.0) for n in (900, 1000))
        probe = test.reshape(-1, 1)
        assert (fit_svm(retain, test).predict(probe) == 0).all()
        assert not (fit_confidence_svm(retain, test, seed=0).predict(probe) == 0).all()


def test_avg_disparity_by_hand():
    retrain = {"UA": 10.0, "MIA-Efficacy": 20.0, "RA": 99.0, "TA": 90.0}
    method = {"UA": 14.0, "MIA-Efficacy": 10.0, "RA": 100.0, "TA": 89.0}
    assert avg_disparity(method, retrain) == (4 + 10 + 1 + 1) / 4
    assert avg_disparity(retrain, retrain) == 0.0


def test_unlearning_metrics_by_hand():
    correct = torch.tensor([[5.0, 0.0]] * 4)
    labels0 = torch.zeros(4, dtype=torch.long)
    logits = {"retain": correct, "forget": torch.tensor([[5.0, 0.0], [0.0, 5.0]]), "test": correct[:2]}
    labels = {"retain": labels0, "forget": torch.tensor([0, 0]), "test": labels0[:2]}
    metrics = unlearning_metrics(logits, labels)
    assert metrics["UA"] == 50.0 and metrics["RA"] == 100.0 and metrics["TA"] == 100.0
    assert 0.0 <= metrics["MIA-Efficacy"] <= 100.0


def test_sampling_noise_by_hand():
    from study.evaluation.noise import sampling_error, within_sampling_noise

    assert sampling_error(50.0, 100) == pytest.approx(5.0)  # sqrt(0.25 / 100) = 0.05
    assert sampling_error(0.0, 108) == pytest.approx(100 / 108)  # never below one sample
    sizes = {"forget": 108, "retain": 969, "test": 360}
    retrain = {"UA": 2.78, "MIA-Efficacy": 9.26, "RA": 95.77, "TA": 94.44}
    close = {"UA": 0.0, "MIA-Efficacy": 4.0, "RA": 96.5, "TA": 95.0}  # digits: 2 SE of UA is 3.2 points
    assert within_sampling_noise(close, retrain, sizes)
    assert not within_sampling_noise({**close, "UA": 9.0}, retrain, sizes)
