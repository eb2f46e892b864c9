import torch
import torch.nn.functional as F

from study.core.models import build_model
from study.core.pruning import apply_masks, masks_of, omp_prune, plain_state_dict, prunable_modules, sparsity_of


def _prunable_count(model):
    return sum(m.weight.numel() for _, m in prunable_modules(model))


def test_exact_sparsity_and_survives_training():
    model = build_model("cnn", 1, 10, seed=0)
    total = _prunable_count(model)
    omp_prune(model, 0.9)
    assert sum(int((m.weight == 0).sum()) for _, m in prunable_modules(model)) == round(0.9 * total)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=5e-4)
    for _ in range(3):
        loss = F.cross_entropy(model(torch.randn(16, 1, 8, 8)), torch.randint(0, 10, (16,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert sum(int((m.weight == 0).sum()) for _, m in prunable_modules(model)) >= round(0.9 * total)
    masks = masks_of(model)
    for name, module in prunable_modules(model):
        assert (module.weight[masks[name] == 0] == 0).all()


def test_global_ranking_prunes_smallest_magnitudes():
    model = build_model("cnn", 1, 10, seed=0)
    magnitudes = torch.cat([m.weight.detach().abs().flatten() for _, m in prunable_modules(model)])
    threshold = magnitudes.sort().values[round(0.5 * len(magnitudes)) - 1]
    omp_prune(model, 0.5)
    kept = torch.cat([m.weight.detach().abs().flatten() for _, m in prunable_modules(model)])
    assert (kept[kept != 0] >= threshold).all()


def test_plain_state_dict_roundtrip_with_masks():
    model = build_model("cnn", 1, 10, seed=0)
    omp_prune(model, 0.95)
    fresh = build_model("cnn", 1, 10, seed=1)
    fresh.load_state_dict(plain_state_dict(model))
    apply_masks(fresh, masks_of(model))
    x = torch.randn(4, 1, 8, 8)
    model.eval(), fresh.eval()
    assert torch.allclose(model(x), fresh(x))
    assert abs(sparsity_of(fresh) - 0.95) < 1e-3


def test_dense_is_untouched():
    model = build_model("cnn", 1, 10, seed=0)
    omp_prune(model, 0.0)
    assert masks_of(model) == {}
