"""analysis.mia_boundary: the MIA-Efficacy SVM's decision, described."""
import numpy as np

from analysis.mia_boundary import format_boundary, svm_boundary
from study.evaluation.metrics import mia_efficacy


def _near_one(rng, scale, n):
    return np.clip(1.0 - rng.exponential(scale, n), 0.0, 1.0)


def test_separable_sets_give_a_member_region_near_one_and_the_metric_value():
    rng = np.random.default_rng(0)
    conf = {"retain": _near_one(rng, 0.001, 900), "test": _near_one(rng, 0.05, 1000), "forget": _near_one(rng, 0.05, 100)}
    boundary = svm_boundary(conf, seed=0)
    assert boundary.member_low is not None and 0.9 < boundary.member_low < 1.0 and boundary.member_high == 1.0
    assert boundary.balanced_accuracy > 75
    assert boundary.non_member_pct["forget"] == mia_efficacy(conf["retain"], conf["test"], conf["forget"], seed=0)
    assert "MIA-Efficacy (forget called non-member)" in format_boundary("run", boundary)


def test_inseparable_sets_are_fitted_in_equal_numbers_and_separate_at_chance():
    """Retain as (un)confident as test, test the larger set (the proxy: 9,000 vs 10,000): the SVM
    sees as many non-members as members, so it has no majority class to call everything."""
    rng = np.random.default_rng(1)
    conf = {"retain": _near_one(rng, 0.05, 900), "test": _near_one(rng, 0.05, 1000), "forget": _near_one(rng, 0.001, 100)}
    boundary = svm_boundary(conf, seed=0)
    assert boundary.counts == {"members": 900, "non_members": 900}
    assert 40.0 < boundary.balanced_accuracy < 60.0
    assert boundary.non_member_pct["forget"] == mia_efficacy(conf["retain"], conf["test"], conf["forget"], seed=0)
