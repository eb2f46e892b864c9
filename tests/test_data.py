import tarfile

import numpy as np
import pytest
import torch

from study.core.data import augment_batch, load_dataset, write_cifar_like
from study.core.errors import UserError


def _fake_cifar(rng, n, classes):
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, classes, size=n)
    return images, labels


@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_pickle_folder_roundtrip(tmp_path, name, classes):
    rng = np.random.default_rng(0)
    images, labels = _fake_cifar(rng, 25, classes)
    test_images, test_labels = _fake_cifar(rng, 7, classes)
    write_cifar_like(tmp_path, name, images, labels, test_images, test_labels)
    data = load_dataset(name, tmp_path)
    assert data.train_x.shape == (25, 3, 32, 32) and data.test_x.shape == (7, 3, 32, 32)
    assert data.num_classes == classes and data.augmentation == "crop_flip"
    assert torch.equal(data.train_y, torch.as_tensor(labels))
    # pixel (0, 0, 0) of image 0 normalised back to its byte value
    mean, std = (0.4914, 0.2470) if name == "cifar10" else (0.5071, 0.2673)
    restored = (data.train_x[0, 0, 0, 0] * std + mean) * 255
    assert abs(float(restored) - images[0, 0, 0, 0]) < 1e-3


def test_cifar_tarball_is_read_directly(tmp_path):
    rng = np.random.default_rng(1)
    images, labels = _fake_cifar(rng, 10, 10)
    folder = write_cifar_like(tmp_path / "src", "cifar10", images, labels, images[:3], labels[:3])
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(folder, arcname="cifar-10-batches-py")
    data = load_dataset("cifar10", tmp_path)
    assert data.train_x.shape[0] == 10 and data.test_x.shape[0] == 3


def test_cifar_missing_and_corrupted(tmp_path):
    with pytest.raises(UserError, match="cifar-10-batches-py"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(UserError, match="--data-root"):
        load_dataset("cifar10", None)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for member in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / member).write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="corrupted"):
        load_dataset("cifar10", tmp_path)


def test_fashion_mnist_missing_root_names_the_package(tmp_path):
    with pytest.raises(UserError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist", tmp_path / "nowhere")


def test_unknown_dataset():
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset("imagenet")


def test_digits_split_is_fixed():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.train_x.shape == (1437, 1, 8, 8) and a.test_x.shape == (360, 1, 8, 8)
    assert torch.equal(a.train_y, b.train_y)


def test_crop_flip_augmentation():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    generator = torch.Generator().manual_seed(0)
    out = augment_batch(x, "crop_flip", generator)
    assert out.shape == x.shape
    assert augment_batch(x, "none", generator) is x
    # every output pixel is either padding (0) or a pixel of the same image and channel
    for i in range(2):
        values = set(x[i, 1].flatten().tolist()) | {0.0}
        assert set(out[i, 1].flatten().tolist()) <= values
