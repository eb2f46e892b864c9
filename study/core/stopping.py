"""Ctrl+C that keeps the run in flight: the first stops before the next run, a second stops now.

A comparison's evaluation rows and the ablation bench's runs last up to half an hour each on the
proxy, and every finished one is written to a log the next invocation resumes from. A plain
KeyboardInterrupt would throw away the run in flight; under `stop_after_run_in_flight` the first
SIGINT only marks the stop as requested (the caller checks between runs and raises
KeyboardInterrupt there, which `cli_entry` turns into "error: interrupted"), and a second raises
KeyboardInterrupt at once. Both the in-process loops and the worker pool (`study.engine.row_pool`)
use it.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

STOPPING = "stopping: the run in flight will finish and be kept (Ctrl+C again abandons it)"


class StopRequest:
    """A SIGINT handler: the first signal sets `requested` (and says `STOPPING` to `log`), a second
    raises KeyboardInterrupt, which abandons what is in flight."""

    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        self.requested = False
        self.log = log

    def __call__(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.log is not None:
            self.log(STOPPING)

    def raise_if_requested(self) -> None:
        """Between runs: end the loop as interrupted if a stop was asked for."""
        if self.requested:
            raise KeyboardInterrupt


@contextmanager
def stop_after_run_in_flight(log: Callable[[str], None] | None = None) -> Iterator[StopRequest]:
    """Inside the block, SIGINT goes to a `StopRequest` that tells `log` (none: the caller says
    it, as the worker pool does with its counts); the previous handler comes back after. Signal
    handlers belong to the main thread; elsewhere the request is never set and Ctrl+C behaves as
    before."""
    stop = StopRequest(log)
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
