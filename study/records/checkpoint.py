"""A trial's checkpoint: what the Trainable saves between epochs and what analysis reads back.

One file, `trial_state.pt`, in each of Ray Tune's checkpoint folders: the epochs done and, per
seed of the trial, its run time so far, torch's global RNG state as it left it, and its method's
state (model, optimisers, attacker). Checkpoints written before trials could average seeds hold
one seed's `method` and `run_seconds` at the top level and no seed number; `read_trial_state`
reads both layouts, so `--resume` and `analysis.selection` work on older studies too.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from study.core.errors import UserError

STATE_FILE = "trial_state.pt"


@dataclass
class SeedState:
    seed: int
    run_seconds: float
    method: dict | None  # the method's state_dict; None before its first epoch (or for Retrain)
    rng_state: torch.Tensor | None = None


@dataclass
class TrialState:
    epochs_done: int
    seeds: list[SeedState]


def write_trial_state(folder: str | Path, state: TrialState) -> None:
    torch.save({"epochs_done": state.epochs_done,
                "seeds": [{"seed": s.seed, "run_seconds": s.run_seconds, "rng_state": s.rng_state, "method": s.method}
                          for s in state.seeds]}, Path(folder) / STATE_FILE)


def read_trial_state(folder: str | Path, seed: int, map_location: str = "cpu") -> TrialState:
    """The trial state in `folder`; `seed` names the single seed of an old-layout checkpoint."""
    path = Path(folder) / STATE_FILE
    try:
        # tensors, numbers and containers only: a checkpoint someone hands over cannot run code on load
        raw = torch.load(path, map_location=map_location, weights_only=True)
        entries = raw.get("seeds") or [{"seed": seed, "run_seconds": raw["run_seconds"], "method": raw.get("method")}]
        seeds = [SeedState(int(e["seed"]), float(e["run_seconds"]), e.get("method"),
                           e["rng_state"].cpu() if e.get("rng_state") is not None else None) for e in entries]
        return TrialState(int(raw["epochs_done"]), seeds)
    except FileNotFoundError:
        raise UserError(f"checkpoint file {path} is missing") from None
    except (RuntimeError, OSError, EOFError, KeyError, TypeError, AttributeError, pickle.UnpicklingError) as err:
        raise UserError(f"checkpoint {path} is corrupted or not a trial state ({type(err).__name__})") from None


def final_checkpoint(trial_dir: str | Path) -> Path:
    """The newest checkpoint folder of a trial."""
    found = sorted(Path(trial_dir).glob(f"checkpoint_*/{STATE_FILE}"))
    if not found:
        raise UserError(f"{trial_dir} has no checkpoint to measure")
    return found[-1].parent
