"""Why does DAU under-forget random data? Three candidate causes, each an ablation run per seed.

On the Fashion-MNIST proxy DAU at its defaults keeps RA and TA but leaves UA at 1.6–3.2 against
Retrain's 8.4–9.4 (docs/RESULTS.md). Each variant below changes one thing about DAU at its
documented defaults and is run on every seed asked for:

- `reference`: DAU at its defaults, 3 epochs (108 defender steps on the proxy), evaluated after
  every epoch up to `--long-epochs`; the evaluations at epochs 3, 6, 9, ... answer cause (b),
  "too few defender steps", on the same run (DAU's random-forgetting rate is constant, so the
  first three epochs of a longer run are the 3-epoch run). `--long-epochs` defaults to the
  reference's CIFAR-10 step count, 477, in whole epochs;
- `detach-validation`: cause (a), "the game is won by moving validation outputs": the defender's
  loss reads the validation outputs detached (DAU's `detach_validation`);
- `attacker-steps-5`: cause (c), "the attacker is at its ceiling": five attacker updates per
  defender step (DAU's `attacker_steps`), a stronger opponent within the same game.

Every row keeps, beside the table's metrics, what each cause predicts: eval-mode validation
accuracy against TA (a model that fits the validation images it trains on without labels shows
val − TA above the original's), the attacker's accuracy on its own batches during unlearning,
and the original's best metric attack's balanced accuracy on retain vs test (the ceiling an
output-based attack reaches). Runs are kept in `<out>/runs.csv` as each finishes; the same
command resumes and `<out>/table.md` is rewritten from that file.

    python bench/dau_ablations.py --seeds 0 1 2 3 --workers 2 --cache-dir cache/proxy --out docs/dau-ablations

`--workers 2` runs two DAU runs at a time, one thread each (`study.engine.row_pool`); Ctrl+C
then lets the runs in flight finish and keeps them, a second Ctrl+C abandons them.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.formatting import mean_std as format_mean_std
from study.cli_common import parse_params, set_threads
from study.core.cache import ArtifactCache
from study.core.errors import UserError, cli_entry
from study.core.inference import predict_logits
from study.core.splits import forget_scheme
from study.core.staging import write_file_atomically
from study.core.stopping import stop_after_run_in_flight
from study.engine.row_pool import PreparedSeeds, run_in_workers, worker_prepared
from study.evaluation.metrics import accuracy
from study.evaluation.mia import SIGNALS
from study.evaluation.names import HEADLINE
from study.experiment.config import experiment_from_preset
from study.experiment.prepare import Prepared, load_experiment
from study.methods import build_method, method_class
from study.records.paths import portable_command

REFERENCE_STEPS = 477  # the reference's defender steps on CIFAR-10 (3 epochs of 159 retain batches)
VARIANTS = {"reference": {}, "detach-validation": {"detach_validation": True},
            "attacker-steps-5": {"attacker_steps": 5}}
METRICS = HEADLINE  # the four metrics, then Avg. Disparity
BEST_METRIC_ATTACK = tuple(f"mia/{signal}_bacc" for signal in SIGNALS)  # each metric attack's balanced accuracy


def accuracy_of(model, x, y, device: str) -> float:
    return accuracy(predict_logits(model, x, device=device), y)


def ablation_rows(prepared: Prepared, variant: str, epochs: int, eval_epochs: set[int], common: dict,
                  log=print) -> list[dict]:
    """One row per evaluated epoch of one DAU run: metrics, val − TA, the attacker's accuracy."""
    method = build_method("dau", {**common, **VARIANTS[variant], "epochs": epochs})
    data = prepared.unlearn_data(log=lambda m: None)
    rows: list[dict] = []
    seconds = 0.0

    def on_epoch(epoch: int, model, logs: dict) -> None:
        nonlocal seconds
        seconds += logs["seconds"]
        if epoch + 1 not in eval_epochs:
            return
        metrics = prepared.evaluate(model)
        row = {"variant": variant, "seed": prepared.config.seed, "epoch": epoch + 1,
               "defender_steps": method.defender_iterations, **{m: metrics[m] for m in METRICS},
               "val_acc_eval": accuracy_of(model, data.val_x, data.val_y, data.device),
               "attacker_acc": logs.get("attacker_train_acc", math.nan),
               "attacker_pretrain_acc": logs.get("attacker_pretrain_acc", math.nan),
               "seconds": seconds + method.setup_seconds}
        row["val_minus_TA"] = row["val_acc_eval"] - row["TA"]
        rows.append(row)
        log(f"  {variant}, seed {row['seed']}, epoch {epoch + 1}: UA {row['UA']:.2f} MIA {row['MIA-Efficacy']:.2f} "
            f"RA {row['RA']:.2f} TA {row['TA']:.2f} Avg. Disparity {row['avg_disparity']:.2f}, "
            f"val - TA {row['val_minus_TA']:+.2f}, attacker {row['attacker_acc']:.1f}%")

    method.unlearn(prepared.fresh_original(), data, callbacks=[on_epoch])
    return rows


