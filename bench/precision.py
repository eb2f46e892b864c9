"""Is bf16 the same science? fp32 against bf16 autocast on the proxy, paired by seed.

For each seed, at fp32 and at bf16: train the original and Retrain (timed), run each method (DAU and
two baselines by default) and evaluate on the test set. The table gives, per row, the time at each
precision and its speed-up, and per metric the paired difference bf16 - fp32 (mean over seeds) beside
fp32's own seed-to-seed standard deviation: a difference inside that spread is noise, one outside it
changes the result. `study.core.precision.AUTO_PICKS_BF16` follows this table's verdict.

    python bench/precision.py --preset fmnist-proxy --seeds 1 2 3 --cache-dir cache/precision \
        --out docs/precision-fmnist -p dau:attacker_pretrain_iters=50

DAU runs one epoch (`dau:epochs=1`, a study's short trial) on an attacker pre-trained for 50
iterations instead of the proxy's 360: the pre-training is a shared artifact outside the run time,
it runs in fp32 either way (its forwards are the sensitivity's), and at 0.6 iterations/s on 2 cores
its 360 iterations would take 10 minutes per seed and precision.

Rows already in `<out>/runs.csv` are kept (the command resumes); `<out>/table.md` is rewritten after
every row, marked "(in progress)" until the last. Use a cache of its own so that the models' training
is timed here, and run it alone on the machine. Refused on a device without native bf16.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterator

import pandas as pd
import torch

from analysis.formatting import markdown_table
from study.cli_common import (
    add_experiment_arguments,
    experiment_overrides,
    parse_params,
    resolve_device,
    set_threads,
)
from study.core.cache import ArtifactCache
from study.core.errors import UserError, cli_entry
from study.core.precision import bf16_support
from study.core.staging import write_file_atomically
from study.core.versions import cpu_name, package_versions
from study.engine.runner import run_method
from study.evaluation.names import HEADLINE
from study.experiment.config import resolve_experiment
from study.experiment.prepare import prepare
from study.methods import build_method
from study.records.paths import portable_command

PRECISIONS = ("fp32", "bf16")
METRICS = HEADLINE  # the four metrics, then Avg. Disparity
DEFAULT_METHODS = ("ft", "neggrad+", "dau")


def measure_seed(args, seed: int, precision: str, params: dict[str, dict], done: set, log) -> Iterator[dict]:
    """The rows of one seed at one precision that `done` does not hold yet, one at a time (each is kept
    as soon as it is measured)."""
    experiment = resolve_experiment(args.preset, None, {**experiment_overrides(args), "seed": seed,
                                                        "precision": precision})
    prepared = prepare(experiment, ArtifactCache(args.cache_dir), device=args.device, log=log)
    if prepared.config.precision != precision:
        raise UserError(f"asked for {precision}, ran {prepared.config.precision}: nothing to compare here")
    for role, metrics, seconds in (("original", prepared.original_metrics, prepared.original_seconds),
                                   ("retrain", prepared.retrain_metrics, prepared.retrain_seconds)):
        if (seed, precision, role) not in done:
            yield {"seed": seed, "precision": precision, "row": role, "seconds": seconds,
                   **{m: metrics[m] for m in METRICS}}
    for name in args.methods:
        if (seed, precision, name) in done:
            continue
        result = run_method(prepared, build_method(name, params.get(name)), log=lambda m: None)
        log(f"seed {seed} {precision} {name}: Avg. Disparity {result.metrics['avg_disparity']:.2f}, "
            f"{result.run_seconds:.1f} s")
        yield {"seed": seed, "precision": precision, "row": name, "seconds": result.run_seconds,
               **{m: result.metrics[m] for m in METRICS}}


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per row: seconds at each precision, the speed-up, and per metric the paired bf16 - fp32 mean
    beside fp32's standard deviation over seeds, with the verdict."""
    out = []
    for row, group in runs.groupby("row", sort=False):
        wide = group.pivot_table(index="seed", columns="precision", values=["seconds", *METRICS])
        if not {("seconds", "fp32"), ("seconds", "bf16")} <= set(wide.columns):
            continue
        paired = wide.dropna()
        entry = {"row": row, "seeds": len(paired), "fp32 s": paired[("seconds", "fp32")].mean(),
                 "bf16 s": paired[("seconds", "bf16")].mean()}
        entry["speed-up"] = entry["fp32 s"] / entry["bf16 s"] if entry["bf16 s"] > 0 else float("nan")
        outside = []
        for metric in METRICS:
            shift = (paired[(metric, "bf16")] - paired[(metric, "fp32")]).mean()
            spread = paired[(metric, "fp32")].std()
            entry[f"Δ{metric}"] = f"{shift:+.2f} (fp32 sd {spread:.2f})"
            if len(paired) > 1 and abs(shift) > spread:
                outside.append(metric)
        entry["bf16 - fp32 within fp32's seed spread"] = ("yes" if not outside else "no: " + ", ".join(outside)) \
            if len(paired) > 1 else "one seed: not judged"
        out.append(entry)
    return pd.DataFrame(out)


