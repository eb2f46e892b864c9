"""The trial checkpoint format: one reader for both layouts, one clear error for a broken file."""
import pytest
import torch

from study.core.errors import UserError
from study.records.checkpoint import (STATE_FILE, SeedState, TrialState, final_checkpoint, read_trial_state,
                                      write_trial_state)


def test_a_written_state_reads_back(tmp_path):
    state = TrialState(2, [SeedState(0, 1.5, {"model": {"w": torch.ones(2)}}, torch.arange(3)),
                           SeedState(1, 2.5, None)])
    write_trial_state(tmp_path, state)
    back = read_trial_state(tmp_path, seed=9)
    assert back.epochs_done == 2 and [s.seed for s in back.seeds] == [0, 1]
    assert torch.equal(back.seeds[0].method["model"]["w"], torch.ones(2))
    assert torch.equal(back.seeds[0].rng_state, torch.arange(3)) and back.seeds[1].method is None


def test_the_single_seed_layout_of_older_studies_reads_as_one_seed(tmp_path):
    torch.save({"epochs_done": 3, "run_seconds": 4.0, "method": {"model": {}}}, tmp_path / STATE_FILE)
    state = read_trial_state(tmp_path, seed=7)
    assert state.epochs_done == 3 and len(state.seeds) == 1
    assert (state.seeds[0].seed, state.seeds[0].run_seconds, state.seeds[0].rng_state) == (7, 4.0, None)


def test_broken_or_missing_checkpoints_are_one_clear_error(tmp_path):
    (tmp_path / STATE_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="corrupted"):
        read_trial_state(tmp_path, seed=0)
    with pytest.raises(UserError, match="missing"):
        read_trial_state(tmp_path / "nowhere", seed=0)
    with pytest.raises(UserError, match="no checkpoint"):
        final_checkpoint(tmp_path)
    for name in ("checkpoint_000001", "checkpoint_000002"):
        (tmp_path / name).mkdir()
        write_trial_state(tmp_path / name, TrialState(1, []))
    assert final_checkpoint(tmp_path).name == "checkpoint_000002"


@pytest.mark.parametrize("name", ["dau", "lotus", "sfr-on", "salun", "scrub"])
def test_every_kind_of_method_state_reads_back_with_weights_only(digits_random, tmp_path, name):
    """Checkpoints are read with `torch.load(weights_only=True)`; each method's state (the base's, or
    a method's own additions) holds only what that reader accepts."""
    from study.methods import build_method
    from tests.conftest import FAST_METHOD_PARAMS

    method = build_method(name, FAST_METHOD_PARAMS[name])
    method.start(digits_random.fresh_original(), digits_random.unlearn_data(log=lambda m: None))
    method.epoch(0)
    write_trial_state(tmp_path, TrialState(1, [SeedState(0, 1.0, method.state_dict(), torch.get_rng_state())]))
    restored = build_method(name, FAST_METHOD_PARAMS[name])
    restored.start(digits_random.fresh_original(), digits_random.unlearn_data(log=lambda m: None))
    restored.load_state_dict(read_trial_state(tmp_path, seed=0).seeds[0].method)
    for key, value in method.model.state_dict().items():
        assert torch.equal(value, restored.model.state_dict()[key]), key
