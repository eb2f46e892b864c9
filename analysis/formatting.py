"""Shared output helpers for the analysis commands: Markdown tables without `tabulate`,
"mean ± std" cells, and report folders written all-or-nothing. Method names and their order come
from the method classes (`study.methods.display_name`, `sort_key`), metric labels from
`study.evaluation.names`."""
from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd

from study.core.errors import UserError
from study.core.staging import staged_folder


def mean_std(mean: float, std: float, digits: int = 2) -> str:
    """'12.34 ± 0.56'; the std is left out when there is one value (std is NaN)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_number(value: float, digits: int = 3) -> str:
    """`digits` decimals, except for non-zero magnitudes below 0.1, which get `digits` significant
    digits: learning rates such as 0.00024 must not print as 0.000. NaN prints as empty."""
    if math.isnan(value):
        return ""
    if value != 0 and abs(value) < 0.1:
        return f"{value:.{digits}g}"
    return f"{value:.{digits}f}"


def markdown_table(table: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub Markdown table (no `tabulate` needed); floats as `format_number` writes them."""
    def cell(value) -> str:
        if isinstance(value, float):
            return format_number(value, digits)
        return str(value)

    header = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


@contextmanager
def output_folder(out: Path, marker: str) -> Iterator[Path]:
    """Yield a staging folder that replaces `out` only if the block finishes.

    `out` may already exist only if it holds `marker` (a previous report of the same kind), so
    regenerating a report never deletes a folder the user made for something else.
    """
    out = Path(out)
    if out.exists() and not (out / marker).exists():
        raise UserError(f"{out} exists and is not a previous report (no {marker}); choose another --out")
    with staged_folder(out) as staging:
        yield staging
