"""One error type for everything a user can get wrong, and the CLI wrapper that prints it.

Every command-line entry point runs through `cli_entry`, so bad input ends in exactly one
line on stderr (`error: ...`) and exit status 2, never a traceback.
"""
from __future__ import annotations

import sys
from typing import Callable, NoReturn


class UserError(Exception):
    """Bad input from the user: an unknown name, an out-of-range value, a missing file."""


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the run is aborted rather than saved."""


def yaml_problem(err: Exception) -> str:
    """A YAML parse error as one line with where it is: `line 3, column 12: expected ',' or ']'`."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or (str(err).splitlines() or [type(err).__name__])[0]
    context = getattr(err, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}" + (f" ({context})" if context else "")


def fail(message: str) -> NoReturn:
    raise UserError(message)


def cli_entry(main: Callable[[list[str] | None], int | None]) -> Callable[[list[str] | None], NoReturn]:
    """Wrap a `main(argv)` so that `UserError` becomes one stderr line and exit code 2."""

    def run(argv: list[str] | None = None) -> NoReturn:
        try:
            code = main(argv)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            sys.exit(130)
        sys.exit(code or 0)

    return run
