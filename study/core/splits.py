"""Forget specs and the seeded split of a dataset into retain / forget / validation / test.

The split is a pure function of (dataset, forget spec, seed, sizes): a NumPy PCG64 stream
gives the same indices on every platform, so a run folder's indices can always be rebuilt
and checked. The validation set is carved from the training pool *before* any forgetting,
so the original model never sees it and it can serve as DAU's "non-member" set; the test
set is never touched by attacker or unlearning.

The selection set (`select_size` images from the end of the training pool, never trained on
and never given to a method) stands in for the test set while a study searches: a trial's TA
and MIA-Efficacy non-members are read there, so the test numbers a table reports were never
seen by the search that chose the configuration. With a fixed `train_size` and a pool larger
than validation + training (the Fashion-MNIST proxy), carving it leaves the training set, and so
the original, as it was without it; otherwise the training set gives up those images.

A `memorised:<pct>` forget set is the exception to "pure function of labels": it is the pct% of
the training set with the highest memorisation scores (`study.experiment.memorisation`), so
`make_splits` takes those scores; they come from cached models, so the split still repeats.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from study.core.errors import UserError


@dataclass(frozen=True)
class ForgetSpec:
    """`random:<pct>` (a uniformly drawn percentage of train), `class:<k>` (all of class k) or
    `memorised:<pct>` (the percentage of train the original has memorised most)."""

    kind: str
    value: float

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}"

    @property
    def is_classwise(self) -> bool:
        return self.kind == "class"

    @property
    def needs_scores(self) -> bool:
        """Whether the forget set is chosen by memorisation scores (models must exist first)."""
        return self.kind == "memorised"

    @property
    def scheme(self) -> str:
        """How methods treat the forget set: `class` or `random` (sample-wise; a memorised set is
        forgotten like a random one, with the same defaults and spaces)."""
        return "class" if self.is_classwise else "random"


SPEC_KINDS = {"random": "random", "class": "class", "memorised": "memorised", "memorized": "memorised"}


def forget_scheme(text: str) -> str:
    """`class` or `random` for a forget spec's text: the scheme methods' defaults and spaces follow."""
    return parse_forget_spec(text).scheme


def parse_forget_spec(text: str, num_classes: int | None = None) -> ForgetSpec:
    """Parse `random:10`, `class:3` or `memorised:10`; refuse anything that would make an empty or
    total forget set."""
    match = re.fullmatch(rf"\s*({'|'.join(SPEC_KINDS)}):\s*([0-9]+(?:\.[0-9]*)?)\s*", str(text))
    if not match:
        raise UserError(f"malformed forget spec {text!r}; expected 'random:<percent>' (e.g. random:10), "
                        "'class:<index>' (e.g. class:3) or 'memorised:<percent>' (e.g. memorised:10)")
    kind, number = SPEC_KINDS[match.group(1)], float(match.group(2))
    if kind in ("random", "memorised") and not 0 < number < 100:
        raise UserError(f"forget spec {text!r}: the percentage must be strictly between 0 and 100")
    if kind == "class":
        if number != int(number):
            raise UserError(f"forget spec {text!r}: the class must be an integer index")
        if num_classes is not None and not 0 <= number < num_classes:
            raise UserError(f"forget spec {text!r}: class index must be in 0..{num_classes - 1} for this dataset")
    return ForgetSpec(kind, number)


@dataclass
class Splits:
    """Index arrays into the dataset's train tensors (retain, forget, val) and test tensors.

    For class-wise forgetting `test` holds only the remaining classes (TA is measured there)
    and `test_forget` holds the forgotten class's test samples; otherwise `test_forget` is empty.
    `select` / `select_forget` split the selection set (train-pool indices) the same way.
    """

    retain: np.ndarray
    forget: np.ndarray
    val: np.ndarray
    test: np.ndarray
    test_forget: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    select: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    select_forget: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def train(self) -> np.ndarray:
        """The original model's training set: retain and forget together, in sorted order."""
        return np.sort(np.concatenate([self.retain, self.forget]))

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {"retain": self.retain, "forget": self.forget, "val": self.val,
                "test": self.test, "test_forget": self.test_forget, "select": self.select,
                "select_forget": self.select_forget}

    def save(self, path) -> None:
        np.savez(path, **self.as_arrays())

    @classmethod
    def load(cls, path) -> "Splits":
        try:
            with np.load(path) as arrays:
                required = {key: arrays[key].astype(np.int64) for key in
                            ("retain", "forget", "val", "test", "test_forget")}
                optional = {key: arrays[key].astype(np.int64) for key in ("select", "select_forget")
                            if key in arrays}  # split files written before the selection set existed
                return cls(**required, **optional)
        except (OSError, KeyError, ValueError) as err:
            raise UserError(f"split file {path} is missing or corrupted: {err}") from err


