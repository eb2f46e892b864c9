"""A study directory (or several) -> one pandas DataFrame, one row per trial.

Trial bookkeeping (status, config, last result, error) comes from Ray Tune's own
`ExperimentAnalysis`; each trial's per-epoch history is its `progress.csv`, read with pandas,
to add the best epoch's metrics beside the final ones.
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pandas as pd

from study.core.errors import UserError
from study.evaluation.names import GAPS, HEADLINE, PARETO, TOW

# metric MIAs, held-out attacks, retrain-free score, and (trials run with --average-seeds) each
# seed's own headline metrics and the objectives' spread over seeds
EXTRA_PREFIXES = ("mia/", "heldout/", "retrain_free", "seed_std/", "timing/")
PER_SEED = re.compile(r"seed\d+/")


def find_study_dirs(path: str | Path) -> list[Path]:
    """The Ray experiment folders at or below `path` (a multi-method study holds one per method)."""
    root = Path(path).resolve()  # Ray reads relative paths as URIs
    if not root.is_dir():
        raise UserError(f"{root} is not a directory")
    found = sorted({p.parent for p in root.glob("experiment_state-*.json")} |
                   {p.parent for p in root.glob("*/experiment_state-*.json")})
    if not found:
        raise UserError(f"{root} is not a Ray Tune study (no experiment_state-*.json found)")
    return found


def _flatten(prefix: str, values: dict) -> dict:
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(f"{name}.", value))
        else:
            flat[name] = value
    return flat


def _error_line(trial_dir: Path) -> str:
    error_file = trial_dir / "error.txt"
    if not error_file.exists():
        return "failed (no error file)"
    lines = [line.strip() for line in error_file.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "failed"


def load_study(path: str | Path) -> pd.DataFrame:
    """One row per trial of every study folder under `path`."""
    from ray.tune import ExperimentAnalysis

    rows = []
    for study_dir in find_study_dirs(path):
        study_meta = {}
        if (study_dir / "study.json").exists():
            study_meta = json.loads((study_dir / "study.json").read_text())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                analysis = ExperimentAnalysis(str(study_dir))
            except Exception as err:  # Ray raises several types for unreadable state
                raise UserError(f"cannot read the study at {study_dir}: {err}") from err
        for trial in analysis.trials:
            trial_dir = Path(trial.storage.trial_fs_path)
            row = {"study": str(study_dir), "study_name": study_dir.name, "trial_id": trial.trial_id,
                   "objective": study_meta.get("objective", "avg_disparity"),
                   "status": trial.status, "method": trial.config.get("method", study_meta.get("method")),
                   "trial_dir": str(trial_dir)}
            row.update(_flatten("params.", trial.config.get("params") or {}))
            row.update(_flatten("experiment.", trial.config.get("experiment") or {}))
            last = trial.last_result or {}
            for key in (*HEADLINE, *TOW, *GAPS, "gap/utility", "run_seconds", "time_ratio_to_retrain", "attacker_acc",
                        "epoch", "retrain_seconds", "time_total_s"):
                row[key] = last.get(key)
            for key in HEADLINE:
                row[f"retrain.{key}"] = last.get(f"retrain/{key}")
            row.update({k: v for k, v in last.items() if k.startswith(EXTRA_PREFIXES) or PER_SEED.match(k)})
            row["average_seeds"] = " ".join(map(str, trial.config.get("average_seeds") or [])) or None
            row["error"] = _error_line(trial_dir) if trial.status == "ERROR" else None
            progress = trial_dir / "progress.csv"
            history = pd.read_csv(progress) if progress.exists() and progress.stat().st_size else pd.DataFrame()
            if "avg_disparity" in history and history["avg_disparity"].notna().any():
                best = history.loc[history["avg_disparity"].idxmin()]
                row["best_epoch"] = int(best.get("epoch", best.get("training_iteration", 0)))
                for key in HEADLINE:
                    row[f"best.{key}"] = best.get(key)
            rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise UserError(f"{path}: the study has no trials")
    return frame


def default_objective(frame: pd.DataFrame) -> str:
    """The column the study optimised (from study.json), when its trials reported it."""
    objectives = frame["objective"].dropna().unique() if "objective" in frame else []
    return str(objectives[0]) if len(objectives) == 1 else "avg_disparity"  # may be PARETO (no such column)


def finished(frame: pd.DataFrame, by: str = "avg_disparity") -> pd.DataFrame:
    """Trials that reported `by` (an objective column), best first; ties broken by trial id."""
    if by not in frame:
        return frame.head(0)
    ok = frame[frame[by].notna() & (frame["status"] != "ERROR")]
    return ok.sort_values([by, "trial_id"])


def trial_config(trial_dir: Path) -> dict:
    params = json.loads((trial_dir / "params.json").read_text())
    return {"experiment": params["experiment"], "method": params["method"], "params": params.get("params") or {}}


def as_run(config: dict, epochs_reached) -> tuple[dict, str | None]:
    """The config that produced a trial's last reported metrics, and why it differs if it does.

    A trial that ASHA stopped after epoch k of its n is exported with `epochs: k`, so
    `study.run --config` re-runs what was ranked rather than a longer run nobody measured.
    (l1-sparse's penalty decays over the total epoch count, so its shortened re-run is close to,
    not the same as, the trial.)"""
    from study.methods import method_class

    declared = {h.name: h for h in method_class(config["method"]).hyperparams}
    if "epochs" not in declared or epochs_reached is None or epochs_reached != epochs_reached:  # NaN: never reported
        return config, None
    total = config["params"].get("epochs", declared["epochs"].default)
    if total is None:  # resolved by the run from its setting (DAU): the documented length there
        from study.core.splits import forget_scheme

        experiment = config.get("experiment") or {}
        total = method_class(config["method"]).documented_defaults(
            forget_scheme(experiment.get("forget", "random:10")), experiment.get("dataset"),
            float(experiment.get("sparsity") or 0.0)).get("epochs")
    if total is None:
        return config, None
    total, reached = int(total), int(epochs_reached)
    if not 0 < reached < total:
        return config, None
    return ({**config, "params": {**config["params"], "epochs": reached}},
            f"after epoch {reached} of {total}; exported with epochs {reached}")


def study_objectives(study_dir: str | Path) -> list[str]:
    """The result keys a study's sampler minimised (several for a Pareto search), from its study.json."""
    found = find_study_dirs(study_dir)
    meta_path = found[0] / "study.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return list(meta.get("objectives") or [meta.get("objective", "avg_disparity")])


