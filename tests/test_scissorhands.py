"""Scissorhands: the SNIP trim, the re-draw of the late layers and the GEM projection, by hand."""
import numpy as np
import pytest
import torch

from study.core.errors import UserError
from study.core.models import build_model
from study.methods import build_method
from study.methods.scissorhands import (
    GEM_EPS,
    gem_project,
    late_parameter_names,
    marked_entries,
    reset_marked_,
    snip_sensitivity,
)


def test_gem_projection_with_one_memory_is_the_closed_form():
    g, m = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([[0.0, 1.0, 1.0]])
    # <g, m> = -1.5: v = max(0.5, 1.5 / (2 + eps)) = 0.7496..., g~ = g + v m
    v = max(0.5, 1.5 / (2 + GEM_EPS))
    assert torch.allclose(gem_project(g, m), g + v * m[0], atol=1e-6)
    weak = torch.tensor([1.0, -0.2, 0.1])  # <weak, m> = -0.1: the margin sets v = 0.5
    assert torch.allclose(gem_project(weak, m), weak + 0.5 * m[0], atol=1e-6)


def test_gem_projection_with_orthogonal_memories_decouples_and_meets_every_constraint():
    g = torch.tensor([-3.0, 1.0, 0.2, 4.0])
    m = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    expected = g.clone()
    for row in m:
        v = max(0.5, float(-(row @ g)) / (float(row @ row) + GEM_EPS))
        expected += v * row
    projected = gem_project(g, m)
    assert torch.allclose(projected, expected, atol=1e-6)
    assert (m @ projected >= -1e-2).all()  # met up to the eps GEM adds to the dual's matrix


def test_gem_projection_with_correlated_memories_solves_the_dual():
    rng = np.random.default_rng(0)
    m, g = rng.normal(size=(3, 6)), rng.normal(size=6)
    projected = gem_project(torch.from_numpy(g), torch.from_numpy(m)).numpy()
    v = np.linalg.lstsq(m.T, projected - g, rcond=None)[0]  # g~ - g lies in the memories' span
    assert np.allclose(m.T @ v, projected - g, atol=1e-8) and (v >= 0.5 - 1e-9).all()
    p = m @ m.T + GEM_EPS * np.eye(3)
    gradient = p @ v + m @ g  # KKT of the dual: gradient >= 0, and 0 where v is above the margin
    assert (gradient >= -1e-8).all() and np.allclose(gradient * (v - 0.5), 0, atol=1e-8)


def test_the_marked_entries_are_those_above_the_sparsity_quantile():
    sensitivity = {"a": torch.arange(10.0), "b": torch.arange(10.0, 20.0).view(2, 5)}
    marked = marked_entries(sensitivity, 0.9)  # k = 18: threshold 17, so 18 and 19 are marked
    assert marked["a"].sum() == 0 and marked["b"].flatten().tolist() == [False] * 8 + [True, True]
    flat = {"a": torch.ones(5)}  # all equal: their fallback threshold, half the range (0), marks all
    assert marked_entries(flat, 0.5)["a"].all()


def test_only_the_marked_late_conv_and_linear_entries_are_redrawn():
    model = build_model("cnn", 1, 10, seed=0)
    late = late_parameter_names(model)
    assert late == ["body.4.weight", "body.5.weight", "body.5.bias", "body.8.weight", "body.9.weight",
                    "body.9.bias", "head.weight", "head.bias"]
    with torch.no_grad():
        model.head.bias.fill_(1.0)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    marked = {name: torch.rand(p.shape, generator=torch.Generator().manual_seed(1)) < 0.3
              for name, p in model.named_parameters()}
    changed = reset_marked_(model, marked, torch.Generator().manual_seed(2))
    redrawn = ("body.4.weight", "body.8.weight", "head.weight", "head.bias")
    assert changed == sum(int(marked[name].sum()) for name in redrawn)
    for name, p in model.named_parameters():
        same = p.detach() == before[name]
        if name in redrawn:
            assert same[~marked[name]].all() and not same[marked[name]].any(), name
        else:  # early layers and every batch norm
            assert same.all(), name
    assert (model.head.bias[marked["head.bias"]] == 0).all()
    bound = 1 / np.sqrt(128)  # Kaiming uniform with a = sqrt 5: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert model.head.weight[marked["head.weight"]].abs().max() <= bound


def test_snip_sensitivity_is_gradient_times_weight_summed_over_batches():
    model = build_model("cnn", 1, 10, seed=0)
    x, y = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(3)), torch.arange(8) % 10
    sensitivity = snip_sensitivity(model, [(x[:4], y[:4]), (x[4:], y[4:])])
    grads = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for part in (slice(0, 4), slice(4, 8)):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[part]), y[part]).backward()
        for name, p in model.named_parameters():
            grads[name] += p.grad.abs()
    for name, p in model.named_parameters():
        assert torch.allclose(sensitivity[name], (grads[name] * p).abs(), atol=1e-7), name


def test_a_projected_step_never_works_against_the_forgetting(digits_random):
    method = build_method("scissorhands", {"epochs": 1, "lam": 0.0})  # plain retain descent: conflicts happen
    method.setup(digits_random.fresh_original(), digits_random.unlearn_data())
    memories = method._memories()
    data = digits_random.unlearn_data()
    conflicts = 0
    for start in range(0, 320, 64):
        method.optimizer.zero_grad()
        torch.nn.functional.cross_entropy(method.model(data.retain_x[start:start + 64]),
                                          data.retain_y[start:start + 64]).backward()
        before = method._late_gradient(method.model)
        conflicts += method._project_(memories)
        after = method._late_gradient(method.model)
        # g' = g + M^T v with v >= GEM_MARGIN; the dual's ridge GEM_EPS leaves M g' >= -GEM_EPS v, not >= 0
        # (one memory with a conflict: v = -M g / (|m|^2 + eps), so M g' = -eps v exactly; seen at -5e-4)
        dual = torch.linalg.lstsq(memories.double().T, (after - before).double().unsqueeze(1)).solution.squeeze(1)
        assert (dual >= -1e-6).all()
        assert (memories.double() @ after.double() >= -GEM_EPS * dual - 1e-5).all()
    assert conflicts > 0


def test_a_model_without_declared_late_layers_is_refused():
    with pytest.raises(UserError, match="late layers"):
        late_parameter_names(torch.nn.Sequential(torch.nn.Linear(2, 2)))