def reference_rows(prepared: Prepared) -> list[dict]:
    """Retrain's and the original's rows (epoch 0), with the original's best metric attack."""
    rows = []
    for label, model, metrics in (("Retrain", prepared.retrain, prepared.retrain_metrics),
                                  ("Original", prepared.original, prepared.original_metrics)):
        row = {"variant": label, "seed": prepared.config.seed, "epoch": 0, "defender_steps": 0,
               **{m: metrics[m] for m in METRICS},
               "val_acc_eval": accuracy_of(model, prepared.data.train_x[prepared.splits.val],
                                        prepared.data.train_y[prepared.splits.val], prepared.device),
               "best_metric_attack_bacc": max(metrics.get(k, math.nan) for k in BEST_METRIC_ATTACK)}
        row["val_minus_TA"] = row["val_acc_eval"] - row["TA"]
        rows.append(row)
    return rows


def mean_std(values: pd.Series | None) -> str:
    """Mean ± std over seeds ('–' for no value, the mean alone for one)."""
    values = pd.Series(dtype=float) if values is None else values.dropna()
    return format_mean_std(values.mean(), values.std(ddof=1))


def render(runs: pd.DataFrame, command: str, short_epochs: int) -> str:
    """The table: per variant at 3 epochs (and the long run's trajectory), mean ± std over seeds."""
    seeds = sorted(runs["seed"].unique())
    lines = [f"Command: `{command}`", "", f"Seeds {', '.join(map(str, seeds))}; mean ± std over seeds.", "",
             f"### At DAU's {short_epochs} epochs", "",
             "| variant | seeds | UA | MIA-Efficacy | RA | TA | Avg. Disparity | val − TA | attacker acc. (%) |",
             "|---|---|---|---|---|---|---|---|---|"]
    at_short = runs[(runs["epoch"] == short_epochs) | (runs["epoch"] == 0)]
    for variant in ["Retrain", "Original", *VARIANTS]:
        part = at_short[at_short["variant"] == variant]
        if part.empty:
            continue
        cells = " | ".join(mean_std(part.get(c)) for c in (*METRICS, "val_minus_TA", "attacker_acc"))
        lines.append(f"| {variant} | {len(part)} | {cells} |")
    originals = runs[runs["variant"] == "Original"]
    if "best_metric_attack_bacc" in runs and not originals.empty:
        pretrained = runs[(runs["variant"] == "reference") & (runs["epoch"] == short_epochs)]
        lines += ["", "The original's best metric attack (retain vs test, balanced accuracy): "
                  f"{mean_std(originals.get('best_metric_attack_bacc'))} %; DAU's attacker after pre-training, on its "
                  f"own batches: {mean_std(pretrained.get('attacker_pretrain_acc'))} %."]
    long_run = runs[runs["variant"] == "reference"]
    if long_run["epoch"].nunique() > 1:
        lines += ["", "### The reference run's trajectory (cause b: more defender steps)", "",
                  "| epoch | defender steps | seeds | UA | MIA-Efficacy | RA | TA | Avg. Disparity | val − TA |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for epoch, part in long_run.groupby("epoch"):
            cells = " | ".join(mean_std(part.get(c)) for c in (*METRICS, "val_minus_TA"))
            lines.append(f"| {epoch} | {int(part['defender_steps'].iloc[0])} | {len(part)} | {cells} |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class AblationTask:
    """One DAU run of a variant on a seed (or `references`: Retrain's and the original's rows)."""

    seed: int
    variant: str
    epochs: int
    eval_epochs: frozenset
    common: dict


def ablation_task(task: AblationTask, prepared_for=None) -> tuple[AblationTask, list[dict], float]:
    """Run one task (in a worker, whose prepared seeds `worker_prepared` keeps, or in this process)."""
    prepared = (prepared_for or worker_prepared)(task.seed)
    began = time.perf_counter()
    rows = (reference_rows(prepared) if task.variant == "references"
            else ablation_rows(prepared, task.variant, task.epochs, set(task.eval_epochs), task.common))
    return task, rows, time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="fmnist-proxy")
    parser.add_argument("--forget", default="random:10")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--long-epochs", type=int, default=None,
                        help=f"epochs of the reference run (default: the reference's {REFERENCE_STEPS} defender steps "
                             "in whole epochs; 3 = no long run)")
    parser.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                        help="a DAU hyperparameter for every variant (default: DAU's documented defaults)")
    parser.add_argument("--epochs", type=int, default=None, help="the original's and Retrain's epochs (tests)")
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--out", required=True, help="folder for runs.csv and table.md")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="runs at a time, each in its own process with cores/N torch threads (default 1: in turn)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    set_threads(args.threads)
    out = Path(args.out)
    command = portable_command("python bench/dau_ablations.py", sys.argv[1:] if argv is None else argv)
    runs_path = out / "runs.csv"
    runs = pd.read_csv(runs_path) if runs_path.is_file() else pd.DataFrame(columns=["variant", "seed", "epoch"])
    common = parse_params(args.param)
    if {"epochs", *(key for changes in VARIANTS.values() for key in changes)} & set(common):
        raise UserError("-p may not set epochs or what a variant changes; the variants set those")
    setting = experiment_from_preset(args.preset, forget=args.forget)
    short_epochs = method_class("dau").documented_defaults(forget_scheme(args.forget), setting.dataset,
                                                           setting.sparsity)["epochs"]
    overrides = {"epochs": args.epochs} if args.epochs else {}
    tasks: list[AblationTask] = []
    for seed in args.seeds:
        experiment = experiment_from_preset(args.preset, forget=args.forget, seed=seed, **overrides)
        _, spec, splits = load_experiment(experiment, ArtifactCache(args.cache_dir))
        if spec.is_classwise:
            raise UserError("the ablations ask why DAU under-forgets random data; give a random or memorised spec")
        per_epoch = math.ceil(len(splits.retain) / build_method("dau", common).batch_size)
        long_epochs = args.long_epochs or max(short_epochs, round(REFERENCE_STEPS / per_epoch))
        if not ((runs["variant"] == "Retrain") & (runs["seed"] == seed)).any():
            tasks.append(AblationTask(seed, "references", 0, frozenset(), common))
        for variant in args.variants:
            epochs = long_epochs if variant == "reference" else short_epochs
            if not ((runs["variant"] == variant) & (runs["seed"] == seed) & (runs["epoch"] == epochs)).any():
                evaluated = frozenset(range(short_epochs, epochs + 1, short_epochs)) | {epochs}
                tasks.append(AblationTask(seed, variant, epochs, evaluated, common))
    setting = experiment_from_preset(args.preset, forget=args.forget, **overrides).as_dict()
    if args.workers > 1:
        results = run_in_workers(ablation_task, tasks, args.workers, setting, args.cache_dir)
    else:  # in this process, each seed prepared once for all its tasks
        prepared_for = PreparedSeeds(setting, args.cache_dir, lambda m: print(m, flush=True))
        results = (ablation_task(task, prepared_for) for task in tasks)
    with stop_after_run_in_flight(lambda message: print(message, flush=True)) as stop:  # the worker pool has its own (`row_pool`)
        for task, rows, seconds in results:
            runs = runs[~((runs["variant"].isin([r["variant"] for r in rows])) & (runs["seed"] == task.seed))]
            runs = pd.concat([runs, pd.DataFrame(rows)], ignore_index=True)
            write_file_atomically(runs_path, runs.to_csv(index=False))
            write_file_atomically(out / "table.md", render(runs, command, short_epochs))
            print(f"seed {task.seed}, {task.variant}: done in {seconds:.0f} s", flush=True)
            stop.raise_if_requested()
    print(render(runs, command, short_epochs))
    return 0


if __name__ == "__main__":
    cli_entry(main)()
