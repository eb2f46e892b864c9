"""A study's progress as one short line, instead of Ray Tune's trial table.

Ray's `CLIReporter` prints a table of every trial with its parameters and metrics: about 150
columns on a DAU study, which wraps on any terminal and buries the one thing a user waits for. By
default a study prints a line when a trial ends or fails, and every `every_s` seconds otherwise:

    dau: 5/8 trials done, 2 running, 0 failed; best avg_disparity 1.93 (trial 3f2a1_00004, lr 0.012, alpha 0.41); 2m31s

`study.tune --verbose` (and `study.compare --verbose`) bring Ray's table back.
"""
from __future__ import annotations

import sys
import time
from typing import Sequence

from ray.tune import ProgressReporter

FINISHED, FAILED, RUNNING = "TERMINATED", "ERROR", "RUNNING"
MAX_PARAMS = 3  # searched values shown for the best trial


def format_value(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 0.1 and value != 0 else f"{value:.3f}".rstrip("0").rstrip(".")


class TrialLineReporter(ProgressReporter):
    """One line per change in the trials' states (and every `every_s` seconds while they run)."""

    def __init__(self, name: str, metric: str, searched: Sequence[str], total: int, every_s: float = 30.0,
                 stream=None):
        self.name, self.metric, self.searched, self.total = name, metric, list(searched), total
        self.every_s, self.stream = every_s, stream
        self.began = self.last_report = time.monotonic()
        self.last_counts: tuple | None = None

    def counts(self, trials: Sequence) -> tuple[int, int, int]:
        statuses = [trial.status for trial in trials]
        return statuses.count(FINISHED), statuses.count(RUNNING), statuses.count(FAILED)

    def should_report(self, trials: Sequence, done: bool = False) -> bool:
        """When a trial ends or fails (a trial starting is not news), at the end, and every `every_s`."""
        ended = self.counts(trials)[::2]
        last = self.last_counts[::2] if self.last_counts else None
        return done or ended != last or time.monotonic() - self.last_report >= self.every_s

    def line(self, trials: Sequence) -> str:
        finished, running, failed = self.counts(trials)
        text = f"{self.name}: {finished}/{self.total} trials done, {running} running, {failed} failed"
        scored = [t for t in trials if isinstance((t.last_result or {}).get(self.metric), (int, float))]
        if scored:
            best = min(scored, key=lambda t: t.last_result[self.metric])
            params = [f"{name} {format_value(best.config['params'][name])}" for name in self.searched
                      if isinstance((best.config.get("params") or {}).get(name), (int, float))
                      and not isinstance(best.config["params"][name], bool)]
            if len(params) > MAX_PARAMS:  # a line, not a table: the export has them all
                params = params[:MAX_PARAMS] + ["…"]
            text += (f"; best {self.metric} {format_value(best.last_result[self.metric])} "
                     f"(trial {best.trial_id}" + (", " + ", ".join(params) if params else "") + ")")
        elapsed = int(time.monotonic() - self.began)
        return f"{text}; {elapsed // 60}m{elapsed % 60:02d}s"

    def report(self, trials: Sequence, done: bool, *sys_info: str) -> None:
        self.last_counts, self.last_report = self.counts(trials), time.monotonic()
        print(self.line(trials), file=self.stream or sys.stdout, flush=True)
