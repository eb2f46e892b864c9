"""--precision: bf16 autocast only where the device runs it natively, the same code path in both
settings, fp32 kept where bf16 would change what is computed (DAU's sensitivity)."""
import pytest
import torch

from study.core import precision
from study.core.cache import ArtifactCache
from study.core.errors import UserError
from study.engine.runner import run_method
from study.experiment.config import experiment_from_preset
from study.experiment.prepare import prepare
from study.methods import build_method
from study.methods.dau.attacker import attack_inputs
from tests.conftest import FAST_EPOCHS, FAST_METHOD_PARAMS


@pytest.fixture
def native_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_bf16"}))


def test_resolution_and_the_line_that_says_why(monkeypatch):
    said = []
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
    assert precision.resolve_precision("bf16", "cpu", said.append) == "fp32"
    assert "neither AVX-512 BF16 nor AMX" in said[-1]
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert precision.resolve_precision("bf16", "cpu", said.append) == "bf16"
    assert precision.resolve_precision("fp32", "cpu") == "fp32"
    monkeypatch.setattr(precision, "AUTO_PICKS_BF16", False)
    assert precision.resolve_precision("auto", "cpu", said.append) == "fp32" and "auto" in said[-1]
    monkeypatch.setattr(precision, "AUTO_PICKS_BF16", True)
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    with pytest.raises(UserError, match="unknown precision 'fp8'"):
        precision.resolve_precision("fp8", "cpu")


@pytest.fixture(scope="module")
def digits_bf16(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
        return prepare(experiment_from_preset("digits", epochs=FAST_EPOCHS, precision="bf16"),
                       ArtifactCache(tmp_path_factory.mktemp("bf16-cache")), log=lambda m: None)


def autocast_seen(model: torch.nn.Module) -> list[bool]:
    """Whether each forward of `model`'s head (every forward reaches it) ran under CPU autocast."""
    seen: list[bool] = []
    model.head.register_forward_hook(lambda *args: seen.append(torch.is_autocast_enabled("cpu")))
    return seen


@pytest.mark.parametrize("name", ["ft", "dau"])
def test_both_precisions_take_the_same_path(digits_random, digits_bf16, name):
    assert digits_bf16.config.precision == "bf16" and digits_random.config.precision == "fp32"
    assert digits_bf16.original_key["precision"] == "bf16" and "precision" not in digits_random.original_key
    for prepared, expected in ((digits_random, False), (digits_bf16, True)):
        model = prepared.fresh_original()
        seen = autocast_seen(model)
        method = build_method(name, FAST_METHOD_PARAMS[name])
        method.unlearn(model, prepared.unlearn_data(log=lambda m: None))
        assert expected in seen and (True not in seen) == (not expected)
        metrics = prepared.evaluate(method.model)
        assert all(torch.isfinite(torch.tensor(metrics[m])) for m in ("UA", "RA", "TA", "MIA-Efficacy"))
    # a bf16 original trained to about the fp32 one's test accuracy on digits
    assert abs(digits_bf16.original_metrics["TA"] - digits_random.original_metrics["TA"]) < 3.0


def test_dau_sensitivity_stays_fp32_under_bf16(digits_random):
    model = digits_random.fresh_original().train()
    x, y = digits_random.data.train_x[:8], digits_random.data.train_y[:8]
    seen = autocast_seen(precision.set_model_precision(model, "bf16"))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # even inside an outer bf16 region
        inputs = attack_inputs(model, x, y, 10, 3, torch.Generator().manual_seed(0))
    assert seen and not any(seen) and inputs.sensitivity.dtype == torch.float32
    assert float(inputs.sensitivity.detach().abs().sum()) > 0


def test_only_the_forward_runs_in_bf16_not_the_backward_or_the_step(digits_bf16):
    """Autocast around a whole unlearning epoch (backward and optimiser step included) broke FT on the
    proxy within two epochs; the model's forward alone runs under it, and hands back fp32 logits."""
    model = digits_bf16.fresh_original()
    forwards = autocast_seen(model)
    method = build_method("ft", {"epochs": 2})
    method.start(model, digits_bf16.unlearn_data(log=lambda m: None))
    steps, step = [], method.optimizer.step
    method.optimizer.step = lambda *a, **k: (steps.append(torch.is_autocast_enabled("cpu")), step(*a, **k))[1]
    method.epoch(0)
    assert forwards and all(forwards) and steps and not any(steps)
    assert method.model(digits_bf16.data.test_x[:4]).dtype == torch.float32
    assert prepare_free_accuracy(method.model, digits_bf16) > 90.0


def prepare_free_accuracy(model, prepared) -> float:
    model.eval()
    with torch.no_grad():
        predicted = model(prepared.data.test_x).argmax(1)
    return 100.0 * float((predicted == prepared.data.test_y).float().mean())


def test_one_shot_methods_stay_fp32(digits_bf16):
    model = digits_bf16.fresh_original()
    seen = autocast_seen(model)
    build_method("iu", FAST_METHOD_PARAMS["iu"]).unlearn(model, digits_bf16.unlearn_data(log=lambda m: None))
    assert seen and not any(seen)


def test_a_row_records_the_precision_it_ran(digits_bf16):
    result = run_method(digits_bf16, build_method("ga", FAST_METHOD_PARAMS["ga"]), log=lambda m: None)
    assert result.metrics["UA"] >= 0
    from study.engine.seed_runs import evaluation_row

    row = evaluation_row(digits_bf16, "ga", FAST_METHOD_PARAMS["ga"], {"seed": 0})
    assert row["precision"] == "bf16"


def test_the_precision_benchmark_pairs_seeds_and_judges_each_metric(tmp_path, monkeypatch, native_bf16):
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "bench"))
    bench = importlib.import_module("precision")
    out = tmp_path / "precision"
    args = ["--preset", "digits", "--seeds", "0", "1", "--methods", "ga", "--epochs", "2", "--threads", "1",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    assert bench.main(args) == 0
    runs = (out / "runs.csv").read_text()
    assert runs.count(",fp32,") == runs.count(",bf16,") == 6  # original, Retrain, GA on two seeds
    table = (out / "table.md").read_text()
    assert "| ga | 2 |" in table and "within fp32's seed spread" in table and "(in progress)" not in table
    assert bench.main(args) == 0 and (out / "runs.csv").read_text() == runs  # resumes: nothing run again
    monkeypatch.setattr(bench, "bf16_support", lambda device: (False, "no bf16 here"))
    with pytest.raises(UserError, match="no bf16 to compare on this machine: no bf16 here"):
        bench.main(args)
