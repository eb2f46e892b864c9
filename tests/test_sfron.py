"""SFR-on: its saliency mask, adaptive forget loss and schedule by hand, and a digits run."""
import math

import pytest
import torch

from study.engine.runner import run_method
from study.methods import build_method
from study.methods.sfron import adaptive_forget_loss, forget_scale, saliency_mask


def test_the_saliency_mask_by_hand():
    forget = {"w": torch.tensor([2.0, 1.0, 0.0])}
    retain = {"w": torch.tensor([1.0, 2.0, 0.0])}
    assert saliency_mask(forget, retain, 1.0)["w"].tolist() == [True, False, True]  # 0/0 -> 1e-15/1e-15 = 1


def test_the_adaptive_loss_weighs_by_inverse_loss_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # CE of class 0: log 2 and log(4/3)
    labels = torch.tensor([0, 0])
    l1, l2 = math.log(2.0), math.log(4.0 / 3.0)
    w1, w2 = l1 ** -0.5, l2 ** -0.5
    expected = (w1 * l1 + w2 * l2) / (w1 + w2)
    assert adaptive_forget_loss(logits, labels, 0.5).item() == pytest.approx(expected, rel=1e-6)


def test_the_forget_scale_decays_by_a_cosine():
    assert forget_scale(25.0, 0, 100) == 25.0
    assert forget_scale(25.0, 50, 100) == pytest.approx(12.5)
    assert forget_scale(25.0, 100, 100) == pytest.approx(0.0)


def test_sfr_on_runs_on_digits_in_epochs_of_the_retain_set(digits_random):
    method = build_method("sfr-on", {"iters": 30, "batch_size": 128})
    result = run_method(digits_random, method, log=lambda m: None)
    assert method.num_epochs == math.ceil(30 / math.ceil(len(digits_random.splits.retain) / 128))
    assert len(result.epochs) == method.num_epochs and method.step == 30
    assert 0 < result.epochs[0]["salient_share"] < 1
    assert result.metrics["RA"] > 80
