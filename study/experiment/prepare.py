"""From an experiment config to everything a method needs: data, split, original and Retrain.

The original model (and its OMP-pruned sparse form) and the Retrain gold standard are read
from the artifact cache, or trained once and stored there, so every run and every Ray trial
of a study only pays for the unlearning itself and its evaluation.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from study.core.cache import ArtifactCache, array_digest, key_digest, source_digest
from study.core.data import ImageDataset, load_dataset
from study.core.errors import UserError
from study.core.models import Defender, build_model
from study.core.precision import resolve_precision
from study.core.progress import Log
from study.core.pruning import apply_masks, copy_model, masks_of, omp_prune
from study.core.splits import ForgetSpec, Splits, make_splits, parse_forget_spec, pool_split
from study.evaluation.evaluate import evaluate_model
from study.evaluation.metrics import retrain_gaps
from study.experiment.artifacts import trained_model
from study.experiment.config import ExperimentConfig
from study.experiment.unlearn_data import SharedContext, UnlearnData


@dataclass
class Prepared:
    config: ExperimentConfig
    data: ImageDataset
    spec: ForgetSpec
    splits: Splits
    original: Defender
    original_seconds: float
    original_metrics: dict[str, float]
    retrain: Defender | None
    retrain_seconds: float | None
    retrain_metrics: dict[str, float] | None
    device: str
    cache: ArtifactCache
    original_key: dict
    retrain_threads: int | None = None  # torch threads Retrain was trained with (None: not recorded)
    retrain_key: dict | None = None
    original_digest: str = ""  # weights digests of the two reference models (`artifacts.weights_digest`)
    retrain_digest: str = ""
    _reference_by_view: dict = field(default_factory=dict)

    def shared_context(self, log: Log = print) -> SharedContext:
        """What a method needs to keep artifacts shared by every run on this original in the cache."""
        d, s = self.data, self.splits
        return SharedContext(self.cache, self.original_key, self.original, (d.train_x[s.train], d.train_y[s.train]),
                             (d.train_x[s.val], d.train_y[s.val]), d.num_classes, d.pixel_std, self.device, log)

    def unlearn_data(self, log: Log = print) -> UnlearnData:
        d, s = self.data, self.splits
        return UnlearnData(d.train_x[s.retain], d.train_y[s.retain], d.train_x[s.forget], d.train_y[s.forget],
                           d.train_x[s.val], d.train_y[s.val], d.num_classes, d.augmentation,
                           self.config.seed, self.device, self.spec.is_classwise, d.pixel_std,
                           self.shared_context(log), dataset=self.config.dataset, sparsity=self.config.sparsity,
                           pixel_mean=d.pixel_mean)

    def reference_digests(self) -> dict[str, str]:
        """What a row is measured against, for its record: the weights digests of the original and
        Retrain, and the digest of the forget set's indices (a memorised forget set depends on the
        memorisation folds' models, so the same spec can name other samples on another machine)."""
        digests = {"original_digest": self.original_digest, "forget_digest": array_digest(self.splits.forget)}
        if self.retrain is not None:
            digests["retrain_digest"] = self.retrain_digest
        return digests

    def fresh_original(self) -> Defender:
        """A private copy of the original model (masks kept) for one method to modify."""
        return copy_model(self.original)

    @property
    def selection_view(self) -> str:
        """The view a study's trials are scored in: the selection set when the split has one."""
        return "select" if len(self.splits.select) else "test"

    def reference_metrics(self, view: str = "test") -> dict[str, float] | None:
        """Retrain's metrics in a view (its own gaps included: 0, ToW 1), or None without Retrain."""
        if self.retrain is None or self.retrain_metrics is None:
            return None
        if view == "test":
            return self.retrain_metrics
        if view not in self._reference_by_view:
            metrics = cached_evaluation(self.cache, self.retrain_key, self.retrain, self.data, self.splits,
                                        self.config.seed, self.device, view)
            self._reference_by_view[view] = {**metrics, **retrain_gaps(metrics, metrics)}
        return self._reference_by_view[view]

    def evaluate(self, model: torch.nn.Module, view: str = "test", keep: dict | None = None) -> dict[str, float]:
        """UA, RA, TA, MIA-Efficacy of `model` in a view, plus Avg. Disparity, ToW, ToW-MIA and the
        per-metric gaps when Retrain's metrics are known (`keep`: see `evaluate_model`)."""
        metrics = evaluate_model(model, self.data, self.splits, self.config.seed, self.device, view, keep)
        reference = self.reference_metrics(view)
        if reference is not None:
            metrics.update(retrain_gaps(metrics, reference))
        return metrics


@functools.cache
def _metric_code_digest() -> str:
    """Digest of the code that computes the metrics: a cached evaluation is reused only by the same code."""
    from study.core import inference
    from study.evaluation import evaluate, metrics, mia

    return source_digest(inference, metrics, mia, evaluate)


