"""The paper's Table 1 protocol: random and class-wise forgetting, dense and sparse, every method,
several seeds, mean ± std, with each method's run time as a ratio to Retrain's in the same run.

Methods run with SPEC.md's defaults unless `--config LABEL=FILE.yaml` gives an exported
configuration (e.g. `python -m study.export <study> --out best.yaml`), which then replaces that
method's defaults for every seed. Writes Markdown with the command, the machine and the
package versions.

CPU scale (the memorising Fashion-MNIST proxy of SPEC.md; about 20 min per forget scheme,
sparsity and seed on 2 cores with the default method list):

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
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.formatting import markdown_table  # noqa: E402
from analysis.table import TABLE_COLUMNS, sparsity_label, summarize, wide_table  # noqa: E402
from study.cache import ArtifactCache  # noqa: E402
from study.cli_common import resolve_device, set_threads  # noqa: E402
from study.config import PRESETS, experiment_from_preset  # noqa: E402
from study.errors import UserError, cli_entry  # noqa: E402
from study.methods import build_method  # noqa: E402
from study.pipeline import prepare  # noqa: E402
from study.run import package_versions  # noqa: E402
from study.runner import run_method  # noqa: E402

DEFAULT_METHODS = ("ft", "ga", "ff", "iu", "rl", "salun", "scrub", "dau")


def protocol_runs(preset: str, forget: str, sparsities, seeds, methods, configs: dict, cache: ArtifactCache,
                  device: str, data_root: str | None, log=print) -> pd.DataFrame:
    """One row per (method, sparsity, seed): the metrics, run time and Retrain's time in that run."""
    rows = []
    for sparsity in sparsities:
        for seed in seeds:
            experiment = experiment_from_preset(preset, forget=forget, seed=seed, sparsity=sparsity,
                                                **({"data_root": data_root} if data_root else {}))
            prepared = prepare(experiment, cache, device=device, log=log)
            rows.append({"method": "retrain", "sparsity": sparsity, "seed": seed, **prepared.retrain_metrics,
                         "run_seconds": prepared.retrain_seconds, "retrain_seconds": prepared.retrain_seconds})
            rows.append({"method": "original", "sparsity": sparsity, "seed": seed, **prepared.original_metrics,
                         "run_seconds": 0.0, "retrain_seconds": prepared.retrain_seconds})
            for name in methods:
                cfg = configs.get(name, {})
                method = build_method(cfg.get("method", name), cfg.get("params"))
                began = time.perf_counter()
                result = run_method(prepared, method, log=lambda m: None)
                log(f"{forget} sparsity {sparsity:g} seed {seed} {name}: Avg. Disparity "
                    f"{result.metrics['avg_disparity']:.2f}, {result.run_seconds:.1f} s "
                    f"(wall {time.perf_counter() - began:.1f} s)")
                rows.append({"method": name, "sparsity": sparsity, "seed": seed, **result.metrics,
                             "run_seconds": result.run_seconds, "retrain_seconds": prepared.retrain_seconds})
    return pd.DataFrame(rows)


def ratio_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Each method's run time / Retrain's run time in the same (sparsity, seed), mean over seeds."""
    runs = runs.assign(ratio=runs["run_seconds"] / runs["retrain_seconds"])
    table = runs.groupby(["method", "sparsity"], sort=False)["ratio"].mean().unstack("sparsity")
    table.columns = [f"time / Retrain ({sparsity_label(s)})" for s in table.columns]
    return table.reset_index()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/paper_protocol.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--preset", default="fmnist-proxy", choices=sorted(PRESETS))
    parser.add_argument("--forget", nargs="+", default=["random:10", "class:0"])
    parser.add_argument("--sparsity", nargs="+", type=float, default=[0.0, 0.95])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    parser.add_argument("--config", nargs="*", default=[], help="METHOD=FILE.yaml: an exported config for METHOD")
    parser.add_argument("--cache-dir", required=True, help="use a fresh folder so Retrain is timed in this run")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="Markdown file to write")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    device = resolve_device(args.device)
    configs = {}
    for item in args.config:
        if "=" not in item:
            raise UserError(f"--config {item!r}: expected METHOD=FILE.yaml")
        name, path = item.split("=", 1)
        if not Path(path).is_file():
            raise UserError(f"--config {name}: {path} not found")
        configs[name] = yaml.safe_load(Path(path).read_text()) or {}
    for name in args.methods:  # validate every method before any training
        cfg = configs.get(name, {})
        build_method(cfg.get("method", name), cfg.get("params"))
    began = time.perf_counter()
    cache = ArtifactCache(args.cache_dir)
    sections = [f"Command: `python bench/paper_protocol.py {' '.join(sys.argv[1:] if argv is None else argv)}`", "",
                f"Machine: {platform.machine()}, device {device}, torch threads {args.threads or 'all'}; "
                f"versions: {package_versions()}", ""]
    for forget in args.forget:
        runs = protocol_runs(args.preset, forget, args.sparsity, args.seeds, args.methods, configs, cache, device,
                             args.data_root)
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