def pool_split(pool_size: int, seed: int, val_size: int, train_size: int | None = None,
               select_size: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(validation, training, selection) indices of a training pool: the part of the split that
    depends on the seed only, not on the forget spec, so random, class-wise and memorised runs with
    the same seed share one original model."""
    if val_size <= 0 or val_size >= pool_size:
        raise UserError(f"validation size {val_size} must be between 1 and {pool_size - 1}")
    if select_size < 0 or val_size + select_size >= pool_size:
        raise UserError(f"selection size {select_size} must be 0 or more and leave training samples beside "
                        f"a validation set of {val_size} (the pool has {pool_size})")
    pool = np.random.Generator(np.random.PCG64(seed)).permutation(pool_size)
    val = np.sort(pool[:val_size])
    train = pool[val_size:pool_size - select_size]
    select = np.sort(pool[pool_size - select_size:]) if select_size else np.zeros(0, dtype=np.int64)
    if train_size is not None:
        if train_size > len(train):
            raise UserError(f"training subset of {train_size} asked for, but only {len(train)} samples remain "
                            f"after a validation set of {val_size} and a selection set of {select_size}")
        train = train[:train_size]
    return val, np.sort(train), select


def _forget_count(spec: ForgetSpec, train_size: int) -> int:
    count = int(round(train_size * spec.value / 100.0))
    if count == 0 or count == train_size:
        raise UserError(f"forget spec {spec} gives {count} of {train_size} training samples; "
                        "the forget set and the retain set must both be non-empty")
    return count


def make_splits(train_y: np.ndarray, test_y: np.ndarray, spec: ForgetSpec, seed: int,
                val_size: int, train_size: int | None = None, select_size: int = 0,
                scores: np.ndarray | None = None) -> Splits:
    """Carve validation, the selection set (the pool's last `select_size`) and an optional
    fixed-size training subset from the train pool, then the forget set. A memorised spec needs
    `scores`, one per training-pool index (only the training indices' are read); the highest
    are forgotten, ties broken by index."""
    train_y = np.asarray(train_y)
    test_y = np.asarray(test_y)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    if spec.is_classwise and not 0 <= spec.value < num_classes:
        raise UserError(f"forget spec {spec}: class index must be in 0..{num_classes - 1} for this dataset")
    val, train, select = pool_split(len(train_y), seed, val_size, train_size, select_size)
    forget_rng = np.random.Generator(np.random.PCG64([seed, 1]))
    if not spec.is_classwise:
        count = _forget_count(spec, len(train))
        if spec.needs_scores:
            if scores is None or len(scores) != len(train_y) or not np.isfinite(scores[train]).all():
                raise ValueError("a memorised forget set needs one finite score per training-pool index")
            order = np.lexsort((train, -np.asarray(scores)[train]))  # highest score first, then lowest index
            forget = np.sort(train[order[:count]])
        else:
            forget = np.sort(forget_rng.choice(train, size=count, replace=False))
        test = np.arange(len(test_y))
        test_forget = np.zeros(0, dtype=np.int64)
        select_forget = np.zeros(0, dtype=np.int64)
    else:
        forget_class = int(spec.value)
        forget = train[train_y[train] == forget_class]
        if len(forget) == 0:
            raise UserError(f"forget spec {spec}: no training sample of class {forget_class}")
        test = np.flatnonzero(test_y != forget_class)
        test_forget = np.flatnonzero(test_y == forget_class)
        select, select_forget = select[train_y[select] != forget_class], select[train_y[select] == forget_class]
    retain = np.setdiff1d(train, forget, assume_unique=True)
    return Splits(retain=retain.astype(np.int64), forget=forget.astype(np.int64), val=val.astype(np.int64),
                  test=test.astype(np.int64), test_forget=test_forget.astype(np.int64),
                  select=select.astype(np.int64), select_forget=select_forget.astype(np.int64))
