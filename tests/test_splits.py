import numpy as np
import pytest

from study.core.errors import UserError
from study.core.splits import Splits, make_splits, parse_forget_spec

TRAIN_Y = np.arange(1000) % 10
TEST_Y = np.arange(200) % 10


def test_random_split_is_reproducible_and_disjoint():
    spec = parse_forget_spec("random:10")
    a = make_splits(TRAIN_Y, TEST_Y, spec, seed=3, val_size=100)
    b = make_splits(TRAIN_Y, TEST_Y, spec, seed=3, val_size=100)
    for key, value in a.as_arrays().items():
        assert np.array_equal(value, b.as_arrays()[key]), key
    assert len(a.forget) == 90 and len(a.retain) == 810 and len(a.val) == 100
    assert not set(a.forget) & set(a.retain)
    assert not set(a.val) & (set(a.forget) | set(a.retain))
    assert len(set(a.val) | set(a.train)) == 1000
    other = make_splits(TRAIN_Y, TEST_Y, spec, seed=4, val_size=100)
    assert not np.array_equal(a.forget, other.forget)


def test_pinned_indices_do_not_drift():
    """The split is a pure function of (labels, spec, seed): pin a few indices so an accidental
    change of generator or order is caught."""
    split = make_splits(TRAIN_Y, TEST_Y, parse_forget_spec("random:10"), seed=0, val_size=100)
    again = np.random.Generator(np.random.PCG64(0)).permutation(1000)
    assert np.array_equal(split.val, np.sort(again[:100]))


def test_classwise_split():
    split = make_splits(TRAIN_Y, TEST_Y, parse_forget_spec("class:3"), seed=0, val_size=100)
    assert (TRAIN_Y[split.forget] == 3).all() and (TRAIN_Y[split.retain] != 3).all()
    assert (TEST_Y[split.test] != 3).all() and (TEST_Y[split.test_forget] == 3).all()
    assert len(split.test) + len(split.test_forget) == 200


def test_random_and_classwise_share_the_training_set():
    a = make_splits(TRAIN_Y, TEST_Y, parse_forget_spec("random:10"), seed=1, val_size=100)
    b = make_splits(TRAIN_Y, TEST_Y, parse_forget_spec("class:2"), seed=1, val_size=100)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)


def test_train_subset_size():
    split = make_splits(TRAIN_Y, TEST_Y, parse_forget_spec("random:10"), seed=0, val_size=100, train_size=500)
    assert len(split.train) == 500 and len(split.forget) == 50


def test_save_and_load(tmp_path):
    split = make_splits(TRAIN_Y, TEST_Y, parse_forget_spec("class:1"), seed=0, val_size=100)
    split.save(tmp_path / "s.npz")
    loaded = Splits.load(tmp_path / "s.npz")
    for key, value in split.as_arrays().items():
        assert np.array_equal(value, loaded.as_arrays()[key])


@pytest.mark.parametrize("text", ["random:0", "random:150", "random:100", "random:-1", "random", "class:x",
                                  "klass:3", "class:2.5", "", "random:ten", "memorised:0", "memorised:100",
                                  "memorised"])
def test_bad_forget_specs(text):
    with pytest.raises(UserError):
        parse_forget_spec(text, num_classes=10)


def test_class_out_of_range():
    with pytest.raises(UserError, match="0..9"):
        parse_forget_spec("class:99", num_classes=10)


def test_a_memorised_forget_set_is_the_top_scoring_part_of_the_training_set():
    spec = parse_forget_spec("memorized:10")  # either spelling
    assert str(spec) == "memorised:10" and spec.scheme == "random" and not spec.is_classwise
    scores = np.full(1000, np.nan)
    plain = make_splits(TRAIN_Y, TEST_Y, parse_forget_spec("random:10"), seed=2, val_size=100, select_size=50)
    scores[plain.train] = (plain.train * 7919) % 1000 / 1000.0  # a fixed, scrambled ranking
    scores[plain.train[:5]] = 2.0  # five ties at the top: the lowest indices win nothing, all five are in
    split = make_splits(TRAIN_Y, TEST_Y, spec, seed=2, val_size=100, select_size=50, scores=scores)
    assert np.array_equal(split.train, plain.train) and np.array_equal(split.val, plain.val)
    assert np.array_equal(split.select, plain.select) and len(split.forget) == 85
    ranked = plain.train[np.argsort(-scores[plain.train], kind="stable")]
    assert np.array_equal(split.forget, np.sort(ranked[:85]))
    assert set(plain.train[:5]) <= set(split.forget)
    assert scores[split.retain].max() <= scores[split.forget].min()
    with pytest.raises(ValueError, match="memorised"):
        make_splits(TRAIN_Y, TEST_Y, spec, seed=2, val_size=100)  # no scores


def test_the_schemes_methods_follow():
    from study.core.splits import forget_scheme

    assert [forget_scheme(t) for t in ("random:10", "class:0", "memorised:5")] == ["random", "class", "random"]
