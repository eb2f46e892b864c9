"""The CIFAR-10 presets on a small image-folder zip: the recipe's augmentation reaches training and
every method, the proxy's split rules hold, and the measuring benchmark writes its table."""
import importlib
from pathlib import Path

import pytest

from study.core.cache import ArtifactCache
from study.core.errors import UserError
from study.experiment.config import resolve_experiment
from study.experiment.prepare import prepare
from tests.test_image_folder import image_files, png_bytes, write_zip

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(model="cnn", train_size=60, val_size=10, select_size=10, epochs=1)


@pytest.fixture(scope="module")
def small_zip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("c10")
    files = image_files({"train": 10, "test": 3}, seed=1)
    return write_zip(folder / "c10.zip", {k: png_bytes(v) for k, v in files.items()})


def test_the_proxy_preset_is_the_measured_recipe():
    config = resolve_experiment("cifar10-proxy", None, {})
    assert (config.dataset, config.model, config.train_size, config.recipe.epochs) == ("cifar10", "resnet18-narrow",
                                                                                      10000, 20)
    assert config.recipe.augmentation == "none" and config.val_size == config.select_size == 2000
    paper = resolve_experiment("cifar10", None, {})
    assert paper.model == "resnet18" and paper.train_size is None and paper.recipe.augmentation is None


@pytest.mark.parametrize("augmentation,expected", [(None, "none"), ("crop_flip", "crop_flip")])
def test_the_recipes_augmentation_reaches_the_methods(small_zip, tmp_path, augmentation, expected):
    config = resolve_experiment("cifar10-proxy", None, {**TINY, "augmentation": augmentation,
                                                        "data_root": str(small_zip)})
    prepared = prepare(config, ArtifactCache(tmp_path / "cache"), log=lambda m: None)
    assert prepared.data.augmentation == expected == prepared.unlearn_data().augmentation
    splits = prepared.splits
    assert len(splits.retain) + len(splits.forget) == 60 and len(splits.val) == 10 and len(splits.select) == 10


def test_augmentation_is_part_of_the_model_key(small_zip, tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    keys = [prepare(resolve_experiment("cifar10-proxy", None, {**TINY, "augmentation": a, "data_root": str(small_zip)}),
                    cache, log=lambda m: None).original_key for a in ("none", "crop_flip")]
    assert keys[0] != keys[1] and "sha256:" in keys[0]["data"]


def test_an_unknown_augmentation_is_one_clear_error():
    with pytest.raises(UserError, match="unknown augmentation 'mixup'"):
        resolve_experiment("cifar10-proxy", None, {"augmentation": "mixup"}).recipe.validate()


def test_the_recipe_benchmark_measures_and_judges_a_candidate(small_zip, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    bench = importlib.import_module("cifar10_proxy_recipe")
    monkeypatch.setattr(bench, "CANDIDATES", {"tiny": {**TINY, "augmentation": "none"}})
    out = tmp_path / "recipe"
    args = ["--data-root", str(small_zip), "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--threads", "1"]
    assert bench.main(args) == 0
    table = (out / "table.md").read_text()
    assert "| tiny | cnn | 60 | none | 1 |" in table
    assert "train acc < 99" in table  # one epoch on random pixels fits nothing: the verdict says so
    assert bench.main(args) == 0  # resumes: the kept row is not measured again
    assert (out / "runs.csv").read_text().count("\ntiny,") == 1
