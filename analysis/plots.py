"""Figures for studies and method tables (matplotlib, PNG).

- `metric_bars`: each metric's value per method, Retrain's value as a horizontal line;
- `pareto_front`: Avg. Disparity vs unlearning run time over every finished trial, with the
  trials no other trial beats on both drawn as the front;
- `importance` and `parallel_coordinates`: Optuna's own fANOVA importance evaluator and
  parallel-coordinate plot, on an Optuna study rebuilt from the finished Ray trials (with the
  distributions of the search-space file when it is still there).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from study.evaluation.names import HEADLINE, label
from study.methods import display_name
from study.records.trials import finished

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def metric_bars(summary: pd.DataFrame, path: Path) -> Path:
    """One panel per metric; bars = methods (mean ± std), dashed line = Retrain. `summary` is
    `analysis.table.summarize`'s output for one sparsity."""
    methods = summary[summary["method"] != "retrain"]
    retrain = summary[summary["method"] == "retrain"]
    fig, axes = plt.subplots(1, len(HEADLINE), figsize=(3.2 * len(HEADLINE), 3.6), sharey=False)
    labels = [display_name(m) for m in methods["method"]]
    for ax, metric in zip(axes, HEADLINE):
        ax.bar(labels, methods[f"{metric}_mean"], yerr=methods[f"{metric}_std"].fillna(0), capsize=2, color="tab:blue")
        if len(retrain) and metric != "avg_disparity":
            ax.axhline(float(retrain[f"{metric}_mean"].iloc[0]), color="black", linestyle="--", label="Retrain")
            ax.legend(fontsize=7)
        ax.set_title(label(metric))
        ax.tick_params(axis="x", rotation=60, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pareto_mask(disparity: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """True for the points no other point beats on both (lower disparity and lower time)."""
    order = np.lexsort((disparity, seconds))
    on_front = np.zeros(len(disparity), dtype=bool)
    best = np.inf
    for index in order:
        if disparity[index] < best:
            on_front[index] = True
            best = disparity[index]
    return on_front


def pareto_front(frame: pd.DataFrame, path: Path, by: str = "avg_disparity") -> Path:
    ok = finished(frame, by)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for method, group in ok.groupby("method"):
        ax.scatter(group["run_seconds"], group[by], label=display_name(method), alpha=0.7)
    front = ok[pareto_mask(ok[by].to_numpy(float), ok["run_seconds"].to_numpy(float))]
    front = front.sort_values("run_seconds")
    ax.step(front["run_seconds"], front[by], where="post", color="black", linewidth=1, label="Pareto front")
    ax.set_xlabel("unlearning run time (s)")
    ax.set_ylabel(f"{label(by)} (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _distribution(spec: dict):
    import optuna.distributions as d

    kind, args = next(iter(spec.items()))
    if kind == "uniform":
        return d.FloatDistribution(float(args[0]), float(args[1]))
    if kind == "loguniform":
        return d.FloatDistribution(float(args[0]), float(args[1]), log=True)
    if kind == "int_uniform":
        return d.IntDistribution(int(args[0]), int(args[1]))
    return d.CategoricalDistribution(list(args))


def _inferred_distribution(values: pd.Series):
    import optuna.distributions as d

    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return d.CategoricalDistribution(sorted(values.dropna().unique().tolist(), key=str))
    low, high = float(values.min()), float(values.max())
    if pd.api.types.is_integer_dtype(values):
        return d.IntDistribution(int(low), int(high))
    return d.FloatDistribution(low, high, log=low > 0 and high / low > 100)


def optuna_study(frame: pd.DataFrame, search: dict[str, dict] | None = None, by: str = "avg_disparity"):
    """An Optuna study holding the finished trials (objective: the final value of `by`).

    `search` is the space file's `search` section; without it the distributions are inferred
    from the values the trials took. Only parameters that vary are included.
    """
    import optuna

    ok = finished(frame, by)
    varying = [c for c in ok.columns if c.startswith("params.") and ok[c].nunique(dropna=True) > 1]
    distributions = {}
    for column in varying:
        name = column.removeprefix("params.")
        spec = (search or {}).get(name)
        distributions[name] = _distribution(spec) if spec else _inferred_distribution(ok[column])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")
    for _, row in ok.iterrows():
        params = {}
        for name, dist in distributions.items():
            value = row[f"params.{name}"]
            if isinstance(dist, optuna.distributions.IntDistribution):
                value = int(value)
            elif isinstance(dist, optuna.distributions.FloatDistribution):
                value = float(value)
            elif isinstance(value, np.generic):
                value = value.item()
            params[name] = value
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions,
                                                  value=float(row[by])))
    return study


def importance(frame: pd.DataFrame, path: Path, search: dict | None = None,
               by: str = "avg_disparity") -> tuple[Path, dict[str, float]] | None:
    """fANOVA importance of each searched parameter for `by`; None when there is too little to
    estimate it from (fewer than 3 finished trials, no varying parameter, or a constant objective)."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    study = optuna_study(frame, search, by)
    values = [t.value for t in study.trials]
    if len(study.trials) < 3 or not study.trials[0].params or max(values) == min(values):
        return None  # nothing varies: fANOVA has no variance to attribute
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = optuna.importance.get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
        ax = optuna.visualization.matplotlib.plot_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    ax.figure.set_size_inches(6, 0.5 + 0.45 * len(scores))
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=110)
    plt.close(ax.figure)
    return path, dict(scores)


def parallel_coordinates(frame: pd.DataFrame, path: Path, search: dict | None = None,
                         by: str = "avg_disparity") -> Path | None:
    import optuna

    study = optuna_study(frame, search, by)
    if len(study.trials) < 2 or not study.trials[0].params:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ax = optuna.visualization.matplotlib.plot_parallel_coordinate(study, target_name=label(by))
    ax.figure.set_size_inches(8, 4.5)
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=110)
    plt.close(ax.figure)
    return path


def searched_front(study_dir: str | Path, objectives: list[str], pair: tuple[str, str], path: Path) -> Path:
    """Optuna's Pareto-front plot of a Pareto study (its kept Optuna study) on two of its objectives."""
    from optuna.visualization.matplotlib import plot_pareto_front

    from study.records.pareto import load_optuna_study

    first, second = objectives.index(pair[0]), objectives.index(pair[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
        axes = plot_pareto_front(load_optuna_study(study_dir), targets=lambda t: (t.values[first], t.values[second]),
                                 target_names=[label(pair[0]), label(pair[1])])
    axes.figure.set_size_inches(6, 4)
    axes.figure.tight_layout()
    axes.figure.savefig(path, dpi=120)
    plt.close(axes.figure)
    return path
