"""Which CIFAR-10 recipe fits 2 CPU cores and still memorises: the measurements behind `cifar10-proxy`.

Random forgetting only means something when the original has memorised its training set, so a
CPU stand-in for the paper's CIFAR-10 table needs (a) train accuracy of at least 99%, so that
Retrain's UA on a random 10% forget set sits well above the original's (at least 5 points), and
(b) one original or Retrain trained in at most 10 minutes on 2 cores. For each candidate recipe
this trains the original and Retrain of one random-10% split (the artifact cache keeps them, so a
re-run only reads them), evaluates both on the test set, and writes one row: subset size, epochs,
augmentation, model, seconds per model, train and test accuracy, UA of each and the gap.

    python bench/cifar10_proxy_recipe.py --data-root ../shared/data/cifar10-jpeg/cifar10-jpeg.zip \
        --out docs/cifar10-proxy-recipe

Rows already in `<out>/runs.csv` are kept (the command resumes); `<out>/table.md` is rewritten after
each candidate. Time it alone on the machine: a second job on 2 cores slows both far more than 2x.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from analysis.formatting import markdown_table
from study.cli_common import set_threads
from study.core.cache import DEFAULT_CACHE_DIR, ArtifactCache
from study.core.errors import UserError, cli_entry
from study.core.staging import write_file_atomically
from study.core.versions import cpu_name
from study.experiment.config import resolve_experiment
from study.experiment.prepare import prepare
from study.records.paths import portable_command

# name -> overrides on the cifar10-proxy preset (which is narrow-10k-none-20: it meets both floors with the
# highest test accuracy of those that do, and a forget set twice the 5k subset's)
CANDIDATES: dict[str, dict] = {
    "narrow-5k-none-30": dict(model="resnet18-narrow", train_size=5000, augmentation="none", epochs=30),
    "narrow-5k-crop-40": dict(model="resnet18-narrow", train_size=5000, augmentation="crop_flip", epochs=40),
    "narrow-10k-none-20": dict(model="resnet18-narrow", train_size=10000, augmentation="none", epochs=20),
    "cnn-10k-none-30": dict(model="cnn", train_size=10000, augmentation="none", epochs=30),
}
TRAIN_ACCURACY_FLOOR = 99.0  # (a): the original fits its training set
UA_GAP_FLOOR = 5.0  # (a): Retrain's UA at least this far above the original's
MODEL_SECONDS_CEILING = 600.0  # (b): one model in at most 10 minutes on 2 cores


def measure(name: str, overrides: dict, data_root: str, seed: int, cache: ArtifactCache) -> dict:
    config = resolve_experiment("cifar10-proxy", None, {**overrides, "data_root": data_root, "seed": seed,
                                                        "forget": "random:10"})
    prepared = prepare(config, cache, device="cpu")
    original, retrain = prepared.original_metrics, prepared.retrain_metrics
    splits = prepared.splits
    n_retain, n_forget = len(splits.retain), len(splits.forget)
    # accuracy on the whole training set = retain accuracy and forget accuracy (100 - UA), weighted
    train_accuracy = (original["RA"] * n_retain + (100.0 - original["UA"]) * n_forget) / (n_retain + n_forget)
    return {
        "candidate": name, "model": config.model, "train_size": n_retain + n_forget,
        "augmentation": config.recipe.augmentation or prepared.data.augmentation, "epochs": config.recipe.epochs,
        "seed": seed, "original_seconds": round(prepared.original_seconds, 1),
        "retrain_seconds": round(prepared.retrain_seconds, 1), "train_acc": round(train_accuracy, 2),
        "original_TA": round(original["TA"], 2), "retrain_TA": round(retrain["TA"], 2),
        "original_UA": round(original["UA"], 2), "retrain_UA": round(retrain["UA"], 2),
        "UA_gap": round(retrain["UA"] - original["UA"], 2),
        "original_MIA": round(original["MIA-Efficacy"], 2), "retrain_MIA": round(retrain["MIA-Efficacy"], 2),
        "threads": torch.get_num_threads(), "cpu": cpu_name(),
        "data": prepared.data.source,
    }


def verdict(row: pd.Series) -> str:
    failed = []
    if row["train_acc"] < TRAIN_ACCURACY_FLOOR:
        failed.append(f"train acc < {TRAIN_ACCURACY_FLOOR:g}")
    if row["UA_gap"] < UA_GAP_FLOOR:
        failed.append(f"UA gap < {UA_GAP_FLOOR:g}")
    if max(row["original_seconds"], row["retrain_seconds"]) > MODEL_SECONDS_CEILING:
        failed.append(f"model > {MODEL_SECONDS_CEILING:g} s")
    return "meets (a) and (b)" if not failed else "; ".join(failed)


def write_table(rows: pd.DataFrame, out: Path, command: str) -> None:
    shown = rows.assign(verdict=rows.apply(verdict, axis=1))
    columns = ["candidate", "model", "train_size", "augmentation", "epochs", "seed", "original_seconds",
               "retrain_seconds", "train_acc", "original_TA", "retrain_TA", "original_UA", "retrain_UA", "UA_gap",
               "original_MIA", "retrain_MIA", "verdict"]
    lines = ["# CIFAR-10 proxy recipe: candidates measured", "",
             f"Command: `{command}`", "",
             f"Data: {rows['data'].iloc[0]} (CIFAR-10, JPEG copy). Machine: {rows['cpu'].iloc[0]}, torch threads "
             f"{rows['threads'].iloc[0]}. "
             "Seconds are training time per model; accuracies in % on the test set (TA), the whole training set "
             "(train_acc) and the random 10% forget set (UA = 100 - accuracy there). Retrain trains on the retain "
             "set with the same recipe.", "",
             markdown_table(shown[columns], digits=2), ""]
    write_file_atomically(out / "table.md", "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data/cifar10-jpeg/cifar10-jpeg.zip",
                        help="CIFAR-10: pickled release folder, image folder or zip (default: %(default)s)")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES),
                        help="which recipes to measure (default: all, in order)")
    parser.add_argument("--seed", type=int, default=0, help="split and initialisation seed (default 0)")
    parser.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="artifact cache (default %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--out", required=True, help="folder for runs.csv and table.md")
    args = parser.parse_args(argv)
    if not Path(args.data_root).exists():
        raise UserError(f"--data-root {args.data_root} does not exist")
    set_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.csv"
    rows = pd.read_csv(runs_path) if runs_path.exists() else pd.DataFrame()
    command = portable_command("python bench/cifar10_proxy_recipe.py", sys.argv[1:] if argv is None else argv)
    cache = ArtifactCache(args.cache_dir)
    for name in args.candidates:
        if len(rows) and ((rows["candidate"] == name) & (rows["seed"] == args.seed)).any():
            print(f"{name}: kept in {runs_path}")
            continue
        print(f"{name}: training original and Retrain ({CANDIDATES[name]})", flush=True)
        row = measure(name, CANDIDATES[name], args.data_root, args.seed, cache)
        print(f"{name}: {verdict(pd.Series(row))}: {row}", flush=True)
        rows = pd.concat([rows, pd.DataFrame([row])], ignore_index=True)
        write_file_atomically(runs_path, rows.to_csv(index=False))
        write_table(rows, out, command)
    if len(rows):
        write_table(rows, out, command)  # also when every candidate was kept: the table follows runs.csv
    return 0


if __name__ == "__main__":
    cli_entry(main)()
