"""The one shape every unlearning method has, in the spirit of scikit-learn's estimators.

A method is one subclass: a `name`, a `summary`, its `hyperparams` (each declared once as a
`Hyperparam`, which also feeds the CLI help, the search-space validation and the error
messages), and either `setup` + `run_epoch` (a method that trains in epochs) or `one_shot = True`
+ `apply` (a method that edits the model once, e.g. Fisher forgetting). Defining the class
registers it: `study.run --method NAME`, `study.tune` and `study.compare` find it by name, and a
Ray worker imports the module that defined it. Its search space is a section in a
`search_spaces/*.yaml` file; nothing else is needed.

Every caller drives a method through `start` and `epoch` (`unlearn` is that loop, for code
outside Ray), so a Ray Tune Trainable reports and checkpoints between epochs through the same
object; `state_dict`/`load_state_dict` make that resumable. For that reason a subclass may not
override `unlearn` (it would run outside Ray and silently do nothing inside it): defining one
raises TypeError.

Class hooks for what lies outside one run:
  - `prebuild(prepared, options, log)`: build, once and before any trial starts, the artifacts
    every run on the same original shares (DAU's pre-trained attacker); `options` maps each
    hyperparameter to the values a search can give it;
  - `shared_artifact_keys`: the result keys holding those artifacts' seconds, reported beside the
    run time (time/Retrain is shown without and with them);
  - `default_space(preset, scheme)`: the search space `study.compare` tunes the method with;
  - `documented_defaults(scheme, dataset, sparsity)`: the defaults as concrete values (a default that is None and
    resolved at run time, like DAU's per-scheme learning rate, resolved here), which every study
    runs as its first trial;
  - `reference`: "original" or "retrain" for the two rows every table shows beside the methods;
  - `revision` and `fingerprint()`: what a kept result was measured with. The fingerprint digests the
    method's name, its declared hyperparameters (defaults, ranges, choices) and `revision`, which a
    change of behaviour that leaves the declarations alone must bump; a resumed comparison re-runs
    the rows and studies of a method whose fingerprint changed.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Iterator, Sequence

import torch
from torch import nn

from study.core.data import augment_batch
from study.core.errors import UserError
from study.core.precision import model_precision
from study.experiment.unlearn_data import UnlearnData

EpochCallback = Callable[[int, nn.Module, dict], None]
REGISTRY: dict[str, type["UnlearningMethod"]] = {}  # name -> class, filled as subclasses are defined


@dataclass(frozen=True)
class Hyperparam:
    """One declared hyperparameter: its type, default, valid range and meaning."""

    name: str
    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    choices: Sequence[Any] | None = None
    help: str = ""
    optional: bool = False  # None is a valid value (e.g. a switch that is off)

    def coerce(self, value: Any, method: str) -> Any:
        where = f"{method}: hyperparameter {self.name!r}"
        if value is None:
            if self.optional:
                return None
            raise UserError(f"{where} needs a value")
        if isinstance(value, str) and self.kind is not str:
            text = value.strip().lower()
            if self.optional and text in ("none", "null", "off"):
                return None
            if self.kind is bool:
                if text not in ("true", "false", "1", "0", "yes", "no"):
                    raise UserError(f"{where} must be true or false, got {value!r}")
                return text in ("true", "1", "yes")
            try:
                value = float(text)
            except ValueError:
                raise UserError(f"{where} must be a number, got {value!r}") from None
        if self.kind is bool:
            if not isinstance(value, (bool, int)):
                raise UserError(f"{where} must be true or false, got {value!r}")
            return bool(value)
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
                raise UserError(f"{where} must be an integer, got {value!r}")
            value = int(value)
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
                raise UserError(f"{where} must be a finite number, got {value!r}")
            value = float(value)
        if self.choices is not None and value not in self.choices:
            raise UserError(f"{where} must be one of {list(self.choices)}, got {value!r}")
        if self.low is not None and value < self.low:
            raise UserError(f"{where} must be >= {self.low}, got {value!r}")
        if self.high is not None and value > self.high:
            raise UserError(f"{where} must be <= {self.high}, got {value!r}")
        return value

    def describe(self) -> str:
        bounds = f"one of {list(self.choices)}" if self.choices else (
            f"[{self.low if self.low is not None else '-inf'}, {self.high if self.high is not None else 'inf'}]")
        return f"{self.name} ({self.kind.__name__}, default {self.default!r}, {bounds}): {self.help}"


class UnlearningMethod:
    """Base class: subclasses declare `name`, `summary`, `hyperparams`, and implement
    `setup` and `run_epoch`, or set `one_shot` and implement `apply`."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # the name tables print (default: `name`)
    summary: ClassVar[str] = ""
    hyperparams: ClassVar[tuple[Hyperparam, ...]] = ()
    one_shot: ClassVar[bool] = False  # edits the model once (`apply`), reported as one epoch
    # "original" or "retrain" for the two reference rows every table shows beside the methods:
    # they unlearn nothing (Retrain's model and time come from the artifact cache)
    reference: ClassVar[str | None] = None
    shared_artifact_keys: ClassVar[tuple[str, ...]] = ()  # result keys of shared artifacts' seconds
    revision: ClassVar[int] = 1  # bump when the method's behaviour changes and its declarations do not

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "unlearn" in cls.__dict__:
            raise TypeError(f"{cls.__name__} overrides unlearn, which Ray trials never call: implement "
                            "setup + run_epoch, or set one_shot = True and implement apply")
        if cls.name:
            REGISTRY[cls.name] = cls

    @classmethod
    def display_name(cls) -> str:
        return cls.label or cls.name

    @classmethod
    def fingerprint(cls) -> str:
        """12 hex digits naming this version of the method: its name, `revision` and declared
        hyperparameters. Kept results carry it; one that differs was measured by another version."""
        declared = [[h.name, h.kind.__name__, h.default, h.low, h.high, list(h.choices or []), h.optional]
                    for h in cls.hyperparams]
        text = json.dumps({"method": cls.name, "revision": cls.revision, "hyperparams": declared}, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @classmethod
    def default_space(cls, preset: str, scheme: str) -> str:
        """The search space (a `search_spaces/` name or a path) `study.compare` tunes this method with,
        for a preset and a forget scheme (`random`, `class`): by default its section of `baselines`."""
        return "baselines"

    @classmethod
    def documented_defaults(cls, scheme: str, dataset: str | None = None, sparsity: float = 0.0) -> dict[str, Any]:
        """Every hyperparameter's documented default for a forget scheme (`random`, `class`), dataset
        and sparsity, as the value a run in that setting takes when none is given (a study evaluates
        this point as its first trial)."""
        return {h.name: h.default for h in cls.hyperparams}

    @classmethod
    def prebuild(cls, prepared: Any, options: dict[str, list | None], log: Callable[[str], None]) -> None:
        """Build the artifacts every run on `prepared`'s original shares, before any trial starts.
        `options`: each hyperparameter's possible values in the search (None: searched over a range)."""

    def __init__(self, **params: Any):
        declared = {h.name: h for h in self.hyperparams}
        unknown = set(params) - set(declared)
        if unknown:
            raise UserError(f"{self.name}: unknown hyperparameter(s) {', '.join(sorted(unknown))}; "
                            f"it takes {', '.join(declared) or 'none'}")
        self.params = {name: h.coerce(params.get(name, h.default), self.name) for name, h in declared.items()}
        self.validate()
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.generator = torch.Generator()
        self.artifact_seconds = 0.0  # wall time `setup` spent loading or building shared artifacts
        self.setup_seconds = 0.0  # the rest of `setup`'s wall time: unlearning work (SalUn's saliency mask)

    def shared_artifact_seconds(self) -> dict[str, float]:
        """Seconds it took to build artifacts shared by every run on the same original (DAU's pre-trained
        attacker), by name: reported beside the run time, not in it."""
        return {}

    def shared_artifact_digests(self) -> dict[str, str]:
        """Digests of the shared artifacts this run loaded (DAU's pre-trained attacker), by name: rows
        record them beside the reference models' digests, so a row names everything it was measured on."""
        return {}

    def validate(self) -> None:
        """Cross-parameter checks; raise `UserError` before any training starts."""

    def __getattr__(self, item: str) -> Any:
        params = self.__dict__.get("params", {})
        if item in params:
            return params[item]
        raise AttributeError(item)

    # --- the epoch protocol -------------------------------------------------
    @property
    def num_epochs(self) -> int:
        return 1 if self.one_shot else int(self.params.get("epochs", 1))

    def setup(self, model: nn.Module, data: UnlearnData) -> None:
        self.model, self.data = model.to(data.device), data
        self.generator = torch.Generator().manual_seed(data.seed)

    def run_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of unlearning; a one-shot method's single epoch is `apply`."""
        if self.one_shot:
            return self.apply()
        raise NotImplementedError(f"{type(self).__name__} implements neither run_epoch nor (one_shot) apply")

    def apply(self) -> dict[str, float]:
        """A one-shot method's edit of `self.model`; returns its logs."""
        raise NotImplementedError(f"{type(self).__name__} sets one_shot but implements no apply")

    def start(self, model: nn.Module, data: UnlearnData) -> None:
        """`setup`, timed: `setup_seconds` is the unlearning work it did (shared artifacts excluded)."""
        began = time.perf_counter()
        with self.precision_scope(model):
            self.setup(model, data)
        self.setup_seconds = time.perf_counter() - began - self.artifact_seconds

    def epoch(self, epoch: int) -> dict[str, float]:
        """One epoch, timed: `run_epoch`'s logs plus `seconds`."""
        began = time.perf_counter()
        with self.precision_scope(self.model):
            logs = self.run_epoch(epoch)
        logs["seconds"] = time.perf_counter() - began
        return logs

    def precision_scope(self, model: nn.Module):
        """A one-shot method (FF, IU, SSD: Fisher and influence statistics, solves) runs its model in
        fp32 whatever the experiment's precision (it is cheap beside training); the others run it at
        the precision the model carries (`Defender.autocast_dtype`, set when it was loaded)."""
        return model_precision(model, "fp32") if self.one_shot else contextlib.nullcontext()

    def unlearn(self, model: nn.Module, data: UnlearnData,
                callbacks: Iterable[EpochCallback] = ()) -> nn.Module:
        """The one epoch loop (`study.run`, the benchmarks and the audit; a Ray trial calls `start` and
        `epoch` itself, one epoch per step). Callbacks see (epoch, model, logs) between epochs, outside
        the timed part: the run time is `setup_seconds` plus the epochs' `seconds`."""
        callbacks = list(callbacks)
        self.start(model, data)
        for epoch in range(self.num_epochs):
            logs = self.epoch(epoch)
            for callback in callbacks:
                callback(epoch, self.model, logs)
        self.model.eval()
        return self.model

    # --- checkpointing ------------------------------------------------------
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.optimizer is not None and state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])


