"""The CUDA path, where a GPU is present (bench/gpu_check.sh runs these on a lent GPU machine)."""
import pytest
import torch

from study.core.cache import ArtifactCache
from study.engine.runner import run_method
from study.experiment.config import experiment_from_preset
from study.experiment.prepare import prepare
from study.methods import build_method
from tests.conftest import FAST_EPOCHS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def digits_on_gpu(tmp_path_factory):
    cache = ArtifactCache(tmp_path_factory.mktemp("cuda-cache"))
    return prepare(experiment_from_preset("digits", epochs=FAST_EPOCHS), cache, device="cuda", log=lambda s: None)


def test_the_original_trains_and_evaluates_on_the_gpu(digits_on_gpu):
    assert next(digits_on_gpu.original.parameters()).is_cuda
    assert digits_on_gpu.original_metrics["TA"] > 80


@pytest.mark.parametrize("method, params", [
    ("dau", {"attacker_pretrain_iters": 20, "epochs": 1, "batch_size": 64, "noise_copies": 2}),
    ("ft", {"epochs": 1}), ("salun", {"epochs": 1}), ("iu", {"num_samples": 64}),
])
def test_methods_run_on_the_gpu(digits_on_gpu, method, params):
    result = run_method(digits_on_gpu, build_method(method, params), log=lambda s: None)
    assert next(result.model.parameters()).is_cuda
    assert all(torch.isfinite(torch.tensor(result.metrics[k])) for k in ("UA", "RA", "TA", "MIA-Efficacy"))
