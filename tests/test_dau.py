import pytest
import torch

from study.core.errors import UserError
from study.core.pruning import masks_of, prunable_modules
from study.engine.runner import run_method
from study.methods import build_method
from study.methods.dau.attacker import AttackInputs, SelfAttentionAttacker, attack_inputs
from study.methods.dau.losses import attacker_loss, barlow_twins_loss, defender_adversarial_loss

FAST_DAU = {"attacker_pretrain_iters": 20, "epochs": 1, "batch_size": 128, "noise_copies": 2}


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
    attacker(inputs.outputs, inputs.sensitivity, inputs.onehot)[:, 1].sum().backward()
    grads = [p.grad for p in defender.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    # sensitivity itself carries gradient (not only the output)
    defender.zero_grad()
    inputs = attack_inputs(defender, data.forget_x[:16], data.forget_y[:16], 10, 3, generator)
    inputs.sensitivity.sum().backward()
    assert sum(float(p.grad.abs().sum()) for p in defender.parameters() if p.grad is not None) > 0


def test_one_defender_step_lowers_attacker_objective(digits_random):
    """The defender's adversarial term, stepped on one forget/validation pair, makes the (fixed)
    attacker worse at telling that pair apart."""
    method = build_method("dau", {**FAST_DAU, "alpha": 1.0, "regularizer": False, "lr": 0.05})
    method.setup(digits_random.fresh_original(), digits_random.unlearn_data())
    data = digits_random.unlearn_data()
    fx, fy, vx, vy = data.forget_x[:32], data.forget_y[:32], data.val_x[:32], data.val_y[:32]
    method.attacker.eval()  # a fixed judge, so that only the defender's step changes the objective

    def pair():
        gen = torch.Generator().manual_seed(1)
        method.model.train()
        return method._inputs(fx, fy, gen), method._inputs(vx, vy, gen)

    def attacker_log_likelihood():
        with torch.no_grad():
            forget_in, val_in = pair()
            logits = method.attacker(*AttackInputs.joint(forget_in, val_in))
            return -attacker_loss(logits[:32], logits[32:]).item()

    before = attacker_log_likelihood()
    loss, _ = method.unlearning_loss(*pair())
    method.optimizer.zero_grad()
    loss.backward()
    method.optimizer.step()
    assert attacker_log_likelihood() < before


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
    ({"attacker_pretrain_iters": -1}, ">= 0"), ({"copies_per_forward": 0}, "copies_per_forward"),
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
    calls = []
    original_step = method.attacker_step
    monkeypatch.setattr(method, "attacker_step", lambda *inputs: calls.append(1) or original_step(*inputs))
    method.run_epoch(0)
    assert method.defender_iterations > 40  # the epoch ran past the switch point
    assert len(calls) == 30


def test_classwise_switch_stops_the_adversary(digits_classwise):
    method = build_method("dau", {**FAST_DAU, "stop_iter": 2, "stop_unlearn_lr": 0.001})
    method.setup(digits_classwise.fresh_original(), digits_classwise.unlearn_data())
    logs = method.run_epoch(0)
    assert method.defender_iterations > 2
    assert method.optimizer.param_groups[0]["lr"] == 0.001
    # the attacker ran on the first two iterations only
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
    seen = _record_learning_rates(method)
    for epoch in range(2):
        method.run_epoch(epoch)
    total = 2 * -(-len(digits_classwise.unlearn_data().retain_x) // 64)
    assert len(seen) == total
    assert seen[:4] == [method.defender_lr] * 4  # the unlearning iterations keep lr
    repair = seen[4:]
    assert repair[0] == pytest.approx(0.02)
    assert all(later <= earlier for earlier, later in zip(repair, repair[1:]))
    assert repair[-1] < 0.02 * 0.01


def test_without_repair_decay_the_repair_rate_stays_constant(digits_classwise):
    method = build_method("dau", {**FAST_DAU, "stop_iter": 2, "stop_unlearn_lr": 0.003})
    method.setup(digits_classwise.fresh_original(), digits_classwise.unlearn_data())
    seen = _record_learning_rates(method)
    method.run_epoch(0)
    assert seen[2:] == [0.003] * (len(seen) - 2)


def test_one_iteration_runs_the_defender_once_per_sample(digits_random, monkeypatch):
    """Before the switch, an iteration sends the retain batch, the forget batch (clean, then each
    of the m noisy copies) and the validation batch (likewise) through the defender once each, in
    forwards of B images: no second pass for the defender's step. The attacker's input batch norm
    sees the 2B rows of the joint batch, forget then validation, twice (its step and the defender's)."""
    b, m = 16, 2
    method = build_method("dau", {**FAST_DAU, "batch_size": b, "noise_copies": m})
    method.setup(digits_random.fresh_original(), digits_random.unlearn_data())
    data = digits_random.unlearn_data()
    fx, fy, vx, vy = data.forget_x[:b], data.forget_y[:b], data.val_x[:b], data.val_y[:b]
    monkeypatch.setattr(method, "_paired_batches", lambda: (fx, fy, vx, vy))
    forwards, attacker_rows = [], []
    first_layer = next(m for m in method.model.modules() if isinstance(m, torch.nn.Conv2d))
    first_layer.register_forward_hook(lambda module, args, out: forwards.append(args[0].detach().clone()))
    method.attacker.input_norm.register_forward_hook(lambda module, args, out: attacker_rows.append(args[0].detach()))
    method.iteration(data.retain_x[:b], data.retain_y[:b])
    assert [len(x) for x in forwards] == [b] * (1 + 2 * (1 + m))
    assert torch.equal(forwards[0], data.retain_x[:b])
    assert torch.equal(forwards[1], fx) and torch.equal(forwards[2 + m], vx)
    for copy in range(m):  # the noisy copies of the same batches
        assert 0 < (forwards[2 + copy] - fx).abs().max() < 0.05
        assert 0 < (forwards[3 + m + copy] - vx).abs().max() < 0.05
    assert len(attacker_rows) == 2
    onehot = torch.nn.functional.one_hot(torch.cat([fy, vy]), 10).float()
    for rows in attacker_rows:
        assert rows.shape[0] == 2 * b
        assert torch.equal(rows[:, -10:], onehot)


def test_after_the_switch_only_the_retain_batch_goes_through_the_defender(digits_classwise):
    """With `bn_after_switch` off (the SPEC.md reading) nothing but the retain batch is forwarded."""
    method = build_method("dau", {**FAST_DAU, "stop_iter": 1, "bn_after_switch": False})
    method.setup(digits_classwise.fresh_original(), digits_classwise.unlearn_data())
    data = digits_classwise.unlearn_data()
    method.iteration(data.retain_x[:32], data.retain_y[:32])
    sizes = []
    first_layer = next(m for m in method.model.modules() if isinstance(m, torch.nn.Conv2d))
    first_layer.register_forward_hook(lambda module, args, out: sizes.append(len(args[0])))
    logs = method.iteration(data.retain_x[:32], data.retain_y[:32])
    assert sizes == [32] and "attacker_loss" not in logs


def test_scheme_defaults_follow_the_reference(digits_random, digits_classwise):
    random_run = build_method("dau", FAST_DAU)
    random_run.setup(digits_random.fresh_original(), digits_random.unlearn_data())
    classwise_run = build_method("dau", FAST_DAU)
    classwise_run.setup(digits_classwise.fresh_original(), digits_classwise.unlearn_data())
    assert (random_run.defender_lr, random_run.switch_at) == (0.01, None)
    assert (classwise_run.defender_lr, classwise_run.switch_at, classwise_run.repair_lr) == (0.02, 30, 0.01)
    defaults = build_method("dau")
    assert (defaults.batch_size, defaults.num_epochs, defaults.use_softmax, defaults.attacker_pretrain_iters) == (
        256, 3, False, None)


@pytest.mark.parametrize("dataset, sparsity, classwise, expected", [  # lr, epochs, switch, rate after it
    ("cifar10", 0.0, False, (0.01, 3, None, 0.01)),  # random_script.sh
    ("cifar100", 0.0, False, (0.01, 5, None, 0.01)),
    ("cifar10", 0.95, False, (0.03, 3, None, 0.03)),
    ("cifar100", 0.95, False, (0.01, 5, None, 0.01)),
    ("cifar10", 0.0, True, (0.02, 3, 30, 0.01)),  # classwise_script.sh
    ("cifar100", 0.0, True, (0.02, 5, 30, 0.02)),
    ("cifar10", 0.95, True, (0.02, 3, 20, 0.01)),
    ("cifar100", 0.95, True, (0.02, 5, 20, 0.02)),
    ("fashion-mnist", 0.95, True, (0.02, 3, 20, 0.01)),  # other datasets: CIFAR-10's commands
])
def test_each_setting_takes_the_reference_command_written_for_it(digits_random, digits_classwise, dataset, sparsity,
                                                                 classwise, expected):
    import dataclasses

    from study.methods import method_class

    prepared = digits_classwise if classwise else digits_random
    data = dataclasses.replace(prepared.unlearn_data(), dataset=dataset, sparsity=sparsity)
    method = build_method("dau", {key: value for key, value in FAST_DAU.items() if key != "epochs"})
    method.setup(prepared.fresh_original(), data)
    assert (method.defender_lr, method.num_epochs, method.switch_at, method.repair_lr) == expected
    documented = method_class("dau").documented_defaults("class" if classwise else "random", dataset, sparsity)
    assert tuple(documented[key] for key in ("lr", "epochs", "stop_iter", "stop_unlearn_lr")) == expected


def test_the_default_pretraining_length_is_the_references_bounded_loop():
    """The reference pre-trains inside its epoch loop over the retain batches (10 epochs) and stops at
    1,000 iterations: 1,000 on CIFAR-10 (45,000 retain at batch 256), 360 on the proxy, 40 on digits."""
    from study.methods.dau.method import pretrain_length

    defaults = build_method("dau")
    assert defaults.pretrain_iters(45_000) == 1000
    assert defaults.pretrain_iters(9_000) == pretrain_length(10, 9_000, 256) == 360
    assert defaults.pretrain_iters(1_018) == 40
    assert build_method("dau", {"attacker_pretrain_epochs": 2}).pretrain_iters(1_018) == 8
    assert build_method("dau", {"attacker_pretrain_iters": 250}).pretrain_iters(1_018) == 250  # explicit wins
    assert build_method("dau", {"batch_size": 64}).pretrain_iters(9_000) == 1000  # 10 x 141 batches, capped


def test_each_run_starts_the_loaded_attacker_with_a_fresh_adam(digits_random):
    first = build_method("dau", FAST_DAU)
    first.setup(digits_random.fresh_original(), digits_random.unlearn_data())
    assert first.attacker_optimizer.state_dict()["state"] == {}
    first.run_epoch(0)
    assert first.attacker_optimizer.state_dict()["state"] != {}
    second = build_method("dau", FAST_DAU)
    second.setup(digits_random.fresh_original(), digits_random.unlearn_data())
    assert second.attacker_optimizer.state_dict()["state"] == {}
    from study.methods.dau.store import AttackerStore

    settings = second.attacker_settings(digits_random.config.seed, len(digits_random.splits.retain))
    loaded = AttackerStore(digits_random.shared_context(log=lambda s: None)).get(settings)
    assert all(torch.equal(a, loaded.state[k]) for k, a in second.attacker.state_dict().items())


def test_noisy_copies_in_chunks_match_one_forward_to_within_the_noise(digits_random):
    """copies_per_forward splits the clean batch and its copies into separate train-mode forwards.
    Outputs and features agree with one joint forward to within the noise; the sensitivity, a
    finite difference at that same scale, also picks up the batch statistics' difference between
    forwards, so it agrees on average (within 15%) and sample by sample in rank."""
    data = digits_random.unlearn_data()
    x, y = data.forget_x[:64], data.forget_y[:64]
    model = digits_random.fresh_original().train()
    results = {}
    for chunk in (None, 1, 2):
        with torch.no_grad():
            results[chunk] = attack_inputs(model, x, y, 10, 4, torch.Generator().manual_seed(0),
                                           pixel_std=data.pixel_std, copies_per_forward=chunk)
    scale = results[None].outputs.abs().max()
    for chunk in (1, 2):
        assert (results[chunk].outputs - results[None].outputs).abs().max() < 1e-3 * scale
        joint, split = results[None].sensitivity.flatten(), results[chunk].sensitivity.flatten()
        assert abs(split.mean() - joint.mean()) < 0.15 * joint.mean()
        assert torch.corrcoef(torch.stack([joint, split]))[0, 1] > 0.9
        features = results[None].features
        assert (results[chunk].features - features).abs().max() < 1e-3 * features.abs().max()


def test_detach_validation_takes_the_validation_outputs_out_of_the_defenders_gradient(digits_random):
    """With `detach_validation` the defender's unlearning loss has the gradient it would have if the
    validation outputs came from a frozen copy of the model; without it the validation branch adds
    gradient of its own (the reference moves validation outputs too)."""
    data = digits_random.unlearn_data()
    fx, fy, vx, vy = data.forget_x[:32], data.forget_y[:32], data.val_x[:32], data.val_y[:32]

    def gradient(detach: bool, frozen_validation: bool) -> torch.Tensor:
        method = build_method("dau", {**FAST_DAU, "detach_validation": detach, "gamma": 0.01})
        method.setup(digits_random.fresh_original(), data)
        method.attacker.eval()
        method.model.train()
        forget_in = method._inputs(fx, fy, torch.Generator().manual_seed(1))
        val_in = method._inputs(vx, vy, torch.Generator().manual_seed(2))
        if frozen_validation:
            val_in = val_in.detached()
        loss, _ = method.unlearning_loss(forget_in, val_in)
        method.optimizer.zero_grad()
        loss.backward()
        return torch.cat([p.grad.flatten() for p in method.model.parameters() if p.grad is not None])

    detached = gradient(detach=True, frozen_validation=False)
    assert torch.allclose(detached, gradient(detach=False, frozen_validation=True), atol=1e-7)
    assert not torch.allclose(detached, gradient(detach=False, frozen_validation=False), atol=1e-5)


def test_attacker_steps_update_the_attacker_that_many_times_per_defender_step(digits_random):
    data = digits_random.unlearn_data()
    for steps in (1, 3):
        method = build_method("dau", {**FAST_DAU, "attacker_steps": steps})
        method.setup(digits_random.fresh_original(), data)
        method.iteration(data.retain_x[:32], data.retain_y[:32])
        method.iteration(data.retain_x[:32], data.retain_y[:32])
        adam_steps = {int(state["step"]) for state in method.attacker_optimizer.state.values()}
        assert adam_steps == {2 * steps} and method.defender_iterations == 2


def test_bn_after_switch_forwards_forget_and_validation_without_gradients_before_the_retain_batch(digits_classwise):
    """The reference keeps forwarding the forget and validation batches after the class-wise switch;
    with `bn_after_switch` (the default) the batch-norm statistics see them as the reference's loop
    does, clean batch then its m noisy copies in one forward, before the retain batch, and only the
    retain batch carries gradient."""
    assert build_method("dau").params["bn_after_switch"] is True
    b, m = 16, 2
    data = digits_classwise.unlearn_data()
    runs = {}
    for flag in (False, True):
        method = build_method("dau", {**FAST_DAU, "batch_size": b, "noise_copies": m, "stop_iter": 0,
                                      "bn_after_switch": flag})
        method.setup(digits_classwise.fresh_original(), data)
        sizes, grads = [], []
        first_layer = next(x for x in method.model.modules() if isinstance(x, torch.nn.Conv2d))
        def record(module, args, out, sizes=sizes, grads=grads) -> None:
            sizes.append(len(args[0]))
            grads.append(torch.is_grad_enabled())

        first_layer.register_forward_hook(record)
        bn = next(x for x in method.model.modules() if isinstance(x, torch.nn.BatchNorm2d))
        before = bn.running_mean.clone()
        logs = method.iteration(data.retain_x[:b], data.retain_y[:b])
        runs[flag] = (sizes, grads, bn.running_mean - before, logs)
    sizes, grads, _, logs = runs[False]
    assert sizes == [b] and grads == [True] and "attacker_loss" not in logs
    sizes, grads, _, logs = runs[True]
    assert sizes == [b, m * b, b, m * b, b] and grads == [False] * 4 + [True]
    assert "attacker_loss" not in logs  # the attacker stays still: beta is 0 after the switch
    assert not torch.allclose(runs[True][2], runs[False][2])  # the statistics moved differently


def test_forget_and_validation_batches_are_augmented_in_classwise_forgetting_only(digits_random, digits_classwise):
    """The reference takes forget and validation images as stored for random forgetting (test
    transforms) and augments them like the retain set's for class-wise forgetting (CIFAR)."""
    import dataclasses

    def stored_rows(batch, pool):  # how many rows of the batch are rows of the pool, unchanged
        return int((batch.flatten(1)[:, None] == pool.flatten(1)[None]).all(dim=2).any(dim=1).sum())

    for prepared, augmented in ((digits_random, False), (digits_classwise, True)):
        data = dataclasses.replace(prepared.unlearn_data(), augmentation="crop_flip")
        method = build_method("dau", FAST_DAU)
        method.setup(prepared.fresh_original(), data)
        fx, _ = method.forget_stream.next()
        vx, _ = method.val_stream.next()
        for batch, pool in ((fx, data.forget_x), (vx, data.val_x)):
            if augmented:
                assert stored_rows(batch, pool) < len(batch) // 2
            else:
                assert stored_rows(batch, pool) == len(batch)
