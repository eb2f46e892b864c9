"""`python -m study.export <study dir> --top 1 --out best.yaml`: write the best trials' full configs.

The YAML is what `python -m study.run --config best.yaml` reads, so the best trial can be
re-run outside Ray (same seed, CPU: the same metrics within half a point). A trial tuned with
`--average-seeds` is exported with its first seed in `experiment.seed` and the seeds it was
averaged over in `source.average_seeds`; `bench/paper_protocol.py --seeds ...` re-runs it on all.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from study.errors import UserError, cli_entry
from study.staging import write_file_atomically


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
    total = int(config["params"].get("epochs", declared["epochs"].default))
    reached = int(epochs_reached)
    if not 0 < reached < total:
        return config, None
    return ({**config, "params": {**config["params"], "epochs": reached}},
            f"after epoch {reached} of {total}; exported with epochs {reached}")


def best_configs(study_dir: str | Path, top: int = 1, method: str | None = None) -> list[dict]:
    """The `top` best finished trials of a study as method configs (experiment, method, params),
    each with a `source` naming the study, trial, rank and objective value."""
    from analysis.load import default_objective, finished, load_study

    trials = load_study(study_dir)
    objective = default_objective(trials)
    frame = finished(trials, objective)
    if method:
        frame = frame[frame["method"] == method]
    if frame.empty:
        raise UserError(f"{study_dir}: no finished trial to export")
    configs = []
    for rank, (_, row) in enumerate(frame.head(top).iterrows(), start=1):
        config, stopped = as_run(trial_config(Path(row["trial_dir"])), row.get("epoch"))
        config["source"] = {"study": row["study"], "trial_id": row["trial_id"], "rank": rank,
                            "objective": objective, objective: float(row[objective])}
        if stopped:
            config["source"]["stopped_early"] = stopped
        if isinstance(row.get("average_seeds"), str):  # the objective is a mean over these seeds
            config["source"]["average_seeds"] = [int(seed) for seed in row["average_seeds"].split()]
        configs.append(config)
    return configs


def write_config(config: dict, target: Path) -> None:
    """Write a config all at once (a partial file never looks like a finished one)."""
    write_file_atomically(target, yaml.safe_dump(config, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m study.export",
                                     description="Export the best trials of a study as configs for study.run --config.")
    parser.add_argument("study_dir", help="a study folder written by python -m study.tune")
    parser.add_argument("--top", type=int, default=1, help="how many trials (default 1: the best)")
    parser.add_argument("--out", required=True, help="YAML file; with --top > 1, one file per trial: NAME-1.yaml, ...")
    parser.add_argument("--method", default=None, help="only trials of this method (multi-method studies)")
    args = parser.parse_args(argv)
    if args.top < 1:
        raise UserError("--top must be at least 1")
    out = Path(args.out)
    for config in best_configs(args.study_dir, args.top, args.method):
        source = config["source"]
        target = out if args.top == 1 else out.with_name(f"{out.stem}-{source['rank']}{out.suffix or '.yaml'}")
        write_config(config, target)
        print(f"wrote {target}: trial {source['trial_id']} ({config['method']}), {source['objective']} "
              f"{source[source['objective']]:.3f}")
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run()
