"""Run a command's entry point inside the test process, as `python -m <module> <args>` would.

For the many tests that only check what a command prints on bad input and its exit status:
each `python -m` costs an interpreter start and the imports of torch and Ray (4 to 7 seconds on
2 cores), which is most of what those tests cost. Every entry point is `cli_entry(main)`, so the
path from the argument list to the exit status is the same code in either case; a few tests
still start the real command to keep its `__main__` wiring covered.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import os
from dataclasses import dataclass

import torch


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_in_process(module: str, *args: str) -> Result:
    """`module.run(args)` with its output captured; the environment and torch's thread count are
    put back afterwards (some commands set them before they get to the bad input)."""
    entry = importlib.import_module(module).run
    environment, threads = dict(os.environ), torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                entry(list(args))
            except SystemExit as exit_:
                code = exit_.code
    finally:
        os.environ.clear()
        os.environ.update(environment)
        torch.set_num_threads(threads)
    return Result(code if isinstance(code, int) else (0 if code is None else 1), out.getvalue(), err.getvalue())