def cached_evaluation(cache: ArtifactCache, model_key: dict, model: torch.nn.Module, data: ImageDataset,
                      splits: Splits, seed: int, device: str = "cpu", view: str = "test") -> dict[str, float]:
    """`evaluate_model` of a cached model, computed once per split and kept beside it in the cache.

    Every trial of a study needs the original's and Retrain's metrics; on the Fashion-MNIST proxy
    the two evaluations cost about as much as an epoch of unlearning, so each trial's start-up
    reads them instead of recomputing them.
    """
    key = {"role": "evaluation", "model": key_digest(model_key), "seed": seed, "code": _metric_code_digest(),
           "splits": {name: array_digest(getattr(splits, name)) for name in ("retain", "forget", "test", "test_forget")}}
    if view != "test":  # the test view's key is as it was before views existed, so its cache stays valid
        key.update(view=view,
                   held_out={name: array_digest(getattr(splits, name)) for name in ("select", "select_forget")})

    def builder(folder: Path) -> None:
        metrics = evaluate_model(model, data, splits, seed, device, view)  # at the model's own precision
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))

    folder, _ = cache.get_or_build(key, builder)
    try:
        return {name: float(value) for name, value in json.loads((folder / "metrics.json").read_text()).items()}
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise UserError(f"cached evaluation {folder} is corrupted ({type(err).__name__}); delete that folder "
                        "to recompute it") from None


def load_experiment(config: ExperimentConfig, cache: ArtifactCache | None = None, device: str = "cpu",
                    log: Log | None = None) -> tuple[ImageDataset, ForgetSpec, Splits]:
    """The data, forget spec and split an experiment names (checked before anything trains, except
    for a memorised forget set: its scores need the original and the fold models, from `cache`)."""
    from study.core.models import MODELS

    if config.model not in MODELS:
        raise UserError(f"unknown model {config.model!r}; choose one of {', '.join(MODELS)}")
    if not 0.0 <= config.sparsity < 1.0:
        raise UserError(f"sparsity {config.sparsity} must be in [0, 1)")
    config.recipe.validate()
    data = load_dataset(config.dataset, config.data_root, config.download, cache.root if cache else None)
    if config.recipe.augmentation is not None:  # the recipe's choice reaches training and every method alike
        data = dataclasses.replace(data, augmentation=config.recipe.augmentation)
    spec = parse_forget_spec(config.forget, data.num_classes)
    sizes = dict(val_size=config.val_size, train_size=config.train_size, select_size=config.select_size)
    scores = None
    if spec.needs_scores:
        if cache is None:
            raise UserError(f"forget spec {spec} needs an artifact cache for its memorisation scores")
        from study.experiment.memorisation import memorisation_scores

        _, train_idx, _ = pool_split(len(data.train_y), config.seed, **sizes)
        scores = memorisation_scores(config, data, train_idx, cache, device, log)
    splits = make_splits(data.train_y.numpy(), data.test_y.numpy(), spec, config.seed, scores=scores, **sizes)
    return data, spec, splits


def prepare(config: ExperimentConfig, cache: ArtifactCache, device: str = "cpu", need_retrain: bool = True,
            log: Log = print) -> Prepared:
    """Load data, build the split, and fetch (or train once) the original and Retrain models. The
    experiment's precision is resolved here (`auto` -> fp32 or bf16): `Prepared.config` holds what ran."""
    config = dataclasses.replace(config, precision=resolve_precision(config.precision, device, log))
    data, spec, splits = load_experiment(config, cache, device, log)
    in_channels = data.image_shape[0]
    dense = trained_model(cache, config, data, "original", splits.train, config.seed, device, log)
    original, original_seconds, original_key, original_digest = dense.model, dense.seconds, dense.key, dense.digest
    masks: dict = {}
    if config.sparsity > 0:
        sparse = trained_model(cache, config, data, "original-omp", splits.train, config.seed, device, log,
                               init=lambda: omp_prune(dense.model, config.sparsity), sparsity=config.sparsity)
        original, original_seconds, original_key = sparse.model, original_seconds + sparse.seconds, sparse.key
        original_digest = sparse.digest
        masks = masks_of(original)

    retrain = retrain_seconds = retrain_metrics = retrain_threads = None
    retrain_digest = ""
    if need_retrain:
        def fresh_retrain_init() -> Defender:
            # Retrain starts from a fresh initialisation; a sparse Retrain keeps the OMP mask.
            model = build_model(config.model, in_channels, data.num_classes, config.seed)
            return apply_masks(model, masks) if masks else model

        gold = trained_model(cache, config, data, "retrain", splits.retain, config.seed, device, log,
                             init=fresh_retrain_init, sparsity=config.sparsity)
        retrain, retrain_seconds, retrain_threads, retrain_digest = gold.model, gold.seconds, gold.threads, gold.digest
        retrain_metrics = cached_evaluation(cache, gold.key, retrain, data, splits, config.seed, device)
        retrain_metrics.update(retrain_gaps(retrain_metrics, retrain_metrics))

    prepared = Prepared(config, data, spec, splits, original, original_seconds, {}, retrain, retrain_seconds,
                        retrain_metrics, device, cache, original_key, retrain_threads,
                        gold.key if need_retrain else None, original_digest, retrain_digest)
    prepared.original_metrics = cached_evaluation(cache, original_key, original, data, splits, config.seed, device)
    if retrain_metrics is not None:
        prepared.original_metrics.update(retrain_gaps(prepared.original_metrics, retrain_metrics))
    return prepared
