"""The plain-text tables `study.run` prints: headline metrics beside the original and Retrain, the
metric-based MIAs, the retrain-free judge, and a shared artifact's time."""
from __future__ import annotations

from study.evaluation.mia import SIGNALS
from study.evaluation.names import HEADLINE, METRIC_NAMES, time_ratio


def format_table(rows: list[tuple[str, dict, float | None]], retrain_seconds: float | None) -> str:
    header = f"{'method':<12}" + "".join(f"{name:>14}" for name in (*METRIC_NAMES, "Avg.Disparity", "time (s)", "time/Retrain"))
    lines = [header, "-" * len(header)]
    for name, metrics, seconds in rows:
        cells = [f"{metrics.get(m, float('nan')):>14.2f}" for m in HEADLINE]
        cells.append(f"{seconds:>14.2f}" if seconds is not None else f"{'-':>14}")
        ratio = time_ratio(seconds, retrain_seconds)
        cells.append(f"{ratio:>14.3f}" if ratio is not None else f"{'-':>14}")
        lines.append(f"{name:<12}" + "".join(cells))
    return "\n".join(lines)


def artifact_time_line(name: str, seconds: float, run_seconds: float, retrain_seconds: float | None) -> str:
    """A shared artifact's time (DAU's attacker pre-training) and the run's time/Retrain with and without it."""
    what = name.removesuffix("_seconds").replace("_", " ")
    line = f"{what}: {seconds:.2f} s, once per original model and shared by every run on it (not in time (s))"
    if retrain_seconds:
        line += (f"; time/Retrain {time_ratio(run_seconds, retrain_seconds):.3f} without it, "
                 f"{time_ratio(run_seconds, retrain_seconds, seconds):.3f} with it")
    return line


def format_mia_table(rows: list[tuple[str, dict, float | None]]) -> str:
    """The metric-based MIAs: % of forget samples called non-member (balanced accuracy of the attack)."""
    header = f"{'method':<12}" + "".join(f"{name:>22}" for name in SIGNALS)
    lines = ["metric-based MIAs: forget samples called non-member, % (attack balanced accuracy on retain vs test, %)",
             header, "-" * len(header)]
    for name, metrics, _ in rows:
        cells = [f"{metrics.get(f'mia/{s}', float('nan')):>12.2f} ({metrics.get(f'mia/{s}_bacc', float('nan')):5.1f})"
                 for s in SIGNALS]
        lines.append(f"{name:<12}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def format_retrain_free_table(rows: list[tuple[str, dict]]) -> str:
    columns = ("retrain_free_score", "retrain_free/forget_gap", "retrain_free/attack_gap", "retrain_free/retain_drop",
               "retrain_free/val_drop", "heldout/samia_auc", "heldout/rmia_auc")
    names = [c.split("/")[-1] for c in columns]
    header = f"{'method':<12}" + "".join(f"{n:>20}" for n in names)
    lines = [header, "-" * len(header)]
    for name, values in rows:
        lines.append(f"{name:<12}" + "".join(f"{values.get(c, float('nan')):>20.3f}" for c in columns))
    return "\n".join(lines)
