"""Memorisation scores: which training images the original model has memorised, for the hard
forget sets of `--forget memorised:<pct>`.

Feldman's memorisation of an example is how much more likely a model is to get it right when the
example is in its training set than when it is not. Estimating it properly takes thousands of
models; the cheap stand-in here takes `FOLDS + 1` trainings, all cached (and the scores too):

    score(x) = p_original(y | x) − p_out(y | x)

where the original trained on x, and p_out comes from the one of `FOLDS` cross-fitted models whose
training folds left x out (each fold model trains on the rest of the original's training set with
the experiment's recipe). A high score is an image the original fits only because it saw it:
atypical, mislabelled-looking or ambiguous images, exactly the ones that make unlearning hard
(RUM, Zhao et al. 2024, ranks forget sets by memorisation for this reason). Using probabilities
rather than 0/1 correctness ranks the many images both models get right by how surely they do.

Two folds halve each fold model's data, so p_out is lower everywhere than a same-size model's would
be; that shifts every score alike and leaves their order, which is all the forget set reads. More
folds cost one more training each for little change in the top decile.

The original is the dense one of the experiment's seed (the one `prepare` trains), so dense and
sparse runs, and every method, forget the same images.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from study.core import inference
from study.core.cache import ArtifactCache, key_digest, source_digest
from study.core.data import ImageDataset
from study.core.errors import UserError
from study.core.inference import predict_logits
from study.core.progress import Log
from study.evaluation.metrics import true_label_confidence
from study.experiment.artifacts import model_key, trained_model
from study.experiment.config import ExperimentConfig

FOLDS = 2


def fold_indices(train_idx: np.ndarray, seed: int, folds: int = FOLDS) -> list[np.ndarray]:
    """The training set cut into `folds` disjoint, seeded parts (sorted each)."""
    order = np.random.Generator(np.random.PCG64([seed, 2])).permutation(np.asarray(train_idx))
    return [np.sort(part) for part in np.array_split(order, folds)]


def memorisation_scores(config: ExperimentConfig, data: ImageDataset, train_idx: np.ndarray, cache: ArtifactCache,
                        device: str = "cpu", log: Log | None = None) -> np.ndarray:
    """One score per training-pool index (NaN outside `train_idx`): p_original(y|x) − p_out(y|x).

    Kept in the cache, keyed by the models it reads, so that each later run (every trial of a
    study prepares its experiment) reads one array instead of loading three models and predicting
    the training set again."""
    train_idx = np.asarray(train_idx)
    folds = [(held_out, np.setdiff1d(train_idx, held_out, assume_unique=True))
             for held_out in fold_indices(train_idx, config.seed)]
    key = {"role": "memorisation-scores",
           "original": key_digest(model_key(config, "original", train_idx, config.seed, data.source)),
           "folds": [key_digest(model_key(config, "memorisation-fold", fit_on, config.seed, data.source, fold=fold))
                     for fold, (_, fit_on) in enumerate(folds)],
           "code": source_digest(inference, sys.modules[__name__])}

    def builder(folder: Path) -> None:
        original = trained_model(cache, config, data, "original", train_idx, config.seed, device, log).model
        scores = np.full(len(data.train_y), np.nan)
        for fold, (held_out, fit_on) in enumerate(folds):
            out_model = trained_model(cache, config, data, "memorisation-fold", fit_on, config.seed, device, log,
                                      fold=fold).model
            x, y = data.train_x[held_out], data.train_y[held_out]
            scores[held_out] = (true_label_confidence(predict_logits(original, x, device=device), y)
                                - true_label_confidence(predict_logits(out_model, x, device=device), y))
        np.save(folder / "scores.npy", scores)

    folder, _ = cache.get_or_build(key, builder)
    try:
        scores = np.load(folder / "scores.npy")
    except (OSError, ValueError) as err:
        raise UserError(f"cached memorisation scores {folder} are corrupted ({type(err).__name__}); delete that "
                        "folder to recompute them") from None
    if scores.shape != (len(data.train_y),):
        raise UserError(f"cached memorisation scores {folder} do not fit this dataset; delete that folder")
    return scores
