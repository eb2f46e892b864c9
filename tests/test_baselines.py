import pytest
import torch
import torch.nn.functional as F
from torch import nn

from study.core.models import Defender
from study.core.pruning import masks_of, prunable_modules
from study.engine.runner import run_method
from study.experiment.unlearn_data import UnlearnData
from study.methods import METHODS, build_method
from study.methods.baselines import woodbury_inverse_fisher_product
from study.methods.gradients import per_sample_gradients
from tests.conftest import FAST_METHOD_PARAMS as FAST


def _changed(a: nn.Module, b: nn.Module) -> bool:
    return any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("name", sorted(FAST))
def test_each_method_runs_and_changes_the_model(digits_random, name):
    result = run_method(digits_random, build_method(name, FAST[name]), log=lambda s: None)
    assert _changed(result.model, digits_random.original)
    assert set(result.metrics) >= {"UA", "RA", "TA", "MIA-Efficacy", "avg_disparity"}
    assert result.run_seconds > 0


def test_original_and_retrain_are_references(digits_random):
    original = run_method(digits_random, build_method("original"), log=lambda s: None)
    assert not _changed(original.model, digits_random.original)
    retrain = run_method(digits_random, build_method("retrain"), log=lambda s: None)
    assert retrain.metrics["avg_disparity"] == 0.0
    assert retrain.run_seconds == digits_random.retrain_seconds


def test_every_registered_method_is_covered():
    """Every method the project defines (plug-ins defined by other tests are registered too)."""
    project = {name for name, cls in METHODS.items() if cls.__module__.startswith("study.")}
    assert project == set(FAST) | {"original", "retrain"}


def test_ga_raises_forget_loss(digits_random):
    data = digits_random.unlearn_data()
    before = F.cross_entropy(digits_random.original(data.forget_x), data.forget_y).item()
    result = run_method(digits_random, build_method("ga", {"epochs": 2, "lr": 1e-3}), log=lambda s: None)
    result.model.eval()
    after = F.cross_entropy(result.model(data.forget_x), data.forget_y).item()
    assert after > before


@pytest.mark.parametrize("name", ["ft", "ga", "ff", "iu", "salun", "scrub", "scissorhands"])
def test_masks_survive(digits_sparse, name):
    masks = masks_of(digits_sparse.original)
    result = run_method(digits_sparse, build_method(name, FAST[name]), log=lambda s: None)
    for layer, module in prunable_modules(result.model):
        assert (module.weight[masks[layer] == 0] == 0).all(), layer


class TwoWeightModel(Defender):
    """logits = [w0 * x, w1 * x]: two parameters, the Fisher has a closed form."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(1, 2, bias=False)

    def features(self, x):
        return x.view(len(x), 1)


def _data(x, y, num_classes):
    return UnlearnData(x, y, x[:2], y[:2], x[:2], y[:2], num_classes, "none", seed=0)


def test_fisher_noise_scale_by_hand():
    model = TwoWeightModel()
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor([[0.5], [-0.3]]))
    x = torch.tensor([[0.5], [1.0], [-2.0], [1.5]]).view(4, 1, 1, 1)
    y = torch.tensor([0, 1, 0, 1])
    method = build_method("ff", {"alpha": 1e-4, "num_samples": 4, "head_var_clamp": 1e9})
    method.setup(model, _data(x, y, 2))
    std = method.noise_std()
    # d log p_k / d w_i = x (delta_ik - p_i)  =>  F_i = E_x[x^2 p_i (1 - p_i)]
    xs = x.view(-1)
    probs = torch.softmax(torch.stack([0.5 * xs, -0.3 * xs], dim=1), dim=1)
    fisher = (xs[:, None] ** 2 * probs * (1 - probs)).mean(dim=0)
    expected = torch.sqrt(1e-4 / (fisher + 1e-8))
    assert torch.allclose(std, expected, rtol=1e-4)
    # the clamp bounds the variance
    clamped = build_method("ff", {"alpha": 1e-4, "num_samples": 4, "head_var_clamp": 1.0})
    clamped.setup(model, _data(x, y, 2))
    assert torch.allclose(clamped.noise_std(), torch.sqrt(1e-4 * torch.minimum(1 / (fisher + 1e-8), torch.ones(2))), rtol=1e-4)


class LinearModel(Defender):
    def __init__(self, inputs=5, classes=3):
        super().__init__()
        self.head = nn.Linear(inputs, classes)

    def features(self, x):
        return x.flatten(1)


def test_influence_update_equals_closed_form_on_a_linear_model():
    torch.manual_seed(0)
    model = LinearModel()
    retain_x, retain_y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    forget_x, forget_y = torch.randn(6, 5), torch.randint(0, 3, (6,))
    data = UnlearnData(retain_x, retain_y, forget_x, forget_y, retain_x[:2], retain_y[:2], 3, "none", seed=0)
    before = torch.cat([p.detach().flatten() for p in model.parameters()]).clone()
    method = build_method("iu", {"alpha": 2.0, "num_samples": 20, "damping": 0.1})
    method.setup(model, data)
    method.run_epoch(0)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])

    # closed form with the explicit P x P Fisher
    def flat_grad(x, y):
        fresh = LinearModel()
        fresh.load_state_dict({"head.weight": before[:15].view(3, 5), "head.bias": before[15:]})
        loss = F.cross_entropy(fresh(x), y, reduction="sum")
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(fresh.parameters()))])

    v = flat_grad(forget_x, forget_y) / 26 - flat_grad(retain_x, retain_y) / 20
    rows = torch.stack([flat_grad(retain_x[i:i + 1], retain_y[i:i + 1]) for i in range(20)])
    fisher = 0.1 * torch.eye(18) + rows.T @ rows / 20
    expected = before + 2.0 * torch.linalg.solve(fisher, v)
    assert torch.allclose(after, expected, atol=1e-4, rtol=1e-4)


def test_per_sample_gradients_match_a_loop():
    torch.manual_seed(0)
    model = LinearModel()
    x, y = torch.randn(7, 5), torch.randint(0, 3, (7,))
    rows = per_sample_gradients(model, x, y, chunk=3)
    for i in range(7):
        loss = F.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
        expected = torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))])
        assert torch.allclose(rows[i], expected, atol=1e-6)


def test_woodbury_matches_dense_solve():
    torch.manual_seed(0)
    g, v = torch.randn(4, 9), torch.randn(9)
    dense = 0.5 * torch.eye(9) + g.T @ g / 4
    assert torch.allclose(woodbury_inverse_fisher_product(g, v, 0.5), torch.linalg.solve(dense, v), atol=1e-5)


@pytest.mark.parametrize("name", sorted(FAST))
def test_same_seed_gives_the_same_metrics(digits_random, name):
    first = run_method(digits_random, build_method(name, FAST[name]), log=lambda s: None)
    second = run_method(digits_random, build_method(name, FAST[name]), log=lambda s: None)
    for key in ("UA", "RA", "TA", "MIA-Efficacy", "avg_disparity"):
        assert first.metrics[key] == second.metrics[key], key