def render(runs: pd.DataFrame, command: str, done: bool, machine: str) -> str:
    lines = ["# fp32 against bf16 autocast", "", f"Command: `{command}`", "",
             f"Machine: {machine}; versions: {package_versions()}. Seconds: training (original, Retrain) or "
             "unlearning (methods), evaluation excluded. Metrics on the test set; Δ = bf16 - fp32, paired by seed, "
             "mean over seeds, beside fp32's own standard deviation over the same seeds.", ""]
    table = summary(runs)
    lines += [markdown_table(table, digits=2) if len(table) else "(no row measured at both precisions yet)", ""]
    lines += ["Every run:", "", markdown_table(runs.sort_values(["seed", "row", "precision"]), digits=2), ""]
    if not done:
        lines += ["(in progress)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_experiment_arguments(parser, exclude={"seed", "precision"}, preset_default="fmnist-proxy")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds, paired (default 1 2 3)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                        help=f"methods at their defaults (default: {' '.join(DEFAULT_METHODS)})")
    parser.add_argument("--param", "-p", action="append", default=["dau:epochs=1"], metavar="METHOD:KEY=VALUE",
                        help="a method's hyperparameter (default dau:epochs=1, one epoch as a study's short trial)")
    parser.add_argument("--out", required=True, help="folder for runs.csv and table.md")
    args = parser.parse_args(argv)
    params: dict[str, dict] = {}
    for item in args.param:
        method, _, pair = item.partition(":")
        if not pair:
            raise UserError(f"--param {item!r}: expected METHOD:KEY=VALUE")
        params.setdefault(method, {}).update(parse_params([pair]))
    for name in args.methods:  # an unknown method or hyperparameter ends here, before any training
        build_method(name, params.get(name))
    set_threads(args.threads)
    args.device = resolve_device(args.device)
    supported, why = bf16_support(args.device)
    if not supported:
        raise UserError(f"no bf16 to compare on this machine: {why}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.csv"
    runs = pd.read_csv(runs_path) if runs_path.exists() else pd.DataFrame()
    command = portable_command("python bench/precision.py", sys.argv[1:] if argv is None else argv)
    machine = f"{cpu_name() if args.device == 'cpu' else torch.cuda.get_device_name()}, " \
              f"torch threads {torch.get_num_threads()}"
    for seed in args.seeds:
        for precision in PRECISIONS:
            done = set(zip(runs["seed"], runs["precision"], runs["row"])) if len(runs) else set()
            if all((seed, precision, row) in done for row in ("original", "retrain", *args.methods)):
                continue
            for row in measure_seed(args, seed, precision, params, done, lambda m: print(m, flush=True)):
                runs = pd.concat([runs, pd.DataFrame([row])], ignore_index=True)
                write_file_atomically(runs_path, runs.to_csv(index=False))
                write_file_atomically(out / "table.md", render(runs, command, False, machine))
    text = render(runs, command, True, machine)
    write_file_atomically(out / "table.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    cli_entry(main)()
