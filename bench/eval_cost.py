"""What one evaluation costs, part by part, against one epoch of unlearning.

A trial evaluates UA, RA, TA and MIA-Efficacy (plus the metric-based MIAs) whenever the scheduler
reads its objective. This times the parts of one evaluation of the original model, each the
median of `--repeats`, at the given torch thread count, and one epoch of fine-tuning for scale:

- predictions: logits of the retain, forget and test sets (`study.inference.predict_logits`);
- MIA-Efficacy's SVM: the RBF SVM fitted on member and non-member confidences, then applied;
- metric MIAs: the four threshold attacks.

    python bench/eval_cost.py --preset fmnist-proxy --threads 1 --cache-dir /tmp/protocol-cache
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from study.cache import ArtifactCache  # noqa: E402
from study.config import experiment_from_preset, resolve_experiment  # noqa: E402
from study.methods import build_method  # noqa: E402
from study.metrics import metric_mia_efficacies, mia_efficacy, true_label_confidence  # noqa: E402
from study.pipeline import prepare, split_logits  # noqa: E402


def median_seconds(work, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="digits")
    parser.add_argument("--forget", default="random:10")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "dau-study"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    experiment = resolve_experiment(None, experiment_from_preset(args.preset).as_dict(), {"forget": args.forget})
    prepared = prepare(experiment, ArtifactCache(args.cache_dir), log=print)
    data, splits, model = prepared.data, prepared.splits, prepared.original
    logits, labels = split_logits(model, data, splits)
    conf = {name: true_label_confidence(logits[name], labels[name]) for name in ("retain", "test", "forget")}
    parts = {
        "predictions": median_seconds(lambda: split_logits(model, data, splits), args.repeats),
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


if __name__ == "__main__":
    main()
