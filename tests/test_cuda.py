"""The CUDA path, where a GPU is present (bench/gpu_check.sh runs these on a lent GPU machine).

Every registered method runs once on digits on the GPU (the suite's fast settings), class-wise
DAU runs through its switch, and a pruned original keeps its masks there: a tensor left on the
CPU inside any method shows up here and nowhere on a CPU-only machine.
"""
import pytest
import torch

from study.core.cache import ArtifactCache
from study.core.pruning import masks_of, prunable_modules
from study.engine.runner import run_method
from study.experiment.config import experiment_from_preset
from study.experiment.prepare import prepare
from study.methods import build_method
from study.methods.scissorhands import gem_project
from tests.conftest import FAST_EPOCHS, FAST_METHOD_PARAMS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _prepared(tmp_path_factory, **overrides):
    cache = ArtifactCache(tmp_path_factory.mktemp("cuda-cache"))
    return prepare(experiment_from_preset("digits", epochs=FAST_EPOCHS, **overrides), cache, device="cuda",
                   log=lambda s: None)


@pytest.fixture(scope="module")
def digits_on_gpu(tmp_path_factory):
    return _prepared(tmp_path_factory)


def _check_on_gpu(result) -> None:
    assert next(result.model.parameters()).is_cuda
    assert all(torch.isfinite(torch.tensor(result.metrics[k])) for k in ("UA", "RA", "TA", "MIA-Efficacy"))


def test_the_original_trains_and_evaluates_on_the_gpu(digits_on_gpu):
    assert next(digits_on_gpu.original.parameters()).is_cuda
    assert digits_on_gpu.original_metrics["TA"] > 80


@pytest.mark.parametrize("method", sorted(FAST_METHOD_PARAMS))
def test_every_method_runs_on_the_gpu(digits_on_gpu, method):
    _check_on_gpu(run_method(digits_on_gpu, build_method(method, FAST_METHOD_PARAMS[method]), log=lambda s: None))


def test_classwise_dau_runs_through_its_switch_on_the_gpu(tmp_path_factory):
    prepared = _prepared(tmp_path_factory, forget="class:3")
    params = {**FAST_METHOD_PARAMS["dau"], "epochs": 2, "stop_iter": 2}
    _check_on_gpu(run_method(prepared, build_method("dau", params), log=lambda s: None))


@pytest.mark.parametrize("method", ["dau", "salun", "scissorhands"])
def test_a_pruned_original_stays_pruned_on_the_gpu(tmp_path_factory, method):
    prepared = _prepared(tmp_path_factory, sparsity=0.9)
    result = run_method(prepared, build_method(method, FAST_METHOD_PARAMS[method]), log=lambda s: None)
    _check_on_gpu(result)
    masks = masks_of(prepared.original)
    for layer, module in prunable_modules(result.model):
        assert (module.weight[masks[layer] == 0] == 0).all(), f"{method} revived pruned weights of {layer}"


def test_the_gem_projection_returns_a_gradient_on_the_gradients_device():
    gradient = torch.tensor([1.0, -2.0], device="cuda")
    memories = torch.tensor([[0.0, 1.0]], device="cuda")  # conflicts: memories @ gradient = -2
    projected = gem_project(gradient, memories)
    assert projected.is_cuda
    assert (memories @ projected >= -1e-3).all()
