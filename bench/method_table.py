"""Every method on one preset, random and class-wise forgetting, in one run: the Table 1 layout.

Writes a Markdown table (UA, MIA-Efficacy, RA, TA, Avg. Disparity, run time and its ratio to
Retrain's, measured in the same run, without and with the time of artifacts shared by every run
on the same original, i.e. DAU's attacker pre-training) to stdout and, with --out, to a file. Use a fresh
--cache-dir so Retrain's training time is measured on this machine in this run, not read from
a cache entry built under other load.

    python bench/method_table.py --preset fmnist-proxy --cache-dir /tmp/bench-cache --out docs/method_table_fmnist.md

At GPU scale (the CIFAR ResNet-18; `bench/gpu_check.sh` runs this on a lent GPU machine), one seed of
the paper's CIFAR-10 random-10% and class-wise tables, every method at its documented defaults:

    python bench/method_table.py --preset cifar10 --data-root ../shared/data/cifar10-jpeg/cifar10-jpeg.zip \
        --device cuda --forget random:10 class:0 --time-limit 12 --out docs/gpu-cifar10-table.md

(`--dataset fashion-mnist` puts full Fashion-MNIST through the same ResNet-18.) The table is rewritten
after every method, marked "(in progress)" until the last row, so a run that is stopped keeps
what finished; `--time-limit` starts no method after that many minutes and lists the ones left out.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from study.cli_common import (
    add_experiment_arguments,
    experiment_overrides,
    resolve_device,
    set_threads,
)
from study.core.cache import ArtifactCache
from study.core.errors import UserError, cli_entry
from study.core.staging import write_file_atomically
from study.core.versions import cpu_name, package_versions
from study.engine.runner import run_method
from study.evaluation.names import HEADLINE, time_ratio
from study.experiment.config import experiment_from_preset
from study.experiment.prepare import prepare
from study.methods import METHODS, build_method
from study.records.method_config import read_method_config
from study.records.paths import portable_command

COLUMNS = HEADLINE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_experiment_arguments(parser, exclude={"forget"}, preset_default="fmnist-proxy")
    parser.add_argument("--forget", nargs="+", default=["random:10", "class:0"],
                        help="forget schemes, one table section each (default: random:10 class:0)")
    parser.add_argument("--methods", nargs="+", default=[m for m in METHODS if m not in ("original", "retrain")])
    parser.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                        help="start no method after this many minutes (the table says which were left out)")
    parser.add_argument("--extra", nargs="*", default=[],
                        help="LABEL=CONFIG.yaml: also run an exported config (e.g. a tuned DAU) under LABEL")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    device = resolve_device(args.device)
    began_all = time.perf_counter()
    extras = []
    for item in args.extra:
        if "=" not in item:
            raise UserError(f"--extra {item!r}: expected LABEL=CONFIG.yaml")
        label, path = item.rsplit("=", 1)
        extras.append((label, read_method_config(path, f"--extra {label}")))
    for name in args.methods:  # an unknown method or bad --extra ends here, before any training
        build_method(name)
    for label, cfg in extras:
        build_method(cfg["method"], cfg.get("params"))
    command = portable_command("python bench/method_table.py", sys.argv[1:] if argv is None else argv)
    lines = [f"Command: `{command}`", "",
             f"Machine: {machine_description(device)}, torch threads {args.threads or 'all'}; "
             f"versions: {package_versions()}", ""]
    left_out: list[str] = []

    def write(done: bool) -> str:
        text = "\n".join(lines + ([f"Left out by --time-limit {args.time_limit:g}: {', '.join(left_out)}", ""]
                                  if left_out else []) + ([] if done else ["(in progress)", ""]))
        if args.out:
            write_file_atomically(Path(args.out), text + "\n")
        return text

    def out_of_time() -> bool:
        return args.time_limit is not None and time.perf_counter() - began_all > 60 * args.time_limit

    for forget in args.forget:
        if out_of_time():
            left_out.append(f"forget {forget}")
            continue
        experiment = experiment_from_preset(args.preset, **experiment_overrides(args), forget=forget)
        prepared = prepare(experiment, ArtifactCache(args.cache_dir), device=device,
                           log=lambda m: print(m, flush=True))
        retrain_seconds = prepared.retrain_seconds
        rows = [("Retrain", prepared.retrain_metrics, retrain_seconds, 0.0),
                ("Original", prepared.original_metrics, 0.0, 0.0)]
        runs = [(name, build_method(name)) for name in args.methods]
        runs += [(label, build_method(cfg["method"], cfg.get("params"))) for label, cfg in extras]
        pruned = f", {experiment.sparsity:.0%} pruned" if experiment.sparsity else ""
        source = f" ({prepared.data.source})" if prepared.data.source != experiment.dataset else ""
        header = [f"### {experiment.dataset}{source} / {experiment.model}{pruned}, forget {forget}, "
                  f"seed {experiment.seed} "
                  f"(retain {len(prepared.splits.retain)}, forget {len(prepared.splits.forget)})", "",
                  "| method | UA | MIA-Efficacy | RA | TA | Avg. Disparity | run time (s) | time / Retrain "
                  "| shared pre-training (s) | time / Retrain with it |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        section = len(lines)

        def show_section() -> None:
            lines[section:] = header + [table_row(row, retrain_seconds) for row in rows] + [""]

        show_section()
        for label, method in runs:
            if out_of_time():
                left_out.append(f"{label} ({forget})")
                continue
            began = time.perf_counter()
            result = run_method(prepared, method, log=lambda m: None)
            print(f"{forget} {label}: Avg. Disparity {result.metrics['avg_disparity']:.2f}, "
                  f"{result.run_seconds:.1f} s (wall {time.perf_counter() - began:.1f} s)", flush=True)
            rows.append((label, result.metrics, result.run_seconds, sum(result.artifact_seconds.values())))
            show_section()
            write(done=False)
    print(write(done=True))
    return 0


def table_row(row: tuple, retrain_seconds: float) -> str:
    label, metrics, seconds, shared = row
    cells = " | ".join(f"{metrics[c]:.2f}" for c in COLUMNS)
    return (f"| {label} | {cells} | {seconds:.1f} | {time_ratio(seconds, retrain_seconds):.3f} "
            f"| {shared:.1f} | {time_ratio(seconds, retrain_seconds, shared):.3f} |")


def machine_description(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))}, CUDA {torch.version.cuda}"
    return f"{platform.machine()}, {cpu_name()}"


run = cli_entry(main)

if __name__ == "__main__":
    run()
