"""What fixes an experiment before any unlearning method runs, and the named presets.

A preset bundles dataset, model, training recipe and split sizes so every issue, test and
benchmark names the same regime with one word (`--preset fmnist-proxy`). Any field can be
overridden from the CLI or a search space.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

from study.core.errors import UserError
from study.core.train import Recipe


@dataclass(frozen=True)
class ExperimentConfig:
    dataset: str = "digits"
    model: str = "cnn"
    forget: str = "random:10"
    seed: int = 0
    sparsity: float = 0.0
    val_size: int = 180
    train_size: int | None = None  # None: the whole training pool minus validation and selection
    select_size: int = 0  # held-out selection set a study's objective reads instead of the test set (0: none)
    recipe: Recipe = field(default_factory=Recipe)
    data_root: str | None = None
    download: bool = False
    precision: str = "fp32"  # fp32, bf16 or auto (study.core.precision); prepare() resolves it to fp32 or bf16

    def as_dict(self) -> dict:
        values = {**asdict(self), "recipe": self.recipe.as_dict()}
        if values["precision"] == "fp32":
            del values["precision"]  # as records written before the field existed: they all ran fp32
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "ExperimentConfig":
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise UserError(f"unknown experiment setting(s): {', '.join(sorted(unknown))}")
        recipe_values = values.pop("recipe", {}) or {}
        if isinstance(recipe_values, Recipe):
            recipe = recipe_values
        else:
            recipe_known = {f.name for f in dataclasses.fields(Recipe)}
            bad = set(recipe_values) - recipe_known
            if bad:
                raise UserError(f"unknown recipe setting(s): {', '.join(sorted(bad))}")
            recipe = Recipe(**recipe_values)
        return cls(recipe=recipe, **values)


@dataclass(frozen=True)
class ExperimentField:
    """One experiment setting a user may give: on the command line (`--name`), in a search space's
    `experiment:` section (`in_spaces`), or both. The one list from which both are generated."""

    name: str
    kind: type
    help: str
    in_spaces: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


EXPERIMENT_FIELDS = (
    ExperimentField("dataset", str, "digits, fashion-mnist, cifar10 or cifar100 (default: the preset's)"),
    ExperimentField("model", str, "cnn, resnet18-narrow or resnet18 (default: the preset's)"),
    ExperimentField("forget", str, "random:<percent>, class:<index> or memorised:<percent> (default random:10)"),
    ExperimentField("seed", int, "split, initialisation and unlearning seed (default 0)", in_spaces=False),
    ExperimentField("sparsity", float, "one-shot magnitude pruning of the original, e.g. 0.95 (default 0 = dense)"),
    ExperimentField("epochs", int, "training recipe epochs for original/Retrain"),
    ExperimentField("augmentation", str, "train-time augmentation of original, Retrain and unlearning: none or "
                    "crop_flip (default: the preset's, else the dataset's own: crop_flip on CIFAR, none elsewhere)"),
    ExperimentField("train_size", int, "fixed seeded training subset size"),
    ExperimentField("val_size", int, "validation (non-member) set size"),
    ExperimentField("select_size", int, "selection set size: held-out training-pool images a study's objective "
                    "reads in place of the test set (0: studies read the test set)"),
    ExperimentField("data_root", str, "where the dataset is: Fashion-MNIST's IDX folder; CIFAR's pickled "
                    "release (folder or tarball's folder), an image folder (train/<class>/, test/<class>/) or a zip "
                    "of one",
                    in_spaces=False),
    ExperimentField("download", bool, "download CIFAR where a network exists", in_spaces=False),
    ExperimentField("precision", str, "fp32 (default), bf16 (autocast where the device runs it natively, else "
                    "fp32 with a line saying why) or auto (bf16 only where it was measured to match fp32)"),
)
# a space's experiment section: these fields, the preset and the seeds it runs
SPACE_EXPERIMENT_KEYS = {"preset", "seeds", *(f.name for f in EXPERIMENT_FIELDS if f.in_spaces)}
SEARCHABLE_EXPERIMENT_KEYS = {"sparsity", "seed", "forget"}  # may vary between a study's trials


PRESETS: dict[str, dict] = {
    # The embedded default: scikit-learn's digits, no download, a few seconds a model.
    # Each keeps a selection set apart from training, validation and test (see study.core.splits).
    "digits": dict(dataset="digits", model="cnn", val_size=180, train_size=None, select_size=180,
                   recipe=dict(epochs=30, batch_size=64, peak_lr=0.1)),
    # SPEC.md's memorising Fashion-MNIST proxy: 10k fixed seeded training images, 3-block CNN,
    # 30 epochs one-cycle SGD, no augmentation, so random forgetting is measurable on CPU.
    "fmnist-proxy": dict(dataset="fashion-mnist", model="cnn", val_size=2000, train_size=10000, select_size=2000,
                         recipe=dict(epochs=30, batch_size=128, peak_lr=0.1)),
    # CIFAR-10 on 2 CPU cores, chosen by measurement (docs/cifar10-proxy-recipe/table.md,
    # `python bench/cifar10_proxy_recipe.py`): a fixed seeded 10k training subset that the narrow CIFAR
    # ResNet-18 fits in 20 epochs without augmentation (train accuracy 100%, ~6 min a model on 2
    # cores), so the original memorises it and random forgetting is measurable (Retrain's UA 34.5
    # against 0); validation and selection sets as on the Fashion-MNIST proxy. Needs --data-root.
    "cifar10-proxy": dict(dataset="cifar10", model="resnet18-narrow", val_size=2000, train_size=10000,
                          select_size=2000, recipe=dict(epochs=20, batch_size=128, peak_lr=0.1, augmentation="none")),
    # GPU scale, the paper's setting: CIFAR ResNet-18, crop+flip, a short one-cycle recipe.
    "cifar10": dict(dataset="cifar10", model="resnet18", val_size=5000, train_size=None, select_size=5000,
                    recipe=dict(epochs=40, batch_size=256, peak_lr=0.1, label_smoothing=0.1)),
    "cifar100": dict(dataset="cifar100", model="resnet18", val_size=5000, train_size=None, select_size=5000,
                     recipe=dict(epochs=40, batch_size=256, peak_lr=0.1, label_smoothing=0.1)),
}


def experiment_from_preset(preset: str, **overrides) -> ExperimentConfig:
    """Start from a named preset and apply non-None overrides (recipe fields may be given flat)."""
    return resolve_experiment(preset, None, overrides)


def resolve_experiment(preset: str | None, base: dict | None, overrides: dict) -> ExperimentConfig:
    """The one way an experiment is put together: a preset (default digits), or a full experiment
    from a file (`base`, as `study.export` and run folders write it), then every non-None override
    on top (recipe fields such as `epochs` may be given flat). `study.run`, `study.tune`,
    `study.audit` and the benchmarks all go through here.
    """
    if base is not None:
        values = ExperimentConfig.from_dict(base).as_dict()
    else:
        preset = preset or "digits"
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        values = dict(PRESETS[preset])
    values["recipe"] = dict(values.get("recipe") or {})
    recipe_fields = {f.name for f in dataclasses.fields(Recipe)}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in recipe_fields:
            values["recipe"][key] = value
        else:
            values[key] = value
    return ExperimentConfig.from_dict(values)
