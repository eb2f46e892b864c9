"""DAU's pre-trained attacker as a shared artifact: built on a copy, cached, snapshotted, timed apart."""
import json
import subprocess
import sys
import threading
import time

import pytest
import torch

import study.methods.dau.store as attacker_store
from study.core.cache import ArtifactCache
from study.engine.runner import run_method
from study.experiment.unlearn_data import SharedContext
from study.methods import build_method
from study.methods.dau.attacker import AttackerSettings, pretrain_attacker
from study.methods.dau.store import AttackerStore

SETTINGS = AttackerSettings(iters=5, noise_copies=2, batch_size=32, seed=0)


def _members_and_val(prepared):
    d, s = prepared.data, prepared.splits
    return (d.train_x[s.train], d.train_y[s.train]), (d.train_x[s.val], d.train_y[s.val])


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def counted_passes(monkeypatch):
    """How many pre-training passes the store runs (it calls pretrain_attacker once per pass)."""
    calls = []
    real = attacker_store.pretrain_attacker

    def counting(*args, **kwargs):
        calls.append(kwargs.get("lengths", args[5] if len(args) > 5 else None))
        return real(*args, **kwargs)

    monkeypatch.setattr(attacker_store, "pretrain_attacker", counting)
    return calls


def test_building_the_attacker_leaves_the_original_bit_identical(digits_random, tmp_path):
    before = _state(digits_random.original)
    assert any("running" in k for k in before), "the model must have batch norm for this test to mean anything"
    members, val = _members_and_val(digits_random)
    store = AttackerStore(SharedContext(ArtifactCache(tmp_path), {"test": 1}, digits_random.original, members, val, 10,
                                        digits_random.data.pixel_std, "cpu", log=lambda s: None))
    store.ensure(SETTINGS, [3, 5])
    after = digits_random.original.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_snapshot_equals_a_pass_of_that_length(digits_random, tmp_path, counted_passes):
    members, val = _members_and_val(digits_random)
    alone = pretrain_attacker(digits_random.original, members, val, 10, SETTINGS, [5], digits_random.data.pixel_std)[5]
    store = AttackerStore(SharedContext(ArtifactCache(tmp_path), {"test": 2}, digits_random.original, members, val, 10,
                                        digits_random.data.pixel_std, "cpu", log=lambda s: None))
    store.ensure(SETTINGS, [0, 5, 20])
    assert len(counted_passes) == 1  # one pass for the three lengths
    snapshot = store.get(SETTINGS)
    assert len(counted_passes) == 1  # read from the cache
    assert snapshot.iters == 5 and snapshot.state.keys() == alone.state.keys()
    assert all(torch.equal(snapshot.state[k], alone.state[k]) for k in alone.state)
    longer = store.get(AttackerSettings(**{**SETTINGS.key(), "iters": 20}))
    assert longer.seconds >= snapshot.seconds
    assert any(not torch.equal(longer.state[k], alone.state[k]) for k in alone.state)


def test_two_processes_needing_one_attacker_pretrain_it_once(digits_random, tmp_path, monkeypatch):
    """The second asker (another Ray trial or evaluation worker; a thread here: flock also holds
    between two opens in one process) waits for the first one's pass and loads its snapshots."""
    calls = []
    real = attacker_store.pretrain_attacker

    def slow_counting(*args, **kwargs):
        calls.append(1)
        time.sleep(1.0)  # long enough for the other asker to arrive while this pass runs
        return real(*args, **kwargs)

    monkeypatch.setattr(attacker_store, "pretrain_attacker", slow_counting)
    members, val = _members_and_val(digits_random)

    def ask() -> None:
        store = AttackerStore(SharedContext(ArtifactCache(tmp_path), {"test": 5}, digits_random.original, members, val,
                                            10, digits_random.data.pixel_std, "cpu", log=lambda s: None))
        store.get(SETTINGS)

    askers = [threading.Thread(target=ask) for _ in range(2)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    assert len(calls) == 1


def test_a_pass_stores_the_standard_lengths_below_it(digits_random, tmp_path, counted_passes, monkeypatch):
    import study.methods.dau.store as store_module

    monkeypatch.setattr(store_module, "STANDARD_LENGTHS", (0, 10, 20))  # (0, 250, 500, ...), 25 times shorter
    members, val = _members_and_val(digits_random)
    store = AttackerStore(SharedContext(ArtifactCache(tmp_path), {"test": 3}, digits_random.original, members, val, 10,
                                        digits_random.data.pixel_std, "cpu", log=lambda s: None))
    store.ensure(AttackerSettings(**{**SETTINGS.key(), "iters": 12}), [12])
    for n in (0, 10, 12):
        assert store.cache.has(store.key(AttackerSettings(**{**SETTINGS.key(), "iters": n})))
    assert not store.cache.has(store.key(AttackerSettings(**{**SETTINGS.key(), "iters": 20})))
    assert len(counted_passes) == 1


def test_a_second_dau_run_loads_the_attacker_instead_of_pretraining(digits_random, counted_passes):
    params = {"attacker_pretrain_iters": 4, "pretrain_lr": 7e-4, "epochs": 1, "batch_size": 128, "noise_copies": 2}
    for _ in range(2):
        method = build_method("dau", params)
        method.setup(digits_random.fresh_original(), digits_random.unlearn_data(log=lambda s: None))
    assert len(counted_passes) == 1


def test_without_a_cache_dau_pretrains_its_own_attacker_on_a_copy(digits_random):
    """Experiments built by hand (the audit's K originals) give no artifact cache: DAU then
    pre-trains against its own model's copy, still leaving the model itself unchanged."""
    data = digits_random.unlearn_data()
    data.shared = None
    model = digits_random.fresh_original()
    before = _state(model)
    method = build_method("dau", {"attacker_pretrain_iters": 3, "epochs": 1, "batch_size": 128, "noise_copies": 2})
    method.setup(model, data)
    assert all(torch.equal(before[k], method.model.state_dict()[k]) for k in before)
    assert method.shared_artifact_seconds()["attacker_pretrain_seconds"] > 0


def test_run_time_excludes_pretraining(digits_random, monkeypatch):
    real = attacker_store.pretrain_attacker
    pause = 5.0

    def slow(*args, **kwargs):
        time.sleep(pause)
        return real(*args, **kwargs)

    monkeypatch.setattr(attacker_store, "pretrain_attacker", slow)
    params = {"attacker_pretrain_iters": 3, "pretrain_lr": 6e-4, "epochs": 1, "batch_size": 128, "noise_copies": 2}
    began = time.perf_counter()
    result = run_method(digits_random, build_method("dau", params), log=lambda s: None)
    wall = time.perf_counter() - began
    assert result.run_seconds < wall - pause
    assert result.artifact_seconds["attacker_pretrain_seconds"] > 0


def test_run_folder_records_pretraining_apart(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "study.run", "--method", "dau", "-p", "attacker_pretrain_iters=3", "-p",
               "batch_size=128", "-p", "noise_copies=2", "-p", "epochs=1", "--epochs", "5", "--threads", "2",
               "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["attacker_pretrain_seconds"] > 0 and metrics["run_seconds"] > 0
    assert "attacker pretrain:" in result.stdout and "with it" in result.stdout
