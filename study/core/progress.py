"""Progress on every step a user waits for: a tqdm bar with rate and ETA on a terminal (at least
`MIN_BAR_COLUMNS` wide), a line every `LOG_EVERY_S` seconds when the output goes to a log or to a
terminal too narrow for a bar (one reporting width 0 showed nothing at all), nothing under `--quiet`.

Training an original or Retrain, pre-training DAU's attacker, a method's epochs, a comparison's
evaluation runs and the audit's models all report through `Progress`, so no step is silent for
more than about ten seconds. Inside a Ray trial the study's own reporter speaks for the trial,
so trials run quiet.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

LOG_EVERY_S = 10.0  # the longest a step stays silent in a log
MIN_BAR_COLUMNS = 40  # a narrower terminal (one reporting width 0 among them) gets the log lines, not a bar
Log = Callable[[str], None]  # where a step's one-line messages go (print, or nowhere)
_quiet = False
T = TypeVar("T")


def set_quiet(quiet: bool) -> None:
    """Silence (or restore) every progress display of this process."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    return _quiet


def terminal_columns() -> int:
    """The width of the terminal stderr writes to; 0 where it reports none (some CI consoles, `stty cols 0`)."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 0


class Progress:
    """Counts `total` units of one step (`desc`); `update(n, **postfix)` after each unit."""

    def __init__(self, total: int | None, desc: str, unit: str = "it"):
        self.total, self.desc, self.unit = total, desc, unit
        self.count = 0
        self.began = self.last_line = time.perf_counter()
        self.bar = None
        if not _quiet and sys.stderr.isatty() and terminal_columns() >= MIN_BAR_COLUMNS:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)

    def update(self, n: int = 1, **postfix: float) -> None:
        self.count += n
        if _quiet:
            return
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
            return
        now = time.perf_counter()
        if now - self.last_line >= LOG_EVERY_S:
            self.last_line = now
            print(self.line(now, postfix), file=sys.stderr, flush=True)

    def line(self, now: float, postfix: dict | None = None) -> str:
        """`desc: 120/1000 it (12%), 8.1 it/s, ETA 1m48s` for logs."""
        elapsed = now - self.began
        rate = self.count / elapsed if elapsed > 0 else 0.0
        done = f"{self.count}/{self.total}" if self.total else str(self.count)
        text = f"{self.desc}: {done} {self.unit}"
        if self.total:
            text += f" ({100.0 * self.count / self.total:.0f}%)"
        text += f", {rate:.3g} {self.unit}/s"
        if self.total and rate > 0:
            remaining = (self.total - self.count) / rate
            text += f", ETA {int(remaining // 60)}m{int(remaining % 60):02d}s"
        if postfix:
            text += ", " + ", ".join(f"{k} {v:.4g}" for k, v in postfix.items())
        return text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def tracked(items: Iterable[T], total: int | None, desc: str, unit: str = "it") -> Iterator[T]:
    """`items`, reporting progress as they are consumed."""
    with Progress(total, desc, unit) as progress:
        for item in items:
            yield item
            progress.update()
