"""MIA-Efficacy fitted on unequal member and non-member sets against the metric's equal ones.

Until 2026-12-03 the MIA-Efficacy SVM was fitted on all of retain against all of test. On the
Fashion-MNIST proxy that is 9,000 members against 10,000 non-members. The studies' selection
view fitted it on 2,000 against 2,000. This re-runs one method on one seed and prints, for Retrain,
the original and the method's model, MIA-Efficacy both ways in both views. That is the evidence
for `study.evaluation.metrics.mia_sets` (equal sets).

    python bench/mia_balance.py --seed 2 --method ga -p epochs=5 -p lr=0.0028794946405635677 \
        --cache-dir cache/proxy

(GA's configuration chosen by docs/table1-fmnist-random10; seed 2 is the seed where its old row
read MIA-Efficacy 100.)
"""
from __future__ import annotations

import argparse

import numpy as np

from study.cli_common import parse_params, set_threads
from study.core.cache import ArtifactCache
from study.core.errors import cli_entry
from study.engine.runner import run_method
from study.evaluation.evaluate import split_logits
from study.evaluation.metrics import fit_svm, mia_efficacy, mia_sets, true_label_confidence
from study.experiment.config import PRESETS, experiment_from_preset
from study.experiment.prepare import prepare
from study.methods import METHODS, build_method


def unequal_mia_efficacy(retain: np.ndarray, test: np.ndarray, forget: np.ndarray, seed: int) -> float:
    """The old estimator: the metric's members (a retain subset as large as test, or all of retain
    when it is the smaller) against all of test."""
    members, _ = mia_sets(len(retain), len(test), seed)
    predicted = fit_svm(retain[members], test).predict(forget.reshape(-1, 1))
    return 100.0 * float((predicted == 0).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="fmnist-proxy", choices=list(PRESETS))
    parser.add_argument("--forget", default="random:10")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--method", default="ga", choices=sorted(METHODS))
    parser.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--epochs", type=int, default=None,
                        help="the original's and Retrain's training epochs (default: the preset's)")
    parser.add_argument("--cache-dir", default="cache/proxy")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    method = build_method(args.method, parse_params(args.param))  # a bad -p fails before any model is trained
    experiment = experiment_from_preset(args.preset, forget=args.forget, seed=args.seed, epochs=args.epochs)
    prepared = prepare(experiment, ArtifactCache(args.cache_dir))
    models = {"Retrain": prepared.retrain, "Original": prepared.original,
              method.label: run_method(prepared, method, log=lambda m: None).model}
    print(f"{args.preset}, {args.forget}, seed {args.seed}; MIA-Efficacy (% of forget called non-member)")
    print("| model | view | retain subset | held-out set | unequal: subset vs all held-out | equal: the metric |")
    print("|---|---|---|---|---|---|")
    for name, model in models.items():
        for view in ("test", "select"):
            logits, labels = split_logits(model, prepared.data, prepared.splits, view=view)
            conf = {k: true_label_confidence(logits[k], labels[k]) for k in ("retain", "test", "forget")}
            old = unequal_mia_efficacy(conf["retain"], conf["test"], conf["forget"], args.seed)
            new = mia_efficacy(conf["retain"], conf["test"], conf["forget"], args.seed)
            print(f"| {name} | {view} | {min(len(conf['retain']), len(conf['test']))} | {len(conf['test'])} "
                  f"| {old:.1f} | {new:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    cli_entry(main)()
