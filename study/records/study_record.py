"""`study.json`: what a study says about itself (space, method, experiment, objective, command,
status, timings), written by the study engine and read by the comparison, the analysis and export."""
from __future__ import annotations

import json
from pathlib import Path

from study.core.staging import write_file_atomically

STUDY_FILE = "study.json"


def write_study_record(study_dir: str | Path, record: dict) -> None:
    write_file_atomically(Path(study_dir) / STUDY_FILE, json.dumps(record, indent=2, default=str))


def read_study_record(study_dir: str | Path) -> dict | None:
    """The study's record, or None when it never started (no study.json)."""
    path = Path(study_dir) / STUDY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def find_study_dir(root: str | Path) -> Path | None:
    """The first study folder (one holding study.json) at or below `root`."""
    found = sorted(Path(root).glob(f"**/{STUDY_FILE}"))
    return found[0].parent if found else None
