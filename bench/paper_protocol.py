"""The paper's Table 1 protocol: random and class-wise forgetting, dense and sparse, every method,
several seeds, mean ± std, with each method's run time as a ratio to Retrain's in the same run.

Methods run with SPEC.md's defaults unless `--config METHOD=FILE.yaml` gives an exported
configuration (e.g. `python -m study.export <study> --out best.yaml`), which then replaces that
method's defaults for every seed; `--config METHOD@FORGET=FILE.yaml` does so for one forget
scheme only, as the paper tunes random and class-wise forgetting separately. Writes Markdown
with the command, the machine and the package versions. Every finished run is also kept in a CSV (`--runs`, default next to `--out`):
rerunning the same command after an interruption, or with more seeds, computes only what is
missing, so a protocol too long for one sitting can be completed in several.

CPU scale (the memorising Fashion-MNIST proxy of SPEC.md):

    python bench/paper_protocol.py --preset fmnist-proxy --cache-dir /tmp/protocol-cache --out docs/protocol_fmnist.md

GPU scale, CIFAR-10 ResNet-18 (copy the `cifar-10-python.tar.gz` archive to the machine and
point --data-root at its folder):

    python bench/paper_protocol.py --preset cifar10 --data-root /data --device cuda --out docs/protocol_cifar10.md
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import pandas as pd

from analysis.compare_table import with_time_ratios
from analysis.formatting import markdown_table
from analysis.table import TABLE_COLUMNS, sparsity_label, summarize, wide_table
from study.cli_common import add_experiment_arguments, experiment_overrides, resolve_device, set_threads
from study.core.cache import ArtifactCache
from study.core.errors import UserError, cli_entry
from study.core.stopping import stop_after_run_in_flight
from study.core.versions import package_versions
from study.engine.row_pool import PreparedSeeds
from study.engine.seed_runs import rows_per_seed
from study.experiment.config import experiment_from_preset
from study.methods import build_method
from study.records.method_config import read_method_config
from study.records.run_log import RunLog

DEFAULT_METHODS = ("ft", "ga", "ff", "iu", "rl", "salun", "scrub", "dau")


def protocol_runs(preset: str, forget: str, sparsities, seeds, methods, configs: dict, cache: ArtifactCache,
                  device: str, overrides: dict | None = None, log=print, run_log: RunLog | None = None) -> pd.DataFrame:
    """One row per (method, sparsity, seed): the metrics, run time and Retrain's time in that run.

    `overrides` are experiment fields given on the command line (dataset, model, epochs, ...; None =
    the preset's). Runs already in `run_log` are reused; every new run is added to it at once
    (`study.engine.seed_runs`, the loop `study.compare` evaluates with).
    """
    run_log = run_log or RunLog(None)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    label = ", ".join([preset] + [f"{v} epochs" if k == "epochs" else f"{k} {v}"  # the runs' key in run_log
                                  for k, v in overrides.items() if k not in ("data_root", "download")])
    rows = []
    with stop_after_run_in_flight(log) as stop:
        for sparsity in sparsities:  # each level's seeds prepared once, for all its methods
            experiment = experiment_from_preset(preset, **overrides, forget=forget, sparsity=sparsity)
            prepared_for = PreparedSeeds(experiment.as_dict(), str(cache.root), log, device=device)
            for name in ("retrain", "original", *methods):
                cfg = configs.get(name, {})
                rows += rows_per_seed(cfg.get("method", name), dict(cfg.get("params") or {}), list(seeds), label,
                                      forget, float(sparsity), prepared_for, run_log, log, stop=stop)
        stop.raise_if_requested()
    return pd.DataFrame(rows)


def ratio_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Each method's run time / Retrain's run time in the same (sparsity, seed), mean over seeds;
    where a method built a shared artifact (DAU's pre-trained attacker), also with its time added."""
    runs = with_time_ratios(runs)
    shared = runs["time_ratio_with_shared"] - runs["time_ratio"]
    grouped = runs.groupby(["method", "sparsity"], sort=False)
    table = grouped["time_ratio"].mean().unstack("sparsity")
    table.columns = [f"time / Retrain ({sparsity_label(s)})" for s in table.columns]
    if (shared > 0).any():
        with_shared = grouped["time_ratio_with_shared"].mean().unstack("sparsity")
        with_shared.columns = [f"with shared pre-training ({sparsity_label(s)})" for s in with_shared.columns]
        table = table.join(with_shared)
    return table.reset_index()


def parse_configs(items: list[str], forgets: list[str]) -> dict[str, dict[str, dict]]:
    """`--config` items -> {forget scheme: {method: exported config}}.

    `METHOD=FILE` applies to every forget scheme; `METHOD@FORGET=FILE` to that scheme only and
    wins over the former, because the paper tunes DAU separately for random and class-wise
    forgetting (e.g. `dau@class:0=bench/configs/dau-fmnist-defaults.yaml`).
    """
    general: dict[str, dict] = {}
    specific: dict[str, dict[str, dict]] = {forget: {} for forget in forgets}
    for item in items:
        if "=" not in item:
            raise UserError(f"--config {item!r}: expected METHOD=FILE.yaml or METHOD@FORGET=FILE.yaml")
        target, path = item.split("=", 1)
        name, _, forget = target.partition("@")
        if not name:
            raise UserError(f"--config {item!r}: the method name is empty")
        if forget and forget not in specific:
            raise UserError(f"--config {item!r}: forget scheme {forget!r} is not one of --forget "
                            f"({', '.join(forgets)})")
        (specific[forget] if forget else general)[name] = read_method_config(path, f"--config {target}")
    return {forget: {**general, **specific[forget]} for forget in forgets}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/paper_protocol.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_experiment_arguments(parser, exclude={"forget", "seed", "sparsity"}, preset_default="fmnist-proxy")
    parser.add_argument("--forget", nargs="+", default=["random:10", "class:0"])
    parser.add_argument("--sparsity", nargs="+", type=float, default=[0.0, 0.95])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    parser.add_argument("--config", nargs="*", default=[],
                        help="METHOD=FILE.yaml: an exported config for METHOD; METHOD@FORGET=FILE.yaml: for that "
                             "forget scheme only (e.g. dau@class:0=...)")
    parser.add_argument("--out", default=None, help="Markdown file to write")
    parser.add_argument("--runs", default=None,
                        help="CSV of finished runs, reused on a rerun (default: next to --out, <out>.runs.csv)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    device = resolve_device(args.device)
    configs_by_forget = parse_configs(args.config, args.forget)
    for configs in configs_by_forget.values():  # validate every method before any training
        for name in args.methods:
            cfg = configs.get(name, {})
            build_method(cfg.get("method", name), cfg.get("params"))
    began = time.perf_counter()
    cache = ArtifactCache(args.cache_dir)
    sections = [f"Command: `python bench/paper_protocol.py {' '.join(sys.argv[1:] if argv is None else argv)}`", "",
                f"Machine: {platform.machine()}, device {device}, torch threads {args.threads or 'all'}; "
                f"versions: {package_versions()}", ""]
    runs_path = args.runs or (str(Path(args.out).with_suffix(".runs.csv")) if args.out else None)
    run_log = RunLog(Path(runs_path) if runs_path else None)
    for forget in args.forget:
        runs = protocol_runs(args.preset, forget, args.sparsity, args.seeds, args.methods, configs_by_forget[forget],
                             cache, device, experiment_overrides(args), run_log=run_log)
        summary = summarize(runs[["method", "sparsity", *TABLE_COLUMNS]])
        sections += [f"### {args.preset}, forget {forget}, seeds {', '.join(map(str, args.seeds))} "
                     "(mean ± std over seeds)", "", markdown_table(wide_table(summary)), "",
                     markdown_table(ratio_table(runs), digits=3), ""]
    sections.append(f"Total wall time: {time.perf_counter() - began:.0f} s")
    text = "\n".join(sections)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run()
