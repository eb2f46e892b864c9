"""`--forget memorised:<pct>`: the scores behind it and the hard forget set they choose, on digits."""
import json
from pathlib import Path

import numpy as np
import pytest

from study.core.cache import ArtifactCache
from study.core.errors import UserError
from study.experiment.config import experiment_from_preset
from study.experiment.memorisation import fold_indices, memorisation_scores
from study.experiment.prepare import prepare
from tests.conftest import FAST_EPOCHS


def test_fold_models_leave_out_disjoint_halves_of_the_training_set(digits_random):
    train = digits_random.splits.train
    folds = fold_indices(train, seed=0)
    assert len(folds) == 2 and not set(folds[0]) & set(folds[1])
    assert np.array_equal(np.sort(np.concatenate(folds)), train)


def test_memorised_forgetting_picks_images_retrain_gets_wrong_far_more_often(digits_random, cache_dir):
    config = experiment_from_preset("digits", epochs=FAST_EPOCHS, forget="memorised:10")
    hard = prepare(config, ArtifactCache(cache_dir), log=lambda s: None)
    splits, easy = hard.splits, digits_random.splits
    assert np.array_equal(splits.train, easy.train) and np.array_equal(splits.val, easy.val)
    assert len(splits.forget) == len(easy.forget) and hard.original_key == digits_random.original_key

    scores = memorisation_scores(config, hard.data, splits.train, ArtifactCache(cache_dir))  # the cached array now
    outside = np.setdiff1d(np.arange(len(scores)), splits.train)
    assert np.isfinite(scores[splits.train]).all() and np.isnan(scores[outside]).all()
    assert scores[splits.retain].max() <= scores[splits.forget].min()
    # Retrain, which never saw them, misclassifies the memorised images far more than random ones.
    assert hard.retrain_metrics["UA"] > 2 * digits_random.retrain_metrics["UA"] + 3
    assert hard.original_metrics["UA"] < hard.retrain_metrics["UA"]  # the original had fitted them


def test_corrupted_cached_scores_are_one_clear_error(digits_random, cache_dir):
    config = experiment_from_preset("digits", epochs=FAST_EPOCHS, forget="memorised:10")
    train = digits_random.splits.train
    first = memorisation_scores(config, digits_random.data, train, ArtifactCache(cache_dir))  # kept in the cache
    [stored] = [path for path in Path(cache_dir).glob("*/scores.npy")
                if json.loads((path.parent / "key.json").read_text())["role"] == "memorisation-scores"]
    assert np.array_equal(np.load(stored), first, equal_nan=True)
    kept = stored.read_bytes()
    try:
        stored.write_bytes(b"not an array")
        with pytest.raises(UserError, match="corrupted"):
            memorisation_scores(config, digits_random.data, train, ArtifactCache(cache_dir))
    finally:
        stored.write_bytes(kept)
