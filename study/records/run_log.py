"""Finished runs kept on disk, so a long benchmark resumes where it stopped.

`bench/paper_protocol.py` and `study.compare` record every finished run (through
`study.engine.seed_runs`) as one CSV row keyed by
preset, forget scheme, method, sparsity, seed and hyperparameters; running the same command
again reuses the rows it finds and computes only what is missing.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from study.core.errors import UserError
from study.core.staging import write_file_atomically
from study.evaluation.margins import margins_bytes
from study.evaluation.metrics import METRICS_VERSION

RUN_KEY = ("preset", "forget", "method", "sparsity", "seed", "params")


def run_key(preset: str, forget: str, method: str, sparsity: float, seed: int, params: dict) -> dict:
    """The key columns of one run: hyperparameters as sorted JSON, so equal configurations match."""
    return {"preset": preset, "forget": forget, "method": method, "sparsity": float(sparsity), "seed": int(seed),
            "params": json.dumps(params, sort_keys=True)}


def has_current_metrics(row: dict) -> bool:
    """Whether a row's metrics are of today's definitions (`METRICS_VERSION`; a row from before
    the `metrics_version` column existed is version 1)."""
    value = row.get("metrics_version")
    return (1 if value is None or pd.isna(value) else int(value)) == METRICS_VERSION


def recorded_fingerprint(row: dict) -> str | None:
    """The method fingerprint a row was measured with (None: kept before fingerprints were recorded)."""
    value = row.get("method_fingerprint")
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def _key(row: dict) -> tuple:
    return (str(row["preset"]), str(row["forget"]), str(row["method"]), float(row["sparsity"]), int(row["seed"]),
            str(row["params"]))


class RunLog:
    """Every finished run on disk, so an interrupted protocol resumes where it stopped and its
    seeds or forget schemes can be run in separate sessions and tabulated together.

    The CSV is rewritten whole (temporary file, then rename) after each run: a crash can lose the
    run in progress, never leave a half-written row that would later be read as a result. A run
    is reused only if preset, forget scheme, method, sparsity, seed and hyperparameters all match,
    and its metrics are of the current definitions.

    A row that carries per-example margins (`margins`: arrays by set, `study.evaluation.margins`)
    has them written, before the row itself, to `<log name>-margins/<key digest>.npz` beside the
    CSV; the row keeps that file's name under `margins_file`.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self.runs: dict[tuple, dict] = {}
        if path is None or not path.exists():
            return
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
            raise UserError(f"run log {path} is corrupted ({str(err).splitlines()[0]}); "
                            "move it away to start afresh") from None
        missing = sorted(set(RUN_KEY) - set(frame.columns))
        if missing:
            raise UserError(f"run log {path} lacks the columns {', '.join(missing)}; move it away to start afresh")
        self.runs = {_key(row): row for row in frame.to_dict("records")}

    def get(self, key: dict) -> dict | None:
        """The kept run with this key, whatever metric definitions computed it (tables read these)."""
        return self.runs.get(_key(key))

    def reusable(self, key: dict, fingerprint: str | None = None) -> dict | None:
        """The kept run with this key if its metrics are of today's definitions
        (`has_current_metrics`) and, given the method's `fingerprint`, it was measured by that
        version of the method (a row from before fingerprints were recorded was not), else None:
        a resumed run computes it again and its new row replaces the old."""
        row = self.get(key)
        if row is None or not has_current_metrics(row):
            return None
        return row if fingerprint is None or recorded_fingerprint(row) == fingerprint else None

    def superseded(self, key: dict, fingerprint: str) -> bool:
        """Whether a row with this key is kept but was measured by another version of the method."""
        row = self.get(key)
        return row is not None and recorded_fingerprint(row) != fingerprint

    def add(self, row: dict) -> None:
        margins = row.pop("margins", None)
        if margins is not None and self.path is not None:
            name = f"{self.path.stem}-margins/{hashlib.sha256(repr(_key(row)).encode()).hexdigest()[:16]}.npz"
            write_file_atomically(self.path.parent / name, margins_bytes(margins))
            row["margins_file"] = name
        self.runs[_key(row)] = row
        if self.path is not None:
            write_file_atomically(self.path, pd.DataFrame(list(self.runs.values())).to_csv(index=False))
