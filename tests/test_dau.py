import copy
import math

import pytest
import torch

from study.errors import UserError
from study.methods import build_method
from study.methods.attacker import SelfAttentionAttacker, attack_inputs
from study.methods.losses import (attacker_loss, barlow_twins_loss, defender_adversarial_loss,
                                  retain_membership_loss)
from study.pruning import masks_of, prunable_modules
from study.runner import run_method

FAST_DAU = {"attacker_pretrain_iters": 20, "epochs": 1, "batch_size": 128, "attack_batch_size": 32, "noise_copies": 2}


def test_barlow_twins_by_hand_on_4x3():
    f_forget = torch.tensor([[1.0, 0.0, 2.0], [2.0, 1.0, 0.0], [3.0, 0.0, 1.0], [4.0, 1.0, 3.0]])
    f_val = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    eps = 1e-5

    def standardise_by_hand(columns):
        out = []
        for column in columns:
            mean = sum(column) / 4
            var = sum((v - mean) ** 2 for v in column) / 4
            out.append([(v - mean) / (var + eps) ** 0.5 for v in column])
        return out  # out[dim][sample]

    zf = standardise_by_hand([[row[d] for row in f_forget.tolist()] for d in range(3)])
    zv = standardise_by_hand([[row[d] for row in f_val.tolist()] for d in range(3)])
    c = [[sum(zv[i][n] * zf[j][n] for n in range(4)) / 4 for j in range(3)] for i in range(3)]
    expected = sum((1 - c[i][i]) ** 2 for i in range(3)) + 5e-3 * sum(
        c[i][j] ** 2 for i in range(3) for j in range(3) if i != j)
    assert barlow_twins_loss(f_forget, f_val).item() == pytest.approx(expected, rel=1e-5)


def test_barlow_twins_zero_for_identical_decorrelated_batches():
    # columns of a 4x3 Hadamard-like matrix: zero mean, unit variance, mutually orthogonal
    features = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])
    assert barlow_twins_loss(features, features.clone()).item() == pytest.approx(0.0, abs=1e-4)
    assert barlow_twins_loss(features, -features).item() == pytest.approx(12.0, rel=1e-3)


def test_adversarial_losses_by_hand():
    member = torch.tensor([[0.0, 2.0]])  # attacker says "member"
    non_member = torch.tensor([[2.0, 0.0]])
    confident = attacker_loss(member, non_member)
    fooled = attacker_loss(non_member, member)
    assert confident < fooled
    # non-saturating defender loss is the attacker loss with labels swapped
    assert defender_adversarial_loss(member, non_member).item() == pytest.approx(fooled.item())
    assert defender_adversarial_loss(member, non_member, non_saturating=False).item() == pytest.approx(-confident.item())


