"""Image-folder datasets (`train/<class>/*.jpg`, `test/<class>/*.jpg`), as a folder or a zip of one.

This is how CIFAR-10 reaches this project offline (`../shared/data/cifar10-jpeg/cifar10-jpeg.zip`)
and how most tools export a dataset. Class folders are read in alphabetical order, which is
CIFAR-10's and CIFAR-100's own label order, and files within a class in name order, so the
arrays are the same on every machine.

Decoding 60,000 JPEGs with Pillow takes tens of seconds, so the decoded uint8 arrays are kept
in the artifact cache under the archive's content digest (a `.npz` written to a temporary name
and renamed into place, so an interrupted decode leaves nothing that loads as valid). The next
load pays only for hashing the archive and reading the arrays.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from study.core.errors import UserError
from study.core.progress import Progress

SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
FORMAT_VERSION = 1  # bump when the decoded arrays' layout or order changes: old cache entries are ignored


@dataclass(frozen=True)
class ImageFolderArrays:
    """Decoded images (N, C, H, W) uint8 and labels of both splits, with the class names."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]
    digest: str  # content digest of the source folder or archive


def is_image_folder_source(path: Path) -> bool:
    """A file (read as a zip: one that is not ends in a clear error there), or a folder holding
    `train/` and `test/`."""
    return path.is_file() or ((path / "train").is_dir() and (path / "test").is_dir())


class _Source:
    """Read access to the image files of a folder or a zip, as relative paths under `train/` and `test/`."""

    def __init__(self, path: Path):
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if path.is_file():
            try:
                self.zip = zipfile.ZipFile(path)
                names = [name for name in self.zip.namelist() if not name.endswith("/")]
            except (zipfile.BadZipFile, OSError) as err:
                raise UserError(f"{path} is not a readable zip archive: {err}") from err
            self.prefix = _zip_prefix(path, names)
            self.files = sorted(name[len(self.prefix):] for name in names if name.startswith(self.prefix))
        else:
            self.prefix = ""
            self.files = sorted(str(p.relative_to(path)).replace(os.sep, "/")
                                for split in SPLITS for p in (path / split).rglob("*") if p.is_file())

    def read(self, relative: str) -> bytes:
        try:
            if self.zip is not None:
                return self.zip.read(self.prefix + relative)
            return (self.path / relative).read_bytes()
        except (OSError, zipfile.BadZipFile, KeyError) as err:
            raise UserError(f"cannot read {self.path}:{relative}: {err}") from err

    def digest(self) -> str:
        """SHA-256 of the zip's bytes, or of every file's path and bytes in a folder."""
        sha = hashlib.sha256()
        if self.zip is not None:
            with open(self.path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    sha.update(block)
        else:
            for relative in self.files:
                sha.update(relative.encode() + b"\0")
                sha.update(self.read(relative))
        return sha.hexdigest()[:24]

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def _zip_prefix(path: Path, names: list[str]) -> str:
    """'' when the zip holds train/ and test/ at its top, 'X/' when one folder X wraps them."""
    tops = {name.split("/", 1)[0] for name in names}
    if {"train", "test"} <= tops:
        return ""
    if len(tops) == 1:
        wrapper = next(iter(tops))
        inner = {name.split("/", 2)[1] for name in names if name.count("/") >= 2}
        if {"train", "test"} <= inner:
            return wrapper + "/"
    missing = [split for split in SPLITS if split not in tops]
    raise UserError(f"{path} is not an image-folder archive: no {' or '.join(s + '/' for s in missing)} at its top "
                    "(expected train/<class>/<image> and test/<class>/<image>)")


def _class_files(source: _Source, split: str) -> dict[str, list[str]]:
    by_class: dict[str, list[str]] = {}
    for relative in source.files:
        parts = relative.split("/")
        if parts[0] != split:
            continue
        if len(parts) != 3:
            raise UserError(f"{source.path}:{relative} is not at {split}/<class>/<image>")
        if parts[2].lower().endswith(IMAGE_SUFFIXES):
            by_class.setdefault(parts[1], []).append(relative)
    return by_class


def _check_classes(source: _Source, train: dict, test: dict, num_classes: int) -> tuple[str, ...]:
    if not train:
        raise UserError(f"{source.path} has no images under train/<class>/")
    classes = tuple(sorted(train))
    if len(classes) != num_classes:
        raise UserError(f"{source.path} has {len(classes)} class folders under train/, expected {num_classes}")
    missing = [name for name in classes if name not in test]
    if missing:
        raise UserError(f"{source.path}: class folder test/{missing[0]}/ is missing"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    extra = sorted(set(test) - set(classes))
    if extra:
        raise UserError(f"{source.path}: test/{extra[0]}/ is not a class under train/")
    return classes


def _decode(source: _Source, relative: str, size: tuple[int, int], mode: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source.read(relative))) as image:
            image.load()
            if image.size != size or image.mode != mode:
                raise UserError(f"{source.path}:{relative} is a {image.size[0]}x{image.size[1]} {image.mode} image; "
                                f"expected {size[0]}x{size[1]} {mode}")
            return np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"{source.path}:{relative} is not a readable image ({err})") from err


def _decode_split(source: _Source, by_class: dict[str, list[str]], classes: tuple[str, ...],
                  size: tuple[int, int], mode: str, progress: Progress) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for label, name in enumerate(classes):
        for relative in by_class[name]:
            images.append(_decode(source, relative, size, mode))
            labels.append(label)
            progress.update()
    stacked = np.stack(images)
    if stacked.ndim == 3:  # a single-channel mode: add the channel axis
        stacked = stacked[..., None]
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2)), np.asarray(labels, dtype=np.int64)


def load_image_folder(path: str | os.PathLike, num_classes: int, cache_root: str | os.PathLike,
                      size: tuple[int, int] = (32, 32), mode: str = "RGB") -> ImageFolderArrays:
    """The decoded arrays of an image folder or zip at `path`, from the cache when it has them.

    Every image must be `size` (width, height) in Pillow `mode`; a class under train/ must also be
    under test/. Anything else ends in one `UserError` line naming the file or folder.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"dataset path {path} does not exist")
    source = _Source(path)
    try:
        digest = source.digest()
        name = f"image-folder-v{FORMAT_VERSION}-{digest}-{size[0]}x{size[1]}{mode}.npz"
        cached = Path(cache_root) / "datasets" / name
        if cached.exists():
            try:
                with np.load(cached) as arrays:
                    return ImageFolderArrays(arrays["train_images"], arrays["train_labels"], arrays["test_images"],
                                             arrays["test_labels"], tuple(str(c) for c in arrays["classes"]), digest)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                cached.unlink(missing_ok=True)  # a damaged cache entry is decoded again
        train, test = _class_files(source, "train"), _class_files(source, "test")
        classes = _check_classes(source, train, test, num_classes)
        total = sum(len(files) for files in (*train.values(), *test.values()))
        with Progress(total, f"decoding {path.name} once (kept in {cached.parent})", "img") as progress:
            train_images, train_labels = _decode_split(source, train, classes, size, mode, progress)
            test_images, test_labels = _decode_split(source, test, classes, size, mode, progress)
    finally:
        source.close()
    result = ImageFolderArrays(train_images, train_labels, test_images, test_labels, classes, digest)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f"{cached.stem}.{os.getpid()}.partial.npz")
    np.savez(partial, train_images=train_images, train_labels=train_labels, test_images=test_images,
             test_labels=test_labels, classes=np.asarray(classes))
    partial.replace(cached)
    return result
