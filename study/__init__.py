"""DAU study: unlearning methods, retrain-referenced metrics and Ray Tune studies.

`load_run(path)` rebuilds a finished run (model, split indices, data) from its folder.
"""
from study.core.errors import UserError

__all__ = ["UserError", "load_run"]


def load_run(path):  # noqa: ANN001, ANN201 - re-exported, documented in study.records.run_folder
    """Load a run folder written by `python -m study.run`; see `study.records.run_folder.load_run`."""
    from study.records.run_folder import load_run as _load_run

    return _load_run(path)