def test_attacker_gradient_reaches_defender(digits_random):
    defender = digits_random.fresh_original().train()
    data = digits_random.unlearn_data()
    attacker = SelfAttentionAttacker(10).eval()
    generator = torch.Generator().manual_seed(0)
    inputs = attack_inputs(defender, data.forget_x[:16], data.forget_y[:16], 10, 3, generator)
    attacker(*inputs)[:, 1].sum().backward()
    grads = [p.grad for p in defender.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    # sensitivity itself carries gradient (not only the output)
    defender.zero_grad()
    outputs, sensitivity, _ = attack_inputs(defender, data.forget_x[:16], data.forget_y[:16], 10, 3, generator)
    sensitivity.sum().backward()
    assert sum(float(p.grad.abs().sum()) for p in defender.parameters() if p.grad is not None) > 0


def test_one_defender_step_lowers_attacker_objective(digits_random):
    method = build_method("dau", {**FAST_DAU, "alpha": 1.0, "regularizer": False, "lr": 0.05})
    method.setup(digits_random.fresh_original(), digits_random.unlearn_data())
    for _ in range(30):
        method.attacker_step()
    data = digits_random.unlearn_data()
    fx, fy, vx, vy = data.forget_x[:32], data.forget_y[:32], data.val_x[:32], data.val_y[:32]

    def attacker_objective():
        method.model.train()
        method.attacker.eval()
        torch.manual_seed(0)
        with torch.no_grad():
            gen = torch.Generator().manual_seed(1)
            f_in = attack_inputs(method.model, fx, fy, 10, 2, gen)
            v_in = attack_inputs(method.model, vx, vy, 10, 2, gen)
            return -attacker_loss(method.attacker(*f_in), method.attacker(*v_in)).item()  # log-likelihood

    before = attacker_objective()
    # one defender step on exactly this forget/val batch and no retain term
    method.model.train()
    method.attacker.eval()
    gen = torch.Generator().manual_seed(1)
    f_in = attack_inputs(method.model, fx, fy, 10, 2, gen)
    v_in = attack_inputs(method.model, vx, vy, 10, 2, gen)
    loss = defender_adversarial_loss(method.attacker(*f_in), method.attacker(*v_in))
    method.optimizer.zero_grad()
    loss.backward()
    method.optimizer.step()
    assert attacker_objective() < before


def test_masks_survive_dau(digits_sparse):
    masks = masks_of(digits_sparse.original)
    result = run_method(digits_sparse, build_method("dau", FAST_DAU), log=lambda s: None)
    for name, module in prunable_modules(result.model):
        assert (module.weight[masks[name] == 0] == 0).all()


def test_same_seed_same_metrics(digits_random):
    first = run_method(digits_random, build_method("dau", FAST_DAU), log=lambda s: None)
    second = run_method(digits_random, build_method("dau", FAST_DAU), log=lambda s: None)
    assert first.metrics == second.metrics
    changed = any(not torch.equal(a, b) for a, b in zip(first.model.state_dict().values(),
                                                          digits_random.original.state_dict().values()))
    assert changed


@pytest.mark.parametrize("params,match", [
    ({"alpha": -0.1}, "alpha"), ({"noise_copies": 0}, "noise_copies"),
    ({"attacker_pretrain_iters": 2.5}, "integer"), ({"attacker_pretrain_iters": "ten"}, "number"),
    ({"no_such": 1}, "unknown hyperparameter"),
])
def test_bad_config_refused_before_training(params, match):
    with pytest.raises(UserError, match=match):
        build_method("dau", params)


@pytest.mark.parametrize("params, classwise, expected", [
    ({}, True, 30), ({}, False, None), ({"classwise_switch": False}, True, None),
    ({"stop_iter": 5}, False, 5), ({"stop_iter": 5, "classwise_switch": False}, True, 5),
])
def test_switch_point_follows_the_forget_scheme(digits_random, digits_classwise, params, classwise, expected):
    prepared = digits_classwise if classwise else digits_random
    method = build_method("dau", {**FAST_DAU, **params})
    method.setup(prepared.fresh_original(), prepared.unlearn_data())
    assert prepared.unlearn_data().classwise is classwise
    assert method.switch_at == expected


def test_classwise_default_runs_the_adversary_for_30_iterations_only(digits_classwise, monkeypatch):
    method = build_method("dau", {**FAST_DAU, "batch_size": 16})
    method.setup(digits_classwise.fresh_original(), digits_classwise.unlearn_data())
    method.pretrained = True
    calls = []
    original_step = method.attacker_step
    monkeypatch.setattr(method, "attacker_step", lambda: calls.append(1) or original_step())
    method.run_epoch(0)
    assert method.defender_iterations > 40  # the epoch ran past the switch point
    assert len(calls) == 30


def test_classwise_switch_stops_the_adversary(digits_classwise):
    method = build_method("dau", {**FAST_DAU, "stop_iter": 2, "stop_unlearn_lr": 0.001})
    method.setup(digits_classwise.fresh_original(), digits_classwise.unlearn_data())
    method.pretrained = True
    logs = method.run_epoch(0)
    assert method.defender_iterations > 2
    assert method.optimizer.param_groups[0]["lr"] == 0.001
    # attacker ran only on the first two iterations: its mean loss was averaged over all steps
    assert "adv_loss" in logs


def _record_learning_rates(method) -> list[float]:
    """The defender's learning rate at each of its optimizer steps from now on."""
    seen: list[float] = []
    step = method.optimizer.step
    method.optimizer.step = lambda *a, **k: seen.append(method.optimizer.param_groups[0]["lr"]) or step(*a, **k)
    return seen


def test_repair_decay_anneals_the_rate_to_zero_by_the_last_iteration(digits_classwise):
    method = build_method("dau", {**FAST_DAU, "batch_size": 64, "epochs": 2, "stop_iter": 4,
                                  "stop_unlearn_lr": 0.02, "repair_decay": True})
    method.setup(digits_classwise.fresh_original(), digits_classwise.unlearn_data())
    method.pretrained = True
    seen = _record_learning_rates(method)
    for epoch in range(2):
        method.run_epoch(epoch)
    total = 2 * -(-len(digits_classwise.unlearn_data().retain_x) // 64)
    assert len(seen) == total
    assert seen[:4] == [method.lr] * 4  # the unlearning iterations keep lr
    repair = seen[4:]
    assert repair[0] == pytest.approx(0.02)
    assert all(later <= earlier for earlier, later in zip(repair, repair[1:]))
    assert repair[-1] < 0.02 * 0.01


def test_without_repair_decay_the_repair_rate_stays_constant(digits_classwise):
    method = build_method("dau", {**FAST_DAU, "stop_iter": 2, "stop_unlearn_lr": 0.003})
    method.setup(digits_classwise.fresh_original(), digits_classwise.unlearn_data())
    method.pretrained = True
    seen = _record_learning_rates(method)
    method.run_epoch(0)
    assert seen[2:] == [0.003] * (len(seen) - 2)


def _batch_norm_buffers(model) -> list[torch.Tensor]:
    return [buf.clone() for name, buf in model.named_buffers() if "running" in name]


@pytest.mark.parametrize("frozen_bn", [False, True])
def test_frozen_bn_keeps_the_running_statistics(digits_random, frozen_bn):
    model = digits_random.fresh_original()
    before = _batch_norm_buffers(model)
    assert before, "the digits model must have batch norm for this test to mean anything"
    method = build_method("dau", {**FAST_DAU, "attacker_pretrain_iters": 2, "frozen_bn": frozen_bn})
    method.setup(model, digits_random.unlearn_data())
    method.run_epoch(0)
    after = _batch_norm_buffers(method.model)
    unchanged = all(torch.equal(a, b) for a, b in zip(before, after))
    assert unchanged is frozen_bn
    changed_weights = any(not torch.equal(a, b) for a, b in zip(method.model.parameters(),
                                                                digits_random.original.parameters()))
    assert changed_weights  # frozen statistics, but the defender still learns


def test_retain_membership_loss_by_hand():
    undecided = torch.tensor([[0.0, 0.0]])
    assert retain_membership_loss(undecided).item() == pytest.approx(math.log(2))
    says_member = torch.tensor([[0.0, 3.0]])  # column 1 = member
    assert retain_membership_loss(says_member).item() == pytest.approx(math.log(1 + math.exp(-3)))
    assert retain_membership_loss(says_member) < retain_membership_loss(torch.tensor([[3.0, 0.0]]))


def test_retain_alpha_adds_the_retain_term_to_the_defender_step(digits_random):
    logs = {}
    for retain_alpha in (0.0, 1.0):
        method = build_method("dau", {**FAST_DAU, "retain_alpha": retain_alpha})
        method.setup(digits_random.fresh_original(), digits_random.unlearn_data())
        data = digits_random.unlearn_data()
        logs[retain_alpha] = method.defender_step(data.retain_x[:64], data.retain_y[:64])
    assert "retain_adv_loss" not in logs[0.0]
    assert logs[1.0]["defender_loss"] == pytest.approx(logs[0.0]["defender_loss"] + logs[1.0]["retain_adv_loss"])


@pytest.mark.parametrize("mixed", [False, True])
def test_mixed_batches_normalise_forget_and_validation_alike(digits_random, mixed):
    """In train mode, batch norm normalises each forward by its own statistics, so with separate
    forget and validation forwards the same image gets different outputs in the two sets; one
    joint forward (mixed_batches) gives it the same outputs in both."""
    method = build_method("dau", {**FAST_DAU, "mixed_batches": mixed})
    method.setup(digits_random.fresh_original(), digits_random.unlearn_data())
    method.model.train()
    data = digits_random.unlearn_data()
    fx, fy = data.forget_x[:32], data.forget_y[:32]
    vx, vy = data.val_x[:32].clone(), data.val_y[:32].clone()
    vx[0], vy[0] = fx[0], fy[0]  # the same image in both sets
    with torch.no_grad():
        forget_in, val_in = method._attack_pair(fx, fy, vx, vy, with_features=True)
    same = torch.allclose(forget_in[-1][0], val_in[-1][0], atol=1e-5)  # penultimate features
    assert same is mixed
