"""`python -m analysis.selection <study dir>`: does the retrain-free score pick what Retrain would?

For a study whose trials reported both `retrain_free_score` and `avg_disparity`
(`python -m study.tune ... --retrain-free-score`), prints the Spearman rank correlation of the
two across finished trials, and the Avg. Disparity of the trial the retrain-free score picks
beside the best Avg. Disparity of any trial (the *regret* of tuning without Retrain).

A study tuned with `--objective retrain_free` never measured Avg. Disparity; `--compute-disparity`
measures it afterwards from each trial's final checkpoint against Retrain (trained once, cached).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pandas as pd
from scipy import stats

from analysis.formatting import markdown_table
from study.core.cache import DEFAULT_CACHE_DIR
from study.core.errors import UserError, cli_entry
from study.evaluation.names import HEADLINE, METRIC_NAMES
from study.records.trials import finished, load_study

SCORE = "retrain_free_score"


def selection_summary(frame: pd.DataFrame) -> dict:
    """Spearman ρ between the retrain-free score and Avg. Disparity, and the regret of picking by it."""
    ok = finished(frame, SCORE)
    ok = ok[ok["avg_disparity"].notna()] if "avg_disparity" in ok else ok.head(0)
    if len(ok) < 2:
        raise UserError(f"need at least 2 finished trials with both {SCORE} and avg_disparity; found {len(ok)} "
                        "(run the study with --retrain-free-score, or pass --compute-disparity)")
    if ok[SCORE].nunique() < 2 or ok["avg_disparity"].nunique() < 2:
        rho = p_value = float("nan")  # a constant column has no rank correlation
    else:
        rho, p_value = stats.spearmanr(ok[SCORE], ok["avg_disparity"])
    picked = ok.sort_values([SCORE, "trial_id"]).iloc[0]
    best = ok.sort_values(["avg_disparity", "trial_id"]).iloc[0]
    rank_of_pick = int((ok["avg_disparity"] < picked["avg_disparity"]).sum()) + 1
    return {"trials": len(ok), "spearman_rho": float(rho), "spearman_p": float(p_value),
            "picked_trial": picked["trial_id"], "picked_score": float(picked[SCORE]),
            "picked_avg_disparity": float(picked["avg_disparity"]), "picked_rank_by_avg_disparity": rank_of_pick,
            "best_trial": best["trial_id"], "best_avg_disparity": float(best["avg_disparity"]),
            "regret": float(picked["avg_disparity"] - best["avg_disparity"])}


def compute_disparity(frame: pd.DataFrame, cache_dir: str) -> pd.DataFrame:
    """Fill `avg_disparity` (and UA/MIA/RA/TA) from each finished trial's final checkpoint."""
    from study.core.cache import ArtifactCache
    from study.evaluation.seeds import mean_over_seeds
    from study.experiment.config import ExperimentConfig
    from study.experiment.prepare import prepare
    from study.records.checkpoint import final_checkpoint, read_trial_state

    frame = frame.copy()
    prepared_by_key: dict[str, object] = {}
    for index, row in finished(frame, SCORE).iterrows():
        params_file = Path(row["trial_dir"]) / "params.json"
        if not params_file.exists():
            raise UserError(f"{params_file} is missing; cannot rebuild the trial's experiment")
        experiment = json.loads(params_file.read_text())["experiment"]
        state = read_trial_state(final_checkpoint(row["trial_dir"]), experiment["seed"])
        # A trial run with --average-seeds holds one model per seed; its score is their mean, so
        # its Avg. Disparity is too.
        measured = []
        for entry in state.seeds:
            config = ExperimentConfig.from_dict({**experiment, "seed": entry.seed})
            key = repr(config.as_dict())
            if key not in prepared_by_key:
                prepared_by_key[key] = prepare(config, ArtifactCache(cache_dir), log=lambda m: print(m, flush=True))
            prepared = prepared_by_key[key]
            model = prepared.fresh_original()
            model.load_state_dict(entry.method["model"])
            measured.append(prepared.evaluate(model, prepared.selection_view))  # as the trial scored it
        metrics = mean_over_seeds(measured, [entry.seed for entry in state.seeds])
        for name in HEADLINE:
            frame.loc[index, name] = metrics[name]
        print(f"  trial {row['trial_id']}: {SCORE} {row[SCORE]:.2f}, Avg. Disparity {metrics['avg_disparity']:.2f}",
              flush=True)
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.selection", description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", nargs="+")
    parser.add_argument("--compute-disparity", action="store_true",
                        help="measure Avg. Disparity afterwards from the trials' final checkpoints (trains Retrain "
                             "once if the cache lacks it)")
    parser.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    frame = pd.concat([load_study(path) for path in args.study_dir], ignore_index=True)
    if SCORE not in frame or frame[SCORE].isna().all():
        raise UserError(f"no trial reported {SCORE}; run the study with --retrain-free-score or "
                        "--objective retrain_free")
    if args.compute_disparity:
        frame = compute_disparity(frame, os.path.expanduser(args.cache_dir))
    summary = selection_summary(frame)
    shown = finished(frame, SCORE)[["trial_id", SCORE, "avg_disparity", *METRIC_NAMES]]
    print(markdown_table(shown, digits=2))
    print()
    print(f"trials: {summary['trials']}; Spearman rho(retrain-free score, Avg. Disparity) = "
          f"{summary['spearman_rho']:.3f} (p = {summary['spearman_p']:.3g})")
    print(f"picked by the retrain-free score: trial {summary['picked_trial']}, Avg. Disparity "
          f"{summary['picked_avg_disparity']:.2f} (rank {summary['picked_rank_by_avg_disparity']} by Avg. Disparity)")
    print(f"best by Avg. Disparity: trial {summary['best_trial']}, {summary['best_avg_disparity']:.2f}; "
          f"regret {summary['regret']:.2f} points")
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run()
