"""What one evaluation costs, part by part, against one epoch of unlearning.

A trial evaluates UA, RA, TA and MIA-Efficacy (plus the metric-based MIAs) whenever the scheduler
reads its objective. This times the parts of one evaluation of the original model, each the
median of `--repeats`, at the given torch thread count, and one epoch of fine-tuning for scale:

- predictions: logits of the retain, forget and test sets (`study.core.inference.predict_logits`), and
  for comparison the same logits from the model as it is (default memory layout, batches of 1024,
  as predictions were made before `study/inference.py`);
- MIA-Efficacy's SVM: the RBF SVM fitted on member and non-member confidences, then applied;
- metric MIAs: the four threshold attacks.

    python bench/eval_cost.py --preset fmnist-proxy --threads 1 --cache-dir /tmp/protocol-cache
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from study.core.cache import ArtifactCache
from study.core.errors import cli_entry
from study.evaluation.evaluate import split_logits
from study.evaluation.metrics import metric_mia_efficacies, mia_efficacy, true_label_confidence
from study.experiment.config import PRESETS, experiment_from_preset, resolve_experiment
from study.experiment.prepare import prepare
from study.methods import build_method


def median_seconds(work, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


@torch.no_grad()
def default_layout_logits(model: torch.nn.Module, sets: list[torch.Tensor], batch_size: int = 1024) -> None:
    model.eval()
    for x in sets:
        [model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="digits", choices=sorted(PRESETS))
    parser.add_argument("--forget", default="random:10")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "dau-study"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    experiment = resolve_experiment(None, experiment_from_preset(args.preset).as_dict(), {"forget": args.forget})
    prepared = prepare(experiment, ArtifactCache(args.cache_dir), log=print)
    data, splits, model = prepared.data, prepared.splits, prepared.original
    logits, labels = split_logits(model, data, splits)
    conf = {name: true_label_confidence(logits[name], labels[name]) for name in ("retain", "test", "forget")}
    parts = {
        "predictions": median_seconds(lambda: split_logits(model, data, splits), args.repeats),
        "predictions, default layout, batches of 1024": median_seconds(lambda: default_layout_logits(model, [
            data.train_x[splits.retain], data.train_x[splits.forget], data.test_x[splits.test]]), args.repeats),
        "MIA-Efficacy SVM": median_seconds(lambda: mia_efficacy(conf["retain"], conf["test"], conf["forget"]),
                                           args.repeats),
        "metric MIAs": median_seconds(lambda: metric_mia_efficacies(logits, labels), args.repeats),
    }
    parts["whole evaluation"] = median_seconds(lambda: prepared.evaluate(model), args.repeats)
    method = build_method("ft", {"epochs": 1})
    method.start(prepared.fresh_original(), prepared.unlearn_data(log=lambda m: None))
    epoch = method.epoch(0)["seconds"]
    sizes = ", ".join(f"{name} {len(labels[name])}" for name in labels)
    print(f"\n{args.preset}, forget {args.forget}, {args.threads} thread(s); sets: {sizes}\n")
    print("| part | seconds | × one FT epoch |\n|---|---|---|")
    for part, seconds in parts.items():
        print(f"| {part} | {seconds:.2f} | {seconds / epoch:.2f} |")
    print(f"| one epoch of FT (for scale) | {epoch:.2f} | 1.00 |")
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run()
