import pytest

from study.core.cache import ArtifactCache


def test_second_call_reuses_the_entry(tmp_path):
    cache = ArtifactCache(tmp_path)
    calls = []

    def build(folder):
        calls.append(1)
        (folder / "model.pt").write_text("weights")

    first, built_first = cache.get_or_build({"a": 1}, build)
    second, built_second = cache.get_or_build({"a": 1}, build)
    assert first == second and built_first and not built_second and len(calls) == 1
    assert (first / "key.json").exists()


def test_crash_while_building_leaves_no_entry(tmp_path):
    cache = ArtifactCache(tmp_path)

    def crash(folder):
        (folder / "model.pt").write_text("half")
        raise RuntimeError("killed mid-save")

    with pytest.raises(RuntimeError):
        cache.get_or_build({"a": 2}, crash)
    assert not cache.has({"a": 2})
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging")]
    folder, built = cache.get_or_build({"a": 2}, lambda f: (f / "model.pt").write_text("ok"))
    assert built and (folder / "model.pt").read_text() == "ok"


def test_original_and_retrain_metrics_are_evaluated_once_per_split(digits_random, cache_dir, monkeypatch):
    import study.experiment.prepare as pipeline
    from study.experiment.config import experiment_from_preset
    from tests.conftest import FAST_EPOCHS

    def must_not_evaluate(*args, **kwargs):
        raise AssertionError("the cached evaluation was recomputed")

    monkeypatch.setattr(pipeline, "evaluate_model", must_not_evaluate)
    config = experiment_from_preset("digits", epochs=FAST_EPOCHS)
    again = pipeline.prepare(config, ArtifactCache(cache_dir), log=lambda m: None)
    assert again.original_metrics == digits_random.original_metrics
    assert again.retrain_metrics == digits_random.retrain_metrics
    assert again.original_metrics["avg_disparity"] > 0

    # another forget set is another evaluation of the same original model
    with pytest.raises(AssertionError, match="recomputed"):
        pipeline.prepare(experiment_from_preset("digits", epochs=FAST_EPOCHS, forget="random:20"),
                         ArtifactCache(cache_dir), log=lambda m: None)


def test_a_corrupted_cached_evaluation_is_one_clear_error(digits_random, cache_dir, tmp_path):
    import json
    import shutil

    from study.core.errors import UserError
    from study.experiment.config import experiment_from_preset
    from study.experiment.prepare import prepare
    from tests.conftest import FAST_EPOCHS

    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    evaluations = [f for f in copy.glob("*/metrics.json")
                   if json.loads((f.parent / "key.json").read_text()).get("role") == "evaluation"]
    assert evaluations
    for metrics_file in evaluations:
        metrics_file.write_text('{"UA": ')
    with pytest.raises(UserError, match="cached evaluation .* is corrupted"):
        prepare(experiment_from_preset("digits", epochs=FAST_EPOCHS), ArtifactCache(copy), log=lambda m: None)
