"""Each rival as its authors run it: one test per behaviour the 2026-12-06 reading changed, and the
two methods nearest DAU's idea (ReGUn, AMUN) on digits."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from study.engine.runner import run_method
from study.methods import build_method
from study.methods.amun import nearest_adversarial
from study.methods.baselines import random_labels
from study.methods.lotus import sampled_one_hot
from study.methods.regun import class_matched_rows, reference_target


def test_rl_relabelling_is_uniform_so_some_forget_samples_keep_their_class():
    labels = torch.arange(10).repeat(1000)
    generator = torch.Generator().manual_seed(0)
    uniform = random_labels(labels, 10, generator, "uniform")
    kept = float((uniform == labels).float().mean())
    assert 0.08 < kept < 0.12  # about 1 in C, as the authors' torch.randint over all classes
    assert bool((random_labels(labels, 10, generator, "wrong") != labels).all())


def test_rl_passes_over_the_relabelled_forget_set_then_the_retain_set(digits_random):
    data = digits_random.unlearn_data()
    method = build_method("rl")
    assert (method.lr, method.batch_size, method.epochs) == (0.013, 256, 10)
    method.setup(digits_random.fresh_original(), data)
    (fx, _), (rx, ry) = method.epoch_passes(0)
    assert torch.equal(fx, data.forget_x) and torch.equal(rx, data.retain_x) and torch.equal(ry, data.retain_y)
    mixed = build_method("rl", {"order": "mixed"})
    mixed.setup(digits_random.fresh_original(), data)
    assert len(mixed.epoch_passes(0)) == 1


def test_neggrad_plus_runs_plain_sgd_with_the_authors_alpha(digits_random):
    method = build_method("neggrad+")
    method.setup(digits_random.fresh_original(), digits_random.unlearn_data())
    group = method.optimizer.param_groups[0]
    assert method.alpha == 0.9999 and group["momentum"] == 0.0 and group["weight_decay"] == 0.0


def test_salun_leaves_masked_out_weights_exactly_where_they_were(digits_random):
    result_method = build_method("salun", {"epochs": 1, "mask_ratio": 0.3})
    original = digits_random.fresh_original()
    start = {name: p.detach().clone() for name, p in original.named_parameters()}
    result_method.unlearn(original, digits_random.unlearn_data())
    moved = frozen = 0
    for (p, mask, _), (name, _) in zip(result_method.saliency_masks, original.named_parameters()):
        assert torch.equal(p.detach()[mask == 0], start[name][mask == 0]), name  # weight decay did not shrink them
        moved += int((p.detach()[mask == 1] != start[name][mask == 1]).sum())
        frozen += int((mask == 0).sum())
    assert moved > 0 and frozen > 0


def test_scrub_follows_the_large_scale_configuration_and_its_rate_drops_after_epoch_3():
    method = build_method("scrub", {"epochs": 6})
    assert (method.epochs, method.max_epochs, method.batch_size, method.forget_batch_size) == (6, 2, 256, 512)
    assert build_method("scrub").epochs == 3
    rates = [method.epoch_lr(e) for e in range(6)]
    assert rates[:3] == [5e-4] * 3 and abs(rates[3] - 5e-5) < 1e-12 and abs(rates[5] - 5e-6) < 1e-12
    assert build_method("scrub", {"lr_decay": False}).epoch_lr(5) == 5e-4


def test_scrub_min_step_uses_one_student_forward(digits_random):
    method = build_method("scrub", {"epochs": 1, "max_epochs": 0, "batch_size": 64})
    data = digits_random.unlearn_data()
    method.setup(digits_random.fresh_original(), data)
    calls = []
    method.model.register_forward_hook(lambda *args: calls.append(1))
    method.run_epoch(0)
    assert len(calls) == -(-len(data.retain_x) // 64)


def test_sfr_on_l1_sparse_and_lotus_defaults_are_the_authors():
    from study.methods import method_class

    assert build_method("sfr-on").batch_size == 128
    l1 = build_method("l1-sparse")
    assert (l1.gamma, l1.batch_size) == (1e-4, 256)
    lotus = method_class("lotus")
    assert lotus.documented_defaults("class")["alpha"] == 32.0 and lotus.documented_defaults("random")["alpha"] == 8.0


def test_lotus_resolves_alpha_by_scheme_and_draws_retain_targets(digits_random, digits_classwise):
    for prepared, slope in ((digits_random, 8.0), (digits_classwise, 32.0)):
        method = build_method("lotus", {"epochs": 1})
        method.setup(prepared.fresh_original(), prepared.unlearn_data())
        assert method.slope == slope
    logits = torch.tensor([[0.0, 0.0]]).repeat(4000, 1)  # a fair coin: a draw, not the argmax
    drawn = sampled_one_hot(logits, torch.Generator().manual_seed(0))
    assert drawn.sum(1).eq(1).all() and 0.45 < float(drawn[:, 0].mean()) < 0.55


def test_regun_target_is_the_mean_held_out_softmax_and_class_matching_matches():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    target = reference_target(logits, 1.0, "mean_probs")
    assert torch.allclose(target, torch.tensor([0.5, 0.5]))
    assert torch.allclose(reference_target(torch.tensor([[1.0, 0.0]]), 2.0, "mean_logits"),
                          F.softmax(torch.tensor([0.5, 0.0]), dim=0))
    heldout = torch.tensor([0, 0, 1, 1, 2])
    rows = class_matched_rows(torch.tensor([1, 2, 0, 1]), heldout, torch.Generator().manual_seed(0))
    assert heldout[rows].tolist() == [1, 2, 0, 1]


def test_regun_pulls_forget_outputs_toward_held_out_outputs(digits_random):
    data = digits_random.unlearn_data()
    original = digits_random.fresh_original().eval()
    with torch.no_grad():
        target = F.softmax(original(data.val_x), 1).mean(0)
        before = F.kl_div(F.log_softmax(original(data.forget_x), 1), target.expand(len(data.forget_x), -1),
                          reduction="batchmean").item()
    result = run_method(digits_random, build_method("regun", {"epochs": 3, "retain_weight": 0.3}), log=lambda s: None)
    result.model.eval()
    with torch.no_grad():
        after = F.kl_div(F.log_softmax(result.model(data.forget_x), 1), target.expand(len(data.forget_x), -1),
                         reduction="batchmean").item()
    assert after < before


def test_amun_adversarial_examples_flip_the_prediction_within_the_radius_and_pixel_range(digits_random):
    data = digits_random.unlearn_data()
    model = digits_random.fresh_original().eval()
    low, high = data.pixel_bounds()
    x, y = data.forget_x[:32], data.forget_y[:32]
    adv, labels, logs = nearest_adversarial(model, x, y, 0.1, 20, 0.1, 6, low, high)
    flipped = labels != y
    assert logs["adversarial_flipped"] > 0.5
    with torch.no_grad():
        assert torch.equal(model(adv).argmax(1)[flipped], labels[flipped])
    assert bool((adv >= low - 1e-6).all() and (adv <= high + 1e-6).all())
    radius = (adv - x).flatten(1).norm(dim=1)
    assert float(radius.max()) <= 0.1 * 2 ** 5 + 1e-4


def test_amun_streams_retain_forget_and_one_adversarial_image_per_forget_sample(digits_random):
    data = digits_random.unlearn_data()
    method = build_method("amun", {"epochs": 1, "attack_steps": 5, "max_rounds": 2})
    method.setup(digits_random.fresh_original(), data)
    n_retain, n_forget = len(data.retain_x), len(data.forget_x)
    assert len(method.stream_x) == n_retain + 2 * n_forget
    assert int(method.stream_adversarial.sum()) == n_forget
