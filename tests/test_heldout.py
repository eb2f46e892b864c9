"""Held-out attacks and the retrain-free score: computed on digits without touching Retrain."""
import json
import math

import pytest

from study.core.cache import ArtifactCache
from study.evaluation.heldout import RetrainFreeJudge, heldout_split
from study.experiment.config import experiment_from_preset
from study.experiment.prepare import prepare
from tests.conftest import FAST_EPOCHS


class RecordingCache(ArtifactCache):
    """An artifact cache that remembers every key it was asked for."""

    def __init__(self, root):
        super().__init__(root)
        self.keys = []

    def get_or_build(self, key, build):
        self.keys.append(key)
        return super().get_or_build(key, build)

    def has(self, key):
        self.keys.append(key)
        return super().has(key)


def test_retrain_free_path_never_touches_a_retrain_artifact(tmp_path, cache_dir):
    cache = RecordingCache(cache_dir)
    config = experiment_from_preset("digits", epochs=FAST_EPOCHS)
    prepared = prepare(config, cache, need_retrain=False, log=lambda m: None)
    judge = RetrainFreeJudge(prepared, cache)
    import torch

    rng_state = torch.get_rng_state()
    result = judge(prepared.original)
    assert torch.equal(rng_state, torch.get_rng_state()), "judging must not disturb the run's random stream"
    assert prepared.retrain is None and "avg_disparity" not in prepared.original_metrics
    roles = {key.get("role") for key in cache.keys}
    assert "retrain" not in roles and "rmia-reference" in roles
    for key in ("heldout/samia_auc", "heldout/rmia_auc", "heldout/samia_tpr@0.01", "retrain_free_score"):
        assert math.isfinite(result[key])
    components = [result[f"retrain_free/{c}"] for c in ("forget_gap", "attack_gap", "retain_drop", "val_drop")]
    assert result["retrain_free_score"] == pytest.approx(sum(components) / 4)
    assert result["retrain_free/retain_drop"] == 0.0 and result["retrain_free/val_drop"] == 0.0  # the original itself


def test_heldout_split_halves_are_disjoint_and_classwise_uses_the_forgotten_class(digits_classwise):
    split = heldout_split(digits_classwise)
    assert not set(split.forget_fit) & set(split.forget_eval)
    assert not set(split.nonmember_fit) & set(split.nonmember_eval)
    assert not set(split.reference_train) & set(split.nonmember_eval)
    train_y = digits_classwise.data.train_y.numpy()
    assert set(train_y[split.nonmember_eval]) == {3} and 3 not in set(train_y[split.val_remaining])


def test_study_logged_both_objectives_and_selection_reports_them(finished_study):
    import subprocess
    import sys

    _, study_dir, _ = finished_study
    from analysis.selection import selection_summary
    from study.records.trials import load_study

    frame = load_study(study_dir)
    assert frame["retrain_free_score"].notna().all() and frame["heldout/rmia_auc"].notna().all()
    summary = selection_summary(frame)
    assert summary["trials"] == 3 and -1.0 <= summary["spearman_rho"] <= 1.0
    picked = frame.loc[frame["retrain_free_score"].idxmin()]
    assert summary["picked_avg_disparity"] == pytest.approx(picked["avg_disparity"])
    assert summary["regret"] == pytest.approx(picked["avg_disparity"] - frame["avg_disparity"].min())
    last = json.loads((study_dir / f"trial_{picked['trial_id']}" / "result.json").read_text().strip().splitlines()[-1])
    assert last["retrain_free_score"] == pytest.approx(picked["retrain_free_score"])
    result = subprocess.run([sys.executable, "-m", "analysis.selection", str(study_dir)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "Spearman" in result.stdout, result.stderr
