"""LoTUS: its targets, loss and temperature rule by hand, and a digits run."""
import math

import pytest
import torch

from study.engine.runner import run_method
from study.methods import build_method
from study.methods.lotus import gumbel_softmax, lotus_loss, temperature


def test_the_loss_takes_soft_targets_on_forget_and_the_teachers_hard_label_on_retain():
    teacher = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    student = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    soft = torch.tensor([[0.7, 0.3], [0.5, 0.5]])
    loss = lotus_loss(student, teacher, torch.tensor([1, 0]), soft)
    # row 1 (forget): -(0.7 log 1/2 + 0.3 log 1/2) = log 2; row 2 (retain, teacher says class 1):
    # -log softmax([1, 0])_1 = log(1 + e)
    assert loss.item() == pytest.approx((math.log(2) + math.log(1 + math.e)) / 2, rel=1e-6)


def test_the_temperature_rule_by_hand():
    assert temperature(8.0, 1.0, 0.9) == pytest.approx(math.exp(0.8))
    assert temperature(2.0, 0.5, 0.5) == 1.0


def test_gumbel_targets_are_distributions_and_sharpen_as_tau_falls():
    logits = torch.tensor([[3.0, 1.0, 0.0]])
    cold = gumbel_softmax(logits.repeat(500, 1), 0.1, torch.Generator().manual_seed(0))
    hot = gumbel_softmax(logits.repeat(500, 1), 10.0, torch.Generator().manual_seed(0))
    assert torch.allclose(cold.sum(1), torch.ones(500)) and torch.allclose(hot.sum(1), torch.ones(500))
    assert cold.max(1).values.mean() > 0.9 > 0.5 > hot.max(1).values.mean()
    again = gumbel_softmax(logits.repeat(500, 1), 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(cold, again)


def test_lotus_runs_on_digits_and_stops_once_the_forget_set_is_below_validation(digits_random):
    result = run_method(digits_random, build_method("lotus", {"epochs": 3, "lr": 3e-3}), log=lambda m: None)
    assert [row["stopped"] for row in result.epochs][0] == 0.0
    assert all("acc_forget" in row for row in result.epochs)
    assert result.metrics["RA"] > 90


def test_rf_jsd_by_hand():
    from study.evaluation.rf_jsd import js_divergence, rf_jsd

    same = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    assert js_divergence(same, same) == pytest.approx(0.0, abs=1e-7)
    p, q = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    # normalised as a whole: p = (1, 1e-8), q = (1e-8, 1) (each / its sum), m ~ (1/2, 1/2):
    # KL(m || p) ~ 1/2 log(1/2) + 1/2 log(1/2 / 1e-8), the same for q; JSD = their mean
    expected = 0.5 * math.log(0.5) + 0.5 * math.log(0.5 / 1e-8)
    assert js_divergence(p, q) == pytest.approx(expected, rel=1e-4)
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]])
    labels = torch.tensor([0, 0, 1])
    held = torch.tensor([[0.8, 0.2], [0.2, 0.8]])
    assert rf_jsd(probs, labels, held, torch.tensor([0, 1])) == pytest.approx(0.0, abs=1e-7)
