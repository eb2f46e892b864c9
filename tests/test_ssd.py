"""Selective Synaptic Dampening: its importance estimate and dampening rule by hand, and a digits run."""
import torch
from torch import nn

from study.engine.runner import run_method
from study.methods import build_method
from study.methods.ssd import dampen_, importances


def test_the_dampening_rule_by_hand():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0, 3.0]]))
    full = {"weight": torch.tensor([[1.0, 1.0]])}
    forget = {"weight": torch.tensor([[20.0, 5.0]])}  # only the first exceeds alpha (10) x full
    share = dampen_(model, full, forget, alpha=10.0, lam=1.0)
    assert share == 0.5
    assert torch.allclose(model.weight, torch.tensor([[2.0 * 1.0 / 20.0, 3.0]]))
    dampen_(model, full, {"weight": torch.tensor([[20.0, 5.0]])}, alpha=10.0, lam=40.0)  # factor capped at 1
    assert torch.allclose(model.weight, torch.tensor([[0.1, 3.0]]))


def test_importance_is_the_mean_squared_batch_gradient_by_hand():
    model = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        model.weight.zero_()  # logits 0: softmax 1/2, d CE / d w_k = (p_k - [y = k]) x
    x, y = torch.tensor([[1.0], [2.0]]), torch.tensor([0, 0])
    found = importances(model, x, y, batch_size=1)["weight"]
    # per batch: grad = (1/2 - 1, 1/2) x  ->  squared (x^2 / 4) for both rows; mean over x = 1, 2
    assert torch.allclose(found, torch.tensor([[(0.25 + 1.0) / 2], [(0.25 + 1.0) / 2]]))


def test_ssd_unlearns_on_digits(digits_classwise):
    result = run_method(digits_classwise, build_method("ssd", {"alpha": 10.0, "lam": 1.0}), log=lambda m: None)
    assert result.epochs[0]["dampened_share"] > 0
    assert result.metrics["UA"] > digits_classwise.original_metrics["UA"]  # it forgets some of class 3
