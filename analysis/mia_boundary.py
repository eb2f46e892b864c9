"""`python -m analysis.mia_boundary RUN [RUN ...]`: why a run's MIA-Efficacy is what it is.

MIA-Efficacy is one RBF SVM on one feature, the true-label confidence, fitted on retain
(members) vs test (non-members), equal in number. On a memorising model it reduces to a
threshold: forget samples less confident than it are called non-members. When unlearning
lowers the retain set's confidences to the test set's, the SVM has little left to separate
and may predict one class everywhere, and MIA-Efficacy jumps to 0 or 100 whatever happened
to the forget set. (Fitted on unequal sets, as this project did on the proxy until the sets
were made equal, it did so far more often: see `study.evaluation.metrics`.) This tool prints,
per run folder, the confidence quantiles of the three sets, the SVM's member region on [0, 1]
and its balanced accuracy on its own training data, so that such a jump can be told apart from
real forgetting. It reads the metric's own fit (one member draw); how much MIA-Efficacy moves
over other member draws is the comparison table's "MIA-Efficacy over 5 subsets" column.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from study.cli_common import set_threads
from study.core.errors import cli_entry
from study.evaluation.metrics import fit_confidence_svm, mia_sets, true_label_confidence

QUANTILES = (0.05, 0.2, 0.5, 0.8)
GRID_POINTS = 20001  # the member region is read off the SVM's predictions on this grid over [0, 1]


@dataclass
class Boundary:
    """The MIA-Efficacy SVM of one model: where it says "member" and how well it separates."""
    member_low: float | None  # lowest confidence predicted member (None: no member region at all)
    member_high: float | None
    balanced_accuracy: float  # on its own training data (retain subset vs test), percent
    non_member_pct: dict[str, float]  # per set: % predicted non-member (forget's = MIA-Efficacy)
    quantiles: dict[str, list[float]]  # per set: confidence at QUANTILES
    counts: dict[str, int]  # members and non-members the SVM was fitted on


def svm_boundary(confidences: dict[str, np.ndarray], seed: int) -> Boundary:
    """Fit the MIA-Efficacy SVM exactly as the metric does and describe its decision."""
    retain, test = confidences["retain"], confidences["test"]
    svm = fit_confidence_svm(retain, test, seed)
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    members = grid[svm.predict(grid.reshape(-1, 1)) == 1]
    called = {name: 100.0 * float((svm.predict(conf.reshape(-1, 1)) == 0).mean()) for name, conf in confidences.items()}
    member_idx, non_member_idx = mia_sets(len(retain), len(test), seed)  # what the SVM was fitted on
    fitted_members, fitted_non_members = retain[member_idx], test[non_member_idx]
    member_recall = 100.0 * float((svm.predict(fitted_members.reshape(-1, 1)) == 1).mean())
    non_member_recall = 100.0 * float((svm.predict(fitted_non_members.reshape(-1, 1)) == 0).mean())
    return Boundary(
        member_low=float(members.min()) if len(members) else None,
        member_high=float(members.max()) if len(members) else None,
        balanced_accuracy=0.5 * (member_recall + non_member_recall),
        non_member_pct=called,
        quantiles={name: [float(q) for q in np.quantile(conf, QUANTILES)] for name, conf in confidences.items()},
        counts={"members": len(fitted_members), "non_members": len(fitted_non_members)})


def run_confidences(run) -> dict[str, np.ndarray]:  # noqa: ANN001 - a study.records.run_folder.LoadedRun
    """True-label confidences of a loaded run's retain, forget and test sets (the metric's sets)."""
    from study.evaluation.evaluate import split_logits

    logits, labels = split_logits(run.model, run.data, run.splits)  # predict_logits runs without gradients
    return {name: true_label_confidence(logits[name], labels[name]) for name in ("retain", "forget", "test")}


def format_boundary(name: str, boundary: Boundary) -> str:
    region = ("none: every confidence is called non-member" if boundary.member_low is None
              else f"[{boundary.member_low:.4f}, {boundary.member_high:.4f}]")
    lines = [f"{name}",
             f"  SVM member region: {region}; balanced accuracy on retain vs test {boundary.balanced_accuracy:.1f}% "
             f"({boundary.counts['members']} members, {boundary.counts['non_members']} non-members)"]
    header = "  set      " + "".join(f"{f'q{int(q * 100):02d}':>10}" for q in QUANTILES) + f"{'non-member %':>15}"
    lines.append(header)
    for set_name in ("retain", "forget", "test"):
        cells = "".join(f"{v:>10.4f}" for v in boundary.quantiles[set_name])
        lines.append(f"  {set_name:<9}{cells}{boundary.non_member_pct[set_name]:>15.1f}")
    lines.append(f"  MIA-Efficacy (forget called non-member): {boundary.non_member_pct['forget']:.1f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.mia_boundary",
        description="Show the MIA-Efficacy SVM's member region and the confidence quantiles of retain, forget and "
                    "test for run folders written by `python -m study.run --out`: tells a jump to 100 caused by "
                    "an inseparable retain/test pair from real forgetting.")
    parser.add_argument("runs", nargs="+", help="run folders (python -m study.run --out RUN)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: every core this process may use)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_threads(args.threads)
    from study.records.run_folder import load_run

    for index, folder in enumerate(args.runs):
        run = load_run(folder)
        boundary = svm_boundary(run_confidences(run), run.experiment.seed)
        recorded = run.metrics.get("metrics", {}).get("MIA-Efficacy")
        print(("\n" if index else "") + format_boundary(f"{folder} ({run.method})", boundary))
        if recorded is not None and abs(recorded - boundary.non_member_pct["forget"]) > 1e-6:
            print(f"  note: metrics.json records MIA-Efficacy {recorded:.1f} (different metric code or thread count)")
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run()
