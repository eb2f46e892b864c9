"""Rows name the reference models they were measured on (weights digests), and a table says so
where its rows were measured against different ones."""
import pandas as pd
import torch

from analysis.compare_table import reference_notes
from study.core.models import build_model
from study.engine.seed_runs import evaluation_row
from study.core.cache import array_digest
from study.experiment.artifacts import weights_digest
from tests.conftest import FAST_METHOD_PARAMS


def test_the_digest_follows_the_weights_not_the_object():
    model = build_model("cnn", 1, 10, seed=0)
    same = build_model("cnn", 1, 10, seed=0)
    assert weights_digest(model) == weights_digest(same)
    with torch.no_grad():
        same.head.bias[0] += 1e-6  # a float sum taken in another order moves a weight this much
    assert weights_digest(model) != weights_digest(same)
    statistics = build_model("cnn", 1, 10, seed=0)
    statistics.body[1].running_mean += 1.0  # buffers count too: batch-norm statistics are part of the model
    assert weights_digest(model) != weights_digest(statistics)


def test_every_row_records_its_references(digits_random):
    digests = digits_random.reference_digests()
    assert digests == {"original_digest": weights_digest(digits_random.original),
                       "retrain_digest": weights_digest(digits_random.retrain),
                       "forget_digest": array_digest(digits_random.splits.forget)}
    assert digests["original_digest"] != digests["retrain_digest"]
    row = evaluation_row(digits_random, "ga", FAST_METHOD_PARAMS["ga"], {"seed": 0})
    assert all(row[name] == digest for name, digest in digests.items()) and "attacker_digest" not in row


def test_a_dau_row_names_the_pretrained_attacker_it_loaded(digits_random):
    """DAU's shared attacker is a cached artifact like the references: its row records its digest,
    the same for two runs that load the same snapshot, another for another pre-training length."""
    params = {**FAST_METHOD_PARAMS["dau"], "attacker_pretrain_iters": 5}
    first, again = (evaluation_row(digits_random, "dau", params, {"seed": 0}) for _ in range(2))
    longer = evaluation_row(digits_random, "dau", {**params, "attacker_pretrain_iters": 7}, {"seed": 0})
    assert len(first["attacker_digest"]) == 16 and first["attacker_digest"] == again["attacker_digest"]
    assert longer["attacker_digest"] != first["attacker_digest"]


def test_a_table_says_when_a_seeds_rows_mix_references():
    rows = pd.DataFrame({"seed": [1, 1, 1, 2], "method": ["ft", "ga", "rl", "ft"],
                         "original_digest": ["a", "a", "b", "c"], "retrain_digest": ["r", "r", "r", None]})
    notes = reference_notes(rows)
    assert "seed 1: rows measured against 2 different original models: a (2 rows), b (1 rows)" in notes
    assert "1 of 4 rows record no reference digests (kept before they were recorded)" not in notes  # originals all set
    assert not any("seed 2" in note for note in notes)
    assert reference_notes(rows.drop(columns=["original_digest", "retrain_digest"])) == [
        "none of the 4 rows records the reference models it was measured on (rows kept before digests were recorded)"]
    assert reference_notes(rows.iloc[:2]) == []
