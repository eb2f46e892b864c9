"""`python -m study.export <study dir> --top 1 --out best.yaml`: write the best trials' full configs.

The YAML is what `python -m study.run --config best.yaml` reads, so the best trial can be
re-run outside Ray (same seed and, from `source.threads`, the same threads on CPU: the same model,
so UA and RA within half a point; the trial scored TA and MIA-Efficacy on the selection set, the
re-run scores them on the test set, so those and Avg. Disparity differ by what the two sets
differ). A trial tuned with
`--average-seeds` is exported with its first seed in `experiment.seed` and the seeds it was
averaged over in `source.average_seeds`; `bench/paper_protocol.py --seeds ...` re-runs it on all.
A Pareto study (`study.tune --objective pareto`) exports points of its front, ordered by `--pick`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from study.core.errors import UserError, cli_entry
from study.records.method_config import write_config
from study.records.pareto import PICK_RULES
from study.records.study_record import STUDY_FILE
from study.records.trials import best_configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m study.export",
                                     description="Export the best trials of a study as configs for study.run --config.")
    parser.add_argument("study_dir", help="a study folder written by python -m study.tune")
    parser.add_argument("--top", type=int, default=1, help="how many trials (default 1: the best)")
    parser.add_argument("--out", required=True, help="YAML file; with --top > 1, one file per trial: NAME-1.yaml, ...")
    parser.add_argument("--method", default=None, help="only trials of this method (multi-method studies)")
    parser.add_argument("--pick", choices=PICK_RULES, default="balanced",
                        help="a Pareto study's point: balanced (each objective scaled to [0, 1] over the front, the "
                             "smallest sum; default) or the front's best on one objective")
    args = parser.parse_args(argv)
    if args.top < 1:
        raise UserError("--top must be at least 1")
    check_one_study(Path(args.study_dir))
    out = Path(args.out)
    for config in best_configs(args.study_dir, args.top, args.method, args.pick):
        source = config["source"]
        target = out if args.top == 1 else out.with_name(f"{out.stem}-{source['rank']}{out.suffix or '.yaml'}")
        write_config(config, target)
        value_key = next(key for key in source if key not in ("study", "trial_id", "rank", "objective"))
        scored = "the selection set" if (config.get("experiment") or {}).get("select_size") else "the test set"
        print(f"wrote {target}: trial {source['trial_id']} ({config['method']}), {source['objective']}: "
              f"{value_key} {source[value_key]:.3f}, scored on {scored} (study.run --config scores the test set)")
    return 0


def check_one_study(folder: Path) -> None:
    """A folder of several studies (e.g. `studies/`) is refused: its best trial would be picked across
    studies of other methods, spaces or experiments."""
    if (folder / STUDY_FILE).is_file():
        return
    inner = sorted(p.parent.name for p in folder.glob(f"*/{STUDY_FILE}"))
    if len(inner) > 1:
        raise UserError(f"{folder} holds {len(inner)} studies ({', '.join(inner)}); export from one of them, "
                        f"e.g. {folder / inner[0]}")


run = cli_entry(main)

if __name__ == "__main__":
    run()
