"""A Pareto study's front: the non-dominated trials, read from the Optuna study the search kept.

`python -m study.tune --objective pareto` minimises several gaps to Retrain at once (forgetting,
utility, MIA, time; `study.evaluation.names.PARETO_OBJECTIVES`). Optuna decides which trials are
non-dominated (`Study.best_trials`, on the values each trial reported last); each is matched to
its Ray trial by the Ray trial id it carries (by its parameters for studies kept before the id was
recorded), so the front carries everything the trial table does (trial id, folder, every metric).

Choosing one point of the front, for `study.export` and `study.compare`, follows a stated rule:
  - `balanced`: each objective scaled to [0, 1] over the front (min to max), the smallest sum;
  - an objective's name (`forget`, `utility`, `mia`, `time`): the smallest on it, ties by `balanced`.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from study.core.errors import UserError
from study.evaluation.names import PARETO_OBJECTIVES
from study.records.study_record import read_study_record

OPTUNA_FILE, OPTUNA_STUDY = "optuna.db", "study"  # as study.engine.study keeps them
PICK_RULES = ("balanced", *PARETO_OBJECTIVES)


def load_optuna_study(study_dir: str | Path):  # noqa: ANN201 - an optuna.Study
    """The Optuna study of a study folder: where its study.json says it is kept (a comparison keeps
    every method's in one `optuna.db` beside them, named `<method>-<level>`), else `optuna.db` in the
    folder under the name "study" (studies kept before the name was recorded)."""
    import optuna

    record = read_study_record(Path(study_dir)) or {}
    storage, name = record.get("optuna_storage"), record.get("optuna_study") or OPTUNA_STUDY
    path = Path(storage.removeprefix("sqlite:///")) if storage and storage.startswith("sqlite:///") else None
    if path is None or not path.is_file():
        path = Path(study_dir).resolve() / OPTUNA_FILE
    if not path.is_file():
        raise UserError(f"{study_dir} keeps no Optuna study ({OPTUNA_FILE}); it was not searched by Optuna here")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=f"sqlite:///{path}")


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return a == b


def front(trials: pd.DataFrame, study_dir: str | Path, objectives: list[str]) -> pd.DataFrame:
    """The rows of `trials` (one study's `load_study` frame) that Optuna's study holds non-dominated."""
    best = load_optuna_study(study_dir).best_trials
    rows = []
    for ot_trial in best:
        ray_id = ot_trial.user_attrs.get("ray_trial_id")
        if ray_id is not None and "trial_id" in trials:  # recorded with the trial: read by id
            by_id = trials[trials["trial_id"] == ray_id]
            if not by_id.empty:
                rows.append(by_id.iloc[0])
                continue
        # studies kept before trial ids were recorded: matched by parameter values
        wanted = {name.replace("/", "."): value for name, value in ot_trial.params.items()}
        match = trials
        for column, value in wanted.items():
            if column not in match:
                match = match.head(0)
                break
            match = match[[_same(v, value) for v in match[column]]]
        if not match.empty:
            rows.append(match.iloc[0])
    if not rows:
        raise UserError(f"{study_dir}: no finished trial on the Pareto front")
    frame = pd.DataFrame(rows).drop_duplicates("trial_id")
    missing = [key for key in objectives if key not in frame]
    if missing:
        raise UserError(f"{study_dir}: the trials did not report {', '.join(missing)}")
    return frame.sort_values("trial_id").reset_index(drop=True)


def order_front(front_rows: pd.DataFrame, objectives: list[str], rule: str = "balanced") -> pd.DataFrame:
    """The front ordered by a pick rule, best first (`PICK_RULES`; `objectives` are result keys)."""
    if rule not in PICK_RULES:
        raise UserError(f"unknown pick rule {rule!r}; choose one of {', '.join(PICK_RULES)}")
    values = front_rows[objectives].astype(float)
    span = (values.max() - values.min()).replace(0.0, 1.0)
    balanced = ((values - values.min()) / span).sum(axis=1)
    ordered = front_rows.assign(pareto_balanced=balanced)
    keys = ["pareto_balanced", "trial_id"]
    if rule != "balanced":
        target = PARETO_OBJECTIVES[rule]
        if target not in objectives:
            raise UserError(f"pick rule {rule!r}: the study did not search {rule} ({target})")
        keys = [target, *keys]
    return ordered.sort_values(keys).reset_index(drop=True)