def ranked_trials(study_dir: str | Path, pick: str = "balanced", method: str | None = None) -> tuple[pd.DataFrame, str]:
    """A study's finished trials best first, and what ranked them: its objective, or for a Pareto
    search the front alone, ordered by the pick rule (`study.records.pareto`)."""
    trials = load_study(study_dir)
    if method:
        trials = trials[trials["method"] == method]
    objective = default_objective(trials)
    if objective == PARETO:
        from study.records.pareto import front, order_front

        objectives = study_objectives(study_dir)
        return order_front(front(trials, find_study_dirs(study_dir)[0], objectives), objectives, pick), \
            f"pareto:{pick}"
    return finished(trials, objective), objective


def best_configs(study_dir: str | Path, top: int = 1, method: str | None = None,
                 pick: str = "balanced") -> list[dict]:
    """The `top` best finished trials of a study as method configs (experiment, method, params),
    each with a `source` naming the study, trial, rank and objective value (a Pareto study: its
    front, ordered by `pick`)."""
    frame, objective = ranked_trials(study_dir, pick, method)
    if frame.empty:
        raise UserError(f"{study_dir}: no finished trial to export")
    configs = []
    for rank, (_, row) in enumerate(frame.head(top).iterrows(), start=1):
        config, stopped = as_run(trial_config(Path(row["trial_dir"])), row.get("epoch"))
        value_key = "avg_disparity" if objective.startswith(PARETO) else objective
        config["source"] = {"study": row["study"], "trial_id": row["trial_id"], "rank": rank,
                            "objective": objective, value_key: float(row[value_key])}
        threads = json.loads((Path(row["trial_dir"]) / "params.json").read_text()).get("threads")
        if threads:  # a min-max run's outcome depends on the float reduction order, so on the threads
            config["source"]["threads"] = int(threads)
        if stopped:
            config["source"]["stopped_early"] = stopped
        if isinstance(row.get("average_seeds"), str):  # the objective is a mean over these seeds
            config["source"]["average_seeds"] = [int(seed) for seed in row["average_seeds"].split()]
        configs.append(config)
    return configs


def trial_table_columns(trials: pd.DataFrame) -> list[str]:
    """The columns a kept trial table holds: identity and status, the searched and fixed params, and
    the metrics a reader compares trials by (not Ray's bookkeeping or per-seed detail)."""
    keep = ["trial_id", "status", "epoch", *(c for c in trials.columns if c.startswith("params.")),
            *HEADLINE, *TOW, *GAPS, "gap/utility", "run_seconds", "time_ratio_to_retrain", "retrain_free_score",
            "error"]
    return [c for c in keep if c in trials]
