"""Datasets as in-memory tensors: digits (embedded default), Fashion-MNIST, CIFAR-10/100.

Everything is loaded once into float tensors, already normalised, so training loops index
tensors directly instead of going through a DataLoader (far faster on 2 CPU cores for
images this small). torchvision is never imported: its compiled ops need the CUDA build of
torch, so the CIFAR python archives are read here with `pickle`, image folders and zips of
them with Pillow (`study.core.image_folder`), and augmentation is done with tensor ops.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from study.core.cache import DEFAULT_CACHE_DIR
from study.core.errors import UserError
from study.core.image_folder import is_image_folder_source, load_image_folder

DATASETS = ("digits", "fashion-mnist", "cifar10", "cifar100")
FASHION_MNIST_DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")

# Per-channel statistics of each training set, the usual published values.
_NORMALISATION = {
    "digits": ((0.3070,), (0.3864,)),  # sklearn digits scaled to [0, 1]
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
AUGMENTATIONS = ("none", "crop_flip")
# The paper's train-time augmentation for CIFAR; digits and Fashion-MNIST get none. A recipe may
# override it (the CPU CIFAR-10 proxy trains without it, so that its original memorises).
_AUGMENTATION = {"digits": "none", "fashion-mnist": "none", "cifar10": "crop_flip", "cifar100": "crop_flip"}

_CIFAR_ARCHIVES = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "tarball": "cifar-10-python.tar.gz",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "label_key": b"labels",
        "num_classes": 10,
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "tarball": "cifar-100-python.tar.gz",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "train": ["train"],
        "test": ["test"],
        "label_key": b"fine_labels",
        "num_classes": 100,
    },
}


@dataclass
class ImageDataset:
    """Normalised train and test tensors of one dataset, plus what models need to know."""

    name: str
    train_x: torch.Tensor  # (N, C, H, W) float32, normalised
    train_y: torch.Tensor  # (N,) int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    augmentation: str  # "none" or "crop_flip"
    source: str = ""  # where the images came from, for records (e.g. an image-folder archive and its digest)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def pixel_std(self) -> tuple[float, ...]:
        """Per-channel std the [0, 1] images were divided by (to scale noise given on that range)."""
        return tuple(_NORMALISATION[self.name][1])

    @property
    def pixel_mean(self) -> tuple[float, ...]:
        """Per-channel mean subtracted from the [0, 1] images (with `pixel_std`: where 0 and 1 lie now)."""
        return tuple(_NORMALISATION[self.name][0])


def load_dataset(name: str, data_root: str | os.PathLike | None = None, download: bool = False,
                 cache_root: str | os.PathLike | None = None) -> ImageDataset:
    """Return the normalised train/test tensors of `name` (one of `DATASETS`).

    CIFAR's `data_root` is a folder holding the pickled release (or its tarball), an image folder
    (`train/<class>/…`, `test/<class>/…`) or a zip of one; image folders are decoded once into
    `cache_root` (default: the artifact cache's folder).
    """
    source = name
    if name == "digits":
        train_x, train_y, test_x, test_y, num_classes = _load_digits()
    elif name == "fashion-mnist":
        train_x, train_y, test_x, test_y, num_classes = _load_fashion_mnist(data_root)
    elif name in _CIFAR_ARCHIVES:
        train_x, train_y, test_x, test_y, num_classes, source = _load_cifar(
            name, data_root, download, cache_root if cache_root is not None else DEFAULT_CACHE_DIR)
    else:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    mean, std = _NORMALISATION[name]
    return ImageDataset(
        name=name,
        train_x=_normalise(train_x, mean, std),
        train_y=torch.as_tensor(train_y, dtype=torch.int64),
        test_x=_normalise(test_x, mean, std),
        test_y=torch.as_tensor(test_y, dtype=torch.int64),
        num_classes=num_classes,
        augmentation=_AUGMENTATION[name],
        source=source,
    )


def _normalise(images_01: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    # in place: every loader hands over an array of its own (CIFAR-10 as float32 is 740 MB)
    x = torch.as_tensor(images_01, dtype=torch.float32)
    mean_t = torch.tensor(mean).view(1, -1, 1, 1)
    std_t = torch.tensor(std).view(1, -1, 1, 1)
    return x.sub_(mean_t).div_(std_t).contiguous()


def _load_digits():
    """scikit-learn's bundled 8x8 digits, split 80/20 stratified with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # values 0..16 -> [0, 1]
    train_x, test_x, train_y, test_y = train_test_split(
        images, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    return train_x, train_y, test_x, test_y, 10


def _read_idx(path: Path) -> np.ndarray:
    """Read one (optionally gzipped) IDX file: magic, dims, then unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(tuple(int(d) for d in dims))


def _find_idx(root: Path, stem: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.exists():
            return candidate
    raise UserError(
        f"Fashion-MNIST file {stem}[.gz] not found under {root}; install Debian's package "
        "`apt-get install dataset-fashion-mnist` or pass --data-root to a folder with the IDX files"
    )


def _load_fashion_mnist(data_root):
    root = Path(data_root) if data_root else FASHION_MNIST_DEBIAN_ROOT
    if not root.is_dir():
        raise UserError(
            f"Fashion-MNIST folder {root} does not exist; install Debian's package "
            "`apt-get install dataset-fashion-mnist` or pass --data-root to a folder with the IDX files"
        )
    arrays = {stem: _read_idx(_find_idx(root, stem)) for stem in (
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    to_images = lambda a: (a.astype(np.float32) / 255.0)[:, None]  # noqa: E731
    return (to_images(arrays["train-images-idx3-ubyte"]), arrays["train-labels-idx1-ubyte"].astype(np.int64),
            to_images(arrays["t10k-images-idx3-ubyte"]), arrays["t10k-labels-idx1-ubyte"].astype(np.int64), 10)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_cifar(name: str, data_root: str | os.PathLike) -> Path:
    """Fetch the official CIFAR python archive into `data_root` and check its published MD5."""
    spec = _CIFAR_ARCHIVES[name]
    root = Path(data_root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / spec["tarball"]
    if target.exists() and _md5(target) == spec["md5"]:
        return target
    partial = target.with_suffix(".part")
    print(f"downloading {spec['url']} -> {target}")
    try:
        urllib.request.urlretrieve(spec["url"], partial)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise UserError(f"could not download {spec['url']}: {err}") from err
    if _md5(partial) != spec["md5"]:
        partial.unlink(missing_ok=True)
        raise UserError(f"downloaded {spec['tarball']} does not match its published MD5 {spec['md5']}")
    partial.replace(target)
    return target


def _unpickle_batches(read_member, members: list[str]) -> tuple[np.ndarray, np.ndarray, bytes]:
    images, labels = [], []
    label_key = None
    for member in members:
        try:
            batch = pickle.loads(read_member(member), encoding="bytes")
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise UserError(f"CIFAR batch {member!r} is corrupted: {err}") from err
        label_key = b"labels" if b"labels" in batch else b"fine_labels"
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels), label_key


def _load_cifar(name: str, data_root, download: bool, cache_root):
    spec = _CIFAR_ARCHIVES[name]
    if data_root is None:
        raise UserError(f"{name} needs --data-root: a folder holding {spec['folder']}/ or {spec['tarball']}, "
                        "an image folder (train/<class>/, test/<class>/) or a zip of one"
                        + ("" if download else " (add --download to fetch it where a network exists)"))
    root = Path(data_root)
    if not root.exists() and not download:
        raise UserError(f"{name}: --data-root {root} does not exist (expected a folder holding {spec['folder']}/ "
                        f"or {spec['tarball']}, an image folder or a zip of one)")
    if is_image_folder_source(root):
        arrays = load_image_folder(root, spec["num_classes"], cache_root)
        return (arrays.train_images.astype(np.float32) / 255.0, arrays.train_labels,
                arrays.test_images.astype(np.float32) / 255.0, arrays.test_labels, spec["num_classes"],
                f"{name} image folder {root.name} sha256:{arrays.digest}")
    folder, tarball = root / spec["folder"], root / spec["tarball"]
    if not folder.is_dir() and not tarball.exists() and download:
        download_cifar(name, root)
    if folder.is_dir():
        def read_member(member: str) -> bytes:
            path = folder / member
            if not path.exists():
                raise UserError(f"{name}: expected file {path} is missing")
            return path.read_bytes()
        archive = None
    elif tarball.exists():
        try:
            archive = tarfile.open(tarball, "r:gz")
        except (tarfile.TarError, OSError) as err:
            raise UserError(f"{tarball} is not a readable .tar.gz archive: {err}") from err

        def read_member(member: str) -> bytes:
            try:
                return archive.extractfile(f"{spec['folder']}/{member}").read()
            except (KeyError, AttributeError) as err:
                raise UserError(f"{tarball} has no member {spec['folder']}/{member}") from err
    else:
        raise UserError(
            f"{name} not found under {root}: expected the folder {spec['folder']}/ (with "
            f"{', '.join(spec['train'] + spec['test'])}), the archive {spec['tarball']}, or an image folder "
            "(train/<class>/, test/<class>/) or a zip of one; pass --download to fetch it where a network exists"
        )
    try:
        train_x, train_y, _ = _unpickle_batches(read_member, spec["train"])
        test_x, test_y, _ = _unpickle_batches(read_member, spec["test"])
    finally:
        if archive is not None:
            archive.close()
    return (train_x.astype(np.float32) / 255.0, train_y, test_x.astype(np.float32) / 255.0, test_y,
            spec["num_classes"], name)


def write_cifar_like(folder: str | os.PathLike, name: str, images: np.ndarray, labels: np.ndarray,
                     test_images: np.ndarray, test_labels: np.ndarray) -> Path:
    """Write arrays in the real CIFAR python-pickle layout (used by tests and small demos)."""
    spec = _CIFAR_ARCHIVES[name]
    out = Path(folder) / spec["folder"]
    out.mkdir(parents=True, exist_ok=True)
    key = spec["label_key"]
    chunks = np.array_split(np.arange(len(images)), len(spec["train"]))
    for member, idx in zip(spec["train"], chunks):
        payload = {b"data": images[idx].reshape(len(idx), -1), key: labels[idx].tolist()}
        (out / member).write_bytes(pickle.dumps(payload))
    test_payload = {b"data": test_images.reshape(len(test_images), -1), key: test_labels.tolist()}
    (out / spec["test"][0]).write_bytes(pickle.dumps(test_payload))
    return out


def augment_batch(x: torch.Tensor, augmentation: str, generator: torch.Generator) -> torch.Tensor:
    """Train-time augmentation on a normalised batch: random 4-pixel-padded crop + horizontal flip."""
    if augmentation == "none":
        return x
    batch, _, height, width = x.shape
    pad = 4
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
    rows = (torch.arange(height)[None, :] + dy[:, None])[:, :, None]
    cols = (torch.arange(width)[None, :] + dx[:, None])[:, None, :]
    flip = torch.rand(batch, generator=generator) < 0.5
    cols = torch.where(flip[:, None, None], cols.flip(-1), cols)
    cropped = padded[torch.arange(batch)[:, None, None], :, rows, cols]  # (B, H, W, C)
    return cropped.permute(0, 3, 1, 2).contiguous()

