"""Pre-trained attackers as cached artifacts, one per (original model, attacker settings, length).

DAU's attacker is pre-trained once per original model and shared by every unlearning run on it
(SPEC.md), like the original and Retrain models. An entry holds `attacker.pt` and `meta.json`
(the pre-training seconds up to that length, and the attacker's loss and accuracy at the end).
`ensure` builds every missing length of a list in one pass to the longest (storing the standard
lengths below it on the way), so a study that searches the pre-training length pays for one pass;
DAU's `prebuild` hook calls it in the study's driver before any trial starts, and each trial only loads.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import pickle
from pathlib import Path
from typing import Callable, Iterable

import torch

from study.core.cache import key_digest, source_digest
from study.core.errors import UserError
from study.experiment.unlearn_data import SharedContext
from study.methods.dau.attacker import AttackerSettings, PretrainedAttacker, pretrain_attacker

ATTACKER_FILE, META_FILE = "attacker.pt", "meta.json"
# Lengths the search spaces list: a pass stores these on its way too (a snapshot costs a copy of
# the attacker's weights), so a later study or run at a shorter length needs no pass of its own.
STANDARD_LENGTHS = (0, 250, 500, 1000, 2000)


@functools.cache
def _attacker_code_digest() -> str:
    """The code that shapes a pre-trained attacker: a change to it builds new entries."""
    import sys

    from study.methods.dau import attacker, losses

    return source_digest(attacker, losses, sys.modules[__name__])


def attacker_variants(method_class, options: dict[str, list | None], seed: int, retain_size: int,
                      log: Callable[[str], None] = print) -> list[tuple[AttackerSettings, list[int]]]:
    """The pre-trained attackers a search's runs can load: (settings, the lengths to snapshot), from the
    values each setting that keys the artifact can take (`options`: fixed values and `choice` lists;
    unlisted settings keep their defaults). A key setting searched over a continuous range gets no
    pre-built attacker (each trial builds its own)."""
    keys = [name for name in method_class.attacker_key_params if name in options]
    ranged = [name for name in keys if options[name] is None]
    if ranged:
        log(f"note: {', '.join(ranged)} searched over a range, so each trial pre-trains its own attacker; "
            "search it as a choice to pre-build them once")
        return []
    fixed = {name: values[0] for name, values in options.items() if values is not None and len(values) == 1}
    grouped: dict[str, tuple[AttackerSettings, set[int]]] = {}
    for values in itertools.product(*(options[name] for name in keys)):
        method = method_class(**{**fixed, **dict(zip(keys, values))})
        settings = method.attacker_settings(seed, retain_size)
        shape = json.dumps({**settings.key(), "iters": None}, sort_keys=True, default=str)
        grouped.setdefault(shape, (settings, set()))[1].add(settings.iters)
    return [(settings, sorted(lengths)) for settings, lengths in grouped.values()]


class AttackerStore:
    """Pre-trained attackers against one original model, read from (or written to) the cache:
    members are the whole training set (retain and forget), non-members the validation set (SPEC.md)."""

    def __init__(self, shared: SharedContext):
        self.cache, self.defender, self.log = shared.cache, shared.original, shared.log
        self.members, self.non_members = shared.members, shared.non_members
        self.num_classes, self.pixel_std, self.device = shared.num_classes, shared.pixel_std, shared.device
        self.original = key_digest(shared.original_key)

    def key(self, settings: AttackerSettings) -> dict:
        return {"role": "attacker", "original": self.original, "code": _attacker_code_digest(), **settings.key()}

    def ensure(self, settings: AttackerSettings, lengths: Iterable[int]) -> None:
        """Build every listed length that is not cached yet, in one pre-training pass."""
        variants = {n: dataclasses.replace(settings, iters=int(n)) for n in lengths}
        if all(self.cache.has(self.key(s)) for s in variants.values()):
            return
        # One pass per attacker shape at a time: two processes (Ray trials, evaluation workers) that
        # need the same attacker would otherwise both pre-train it; the second waits and loads.
        with self.cache.locked({**self.key(settings), "iters": None, "lock": "pre-training pass"}):
            self._build_missing(settings, variants)

    def _build_missing(self, settings: AttackerSettings, variants: dict[int, AttackerSettings]) -> None:
        missing = sorted(n for n, s in variants.items() if not self.cache.has(self.key(s)))
        if not missing:
            return
        longest = missing[-1]
        for n in STANDARD_LENGTHS:
            variant = dataclasses.replace(settings, iters=n)
            if n < longest and n not in variants and not self.cache.has(self.key(variant)):
                variants[n] = variant
                missing.append(n)
        missing.sort()
        self.log(f"pre-training the attacker: {missing[-1]} iterations (snapshots at "
                 f"{', '.join(map(str, missing))}), batch {settings.batch_size}, {settings.noise_copies} noise copies, "
                 f"{'softmax' if settings.use_softmax else 'logit'} inputs ...")
        snapshots = pretrain_attacker(self.defender, self.members, self.non_members, self.num_classes, settings,
                                      missing, self.pixel_std, self.device, desc="pre-training the attacker")
        for n in missing:
            snapshot = snapshots[n]

            def write(folder: Path, snapshot: PretrainedAttacker = snapshot) -> None:
                torch.save(snapshot.state, folder / ATTACKER_FILE)
                (folder / META_FILE).write_text(json.dumps({"iters": snapshot.iters, "seconds": snapshot.seconds,
                                                            "stats": snapshot.stats}, indent=2))

            self.cache.get_or_build(self.key(variants[n]), write)
        self.log(f"attacker pre-trained: {snapshots[missing[-1]].seconds:.1f} s for {missing[-1]} iterations "
                 f"{snapshots[missing[-1]].stats}")

    def get(self, settings: AttackerSettings) -> PretrainedAttacker:
        """The attacker after `settings.iters` iterations, built now if it is not cached."""
        self.ensure(settings, [settings.iters])
        folder = self.cache.entry_path(self.key(settings))
        try:
            meta = json.loads((folder / META_FILE).read_text())
            state = torch.load(folder / ATTACKER_FILE, map_location="cpu", weights_only=True)
            return PretrainedAttacker(int(meta["iters"]), state, float(meta["seconds"]), dict(meta["stats"]))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
            raise UserError(f"cached attacker {folder} is corrupted ({type(err).__name__}); delete that folder "
                            "to pre-train it again") from None
