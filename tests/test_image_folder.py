"""CIFAR from an image folder or a zip of one: layout, label order, the decode cache, bad input."""
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from study.core import image_folder
from study.core.data import load_dataset
from study.core.errors import UserError
from tests.cli import run_in_process

SHARED_ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg" / "cifar10-jpeg.zip"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def png_bytes(pixels: np.ndarray, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buffer, format="PNG")  # lossless, so pixels can be checked exactly
    return buffer.getvalue()


def image_files(per_class: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """{'train/<class>/<n>.png': HxWx3 pixels} for `per_class` images of each CIFAR-10 class."""
    rng = np.random.default_rng(seed)
    files = {}
    for split, count in per_class.items():
        for name in CIFAR10_CLASSES:
            for n in range(count):
                files[f"{split}/{name}/{n:04d}.png"] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return files


def write_zip(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in files.items():
            archive.writestr(prefix + name, payload)
    return path


@pytest.fixture()
def small_files():
    return image_files({"train": 3, "test": 2})


def test_zip_is_read_in_class_order_and_cached(tmp_path, small_files, monkeypatch):
    archive = write_zip(tmp_path / "c10.zip", {k: png_bytes(v) for k, v in small_files.items()})
    data = load_dataset("cifar10", archive, cache_root=tmp_path / "cache")
    assert data.train_x.shape == (30, 3, 32, 32) and data.test_x.shape == (20, 3, 32, 32)
    assert data.train_y.tolist() == [label for label in range(10) for _ in range(3)]  # alphabetical = CIFAR-10's
    assert data.augmentation == "crop_flip" and "sha256:" in data.source
    # the first training image is airplane/0000, restored from its normalised channel 0
    restored = (data.train_x[0, 0] * 0.2470 + 0.4914) * 255
    assert torch.allclose(restored, torch.as_tensor(small_files["train/airplane/0000.png"][..., 0]).float(), atol=1e-3)
    assert len(list((tmp_path / "cache" / "datasets").glob("*.npz"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the arrays are cached")

    monkeypatch.setattr(image_folder, "_decode", no_decoding)
    again = load_dataset("cifar10", archive, cache_root=tmp_path / "cache")
    assert torch.equal(again.train_x, data.train_x) and torch.equal(again.test_y, data.test_y)


def test_folder_and_wrapped_zip_give_the_same_arrays(tmp_path, small_files):
    encoded = {k: png_bytes(v) for k, v in small_files.items()}
    folder = tmp_path / "folder"
    for name, payload in encoded.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(payload)
    (folder / "README.txt").write_text("files beside train/ and test/ are ignored")
    wrapped = write_zip(tmp_path / "wrapped.zip", encoded, prefix="CIFAR-10-images/")
    from_folder = load_dataset("cifar10", folder, cache_root=tmp_path / "cache")
    from_zip = load_dataset("cifar10", wrapped, cache_root=tmp_path / "cache")
    assert torch.equal(from_folder.train_x, from_zip.train_x) and torch.equal(from_folder.test_y, from_zip.test_y)


def test_a_damaged_cache_entry_is_decoded_again(tmp_path, small_files):
    archive = write_zip(tmp_path / "c10.zip", {k: png_bytes(v) for k, v in small_files.items()})
    first = load_dataset("cifar10", archive, cache_root=tmp_path / "cache")
    (entry,) = (tmp_path / "cache" / "datasets").glob("*.npz")
    entry.write_bytes(b"truncated")
    second = load_dataset("cifar10", archive, cache_root=tmp_path / "cache")
    assert torch.equal(first.train_x, second.train_x)


@pytest.mark.parametrize("case,expected", [
    ("missing", "does not exist"),
    ("not_a_zip", "not a readable zip"),
    ("no_test", "no test/ at its top"),
    ("other_size", "train/bird/0001.png is a 16x16 RGB image; expected 32x32 RGB"),
    ("other_mode", "test/cat/0000.png is a 32x32 L image"),
    ("unreadable", "train/dog/0002.png is not a readable image"),
    ("class_missing_from_test", "class folder test/truck/ is missing"),
    ("nine_classes", "9 class folders under train/, expected 10"),
])
def test_bad_archives_end_in_one_clear_error(tmp_path, small_files, case, expected):
    files = dict(small_files)
    path = tmp_path / "bad.zip"
    if case == "not_a_zip":
        path.write_bytes(b"this is not a zip")
    elif case == "no_test":
        write_zip(path, {k: png_bytes(v) for k, v in files.items() if k.startswith("train/")})
    elif case == "other_size":
        write_zip(path, {**{k: png_bytes(v) for k, v in files.items()},
                         "train/bird/0001.png": png_bytes(np.zeros((16, 16, 3), np.uint8))})
    elif case == "other_mode":
        write_zip(path, {**{k: png_bytes(v) for k, v in files.items()},
                         "test/cat/0000.png": png_bytes(np.zeros((32, 32), np.uint8), mode="L")})
    elif case == "unreadable":
        write_zip(path, {**{k: png_bytes(v) for k, v in files.items()}, "train/dog/0002.png": b"\x89PNG broken"})
    elif case == "class_missing_from_test":
        write_zip(path, {k: png_bytes(v) for k, v in files.items() if not k.startswith("test/truck/")})
    elif case == "nine_classes":
        write_zip(path, {k: png_bytes(v) for k, v in files.items() if "/truck/" not in k})
    with pytest.raises(UserError, match=expected.replace(".", r"\.")):
        load_dataset("cifar10", path, cache_root=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.npz")), "a failed decode left a cache entry"


def test_run_on_an_image_folder_zip_and_one_line_on_a_bad_one(tmp_path, small_files):
    """`study.run --dataset cifar10 --data-root <zip>` end to end on a small zip; a bad zip ends in one line."""
    files = image_files({"train": 12, "test": 4})
    archive = write_zip(tmp_path / "c10.zip", {k: png_bytes(v) for k, v in files.items()})
    common = ("--dataset", "cifar10", "--model", "cnn", "--val-size", "10", "--select-size", "10", "--epochs", "1",
              "--method", "ft", "-p", "epochs=1", "--threads", "1", "--cache-dir", str(tmp_path / "cache"))
    result = run_in_process("study.run", *common, "--data-root", str(archive), "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "metrics.json").exists()
    broken = write_zip(tmp_path / "broken.zip", {k: png_bytes(v) for k, v in files.items() if k.startswith("test/")})
    result = run_in_process("study.run", *common, "--data-root", str(broken), "--out", str(tmp_path / "run2"))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert "no train/ at its top" in result.stderr and not (tmp_path / "run2").exists()


@pytest.mark.skipif(not SHARED_ZIP.exists(), reason=f"the shared CIFAR-10 JPEG copy is not at {SHARED_ZIP}")
def test_a_few_hundred_images_of_the_shared_cifar10_zip(tmp_path):
    """250 real JPEGs taken from the shared archive, repacked as a small zip: decoded as CIFAR-10."""
    with zipfile.ZipFile(SHARED_ZIP) as source:
        names = [n for n in source.namelist() if not n.endswith("/")]
        picked = [n for name in CIFAR10_CLASSES for split, count in (("train", 20), ("test", 5))
                  for n in sorted(x for x in names if x.startswith(f"{split}/{name}/"))[:count]]
        small = write_zip(tmp_path / "subset.zip", {n: source.read(n) for n in picked})
    data = load_dataset("cifar10", small, cache_root=tmp_path / "cache")
    assert data.train_x.shape == (200, 3, 32, 32) and data.test_x.shape == (50, 3, 32, 32)
    assert data.train_y.bincount().tolist() == [20] * 10
    # real photographs after CIFAR-10's normalisation: mean near 0, spread near 1, not constant
    assert abs(float(data.train_x.mean())) < 0.5 and 0.5 < float(data.train_x.std()) < 1.5
    shutil.rmtree(tmp_path / "cache")