def sgd(trained: nn.Module | Iterable[nn.Parameter], lr: float, momentum: float = 0.9,
        weight_decay: float = 5e-4) -> torch.optim.SGD:
    """The unlearning optimiser of the reference code (SGD, momentum 0.9, weight decay 5e-4), over a
    model's parameters or a list of them (DAU adds its projector's)."""
    parameters = trained.parameters() if isinstance(trained, nn.Module) else trained
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)


def shuffled_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator,
                     augmentation: str = "none", device: str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One pass over (x, y) in a random order, augmented as in training."""
    order = torch.randperm(len(x), generator=generator)
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        yield augment_batch(x[idx], augmentation, generator).to(device), y[idx].to(device)


class BatchStream:
    """An endless stream of shuffled batches (reshuffled each pass) from a set that may be
    smaller than the number of steps needed: DAU draws fresh forget and validation batches
    for every retain batch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator,
                 device: str = "cpu", augmentation: str = "none"):
        self.x, self.y, self.generator, self.device = x, y, generator, device
        self.augmentation = augmentation  # applied to each batch as in training ("none": as stored)
        self.batch_size = min(batch_size, len(x))
        self._order = torch.zeros(0, dtype=torch.long)
        self._position = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._position + self.batch_size > len(self._order):
            self._order = torch.randperm(len(self.x), generator=self.generator)
            self._position = 0
        idx = self._order[self._position:self._position + self.batch_size]
        self._position += self.batch_size
        return augment_batch(self.x[idx], self.augmentation, self.generator).to(self.device), self.y[idx].to(self.device)
