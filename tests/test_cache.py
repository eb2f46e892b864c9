import pytest

from study.cache import ArtifactCache


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
