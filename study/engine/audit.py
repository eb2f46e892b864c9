"""The audit's models: K originals and K retrained models per side on one fixed split (cached, or
trained as parallel Ray tasks), each original unlearned by the audited method, and one row of
U-LiRA and forgetting-score statistics (`study.evaluation.lira`) and KLoM on forget, retain and
test (`study.evaluation.klom`) per method, beside the `original` and `retrain` reference rows
(the latter is KLoM's Retrain-vs-Retrain floor at the same K). `python -m study.audit` prints them."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from study.core.cache import ArtifactCache
from study.core.errors import UserError
from study.core.inference import predict_logits
from study.core.models import load_model_files
from study.core.pruning import copy_model
from study.evaluation.klom import klom_p95
from study.evaluation.lira import example_epsilon, forgetting_quality, lira_scores, logit_scaled_confidence
from study.evaluation.mia import roc_summary
from study.experiment.artifacts import trained_model
from study.experiment.config import ExperimentConfig
from study.experiment.prepare import load_experiment
from study.experiment.unlearn_data import UnlearnData
from study.methods import build_method

SEED_OFFSETS = {"original": 1000, "retrain": 2000, "retrain-reference": 3000}


@dataclass
class AuditRow:
    label: str
    auc: float
    tpr_1: float
    tpr_01: float
    forgetting: float
    score: float
    ra: float
    ta: float
    klom_forget: float = float("nan")  # 95th percentile of per-example KLoM against the K retrained models
    klom_retain: float = float("nan")
    klom_test: float = float("nan")


def _audit_model(config_dict: dict, cache_dir: str, role: str, index: int) -> str:
    """Train (or find) one audit model; returns its cache folder. Runs in a Ray task or inline."""
    config = ExperimentConfig.from_dict(config_dict)
    data, _, splits = load_experiment(config, ArtifactCache(cache_dir))
    train_idx = splits.train if role == "original" else splits.retain
    model_seed = config.seed * 10000 + SEED_OFFSETS[role] + index
    return str(trained_model(ArtifactCache(cache_dir), config, data, f"audit-{role}", train_idx, model_seed).folder)


def train_audit_models(config: ExperimentConfig, cache_dir: str, k: int, workers: int, with_reference: bool,
                       log=print) -> dict[str, list[str]]:
    """Folders of K originals, K retrained and (optionally) K reference retrained models."""
    roles = ["original", "retrain"] + (["retrain-reference"] if with_reference else [])
    jobs = [(role, i) for role in roles for i in range(k)]
    folders: dict[str, list[str]] = {role: [""] * k for role in roles}
    started = time.perf_counter()
    if workers > 1:
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        task = ray.remote(num_cpus=1)(_train_one_threaded)
        pending = {task.remote(config.as_dict(), cache_dir, role, i): (role, i) for role, i in jobs}
        done_count = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            role, i = pending.pop(ready[0])
            folders[role][i] = ray.get(ready[0])
            done_count += 1
            log(f"  [{done_count}/{len(jobs)}] {role} model {i + 1} ready ({time.perf_counter() - started:.0f} s)")
        ray.shutdown()
    else:
        for n, (role, i) in enumerate(jobs, 1):
            folders[role][i] = _audit_model(config.as_dict(), cache_dir, role, i)
            log(f"  [{n}/{len(jobs)}] {role} model {i + 1} ready ({time.perf_counter() - started:.0f} s)")
    return folders


def _train_one_threaded(config_dict, cache_dir, role, index) -> str:
    torch.set_num_threads(1)
    return _audit_model(config_dict, cache_dir, role, index)


def audit_rows(config: ExperimentConfig, cache_dir: str, methods: list[tuple[str, str, dict]], k: int,
               workers: int = 1, log=print) -> list[AuditRow]:
    """One row per (label, method name, params), plus the `original` and `retrain` reference rows."""
    if config.sparsity:
        raise UserError("the audit runs dense models; drop --sparsity")
    if k < 3:
        raise UserError(f"--k must be at least 3 (got {k}): the leave-one-out fits need two models per side")
    data, spec, splits = load_experiment(config, ArtifactCache(cache_dir), log=log)
    log(f"audit: {config.dataset}/{config.model}, forget {config.forget} ({len(splits.forget)} examples), K = {k}")
    folders = train_audit_models(config, cache_dir, k, workers, with_reference=True, log=log)
    load = lambda f: load_model_files(Path(f), config.model, data.image_shape[0], data.num_classes)  # noqa: E731
    forget_x, forget_y = data.train_x[splits.forget], data.train_y[splits.forget]
    parts = {"forget": (forget_x, forget_y), "retain": (data.train_x[splits.retain], data.train_y[splits.retain]),
             "test": (data.test_x[splits.test], data.test_y[splits.test])}

    def signals_and_accuracy(models) -> tuple[dict[str, np.ndarray], float, float]:
        """Per split, the margins (K, n) under the models; and their mean RA and TA."""
        margins: dict[str, list] = {name: [] for name in parts}
        ras, tas = [], []
        for model in models:
            for name, (x, y) in parts.items():
                logits = predict_logits(model, x)
                margins[name].append(logit_scaled_confidence(logits, y))
                if name != "forget":
                    (ras if name == "retain" else tas).append(100.0 * float((logits.argmax(1) == y).float().mean()))
        return {name: np.stack(m) for name, m in margins.items()}, float(np.mean(ras)), float(np.mean(tas))

    retrained, ra_ret, ta_ret = signals_and_accuracy([load(f) for f in folders["retrain"]])

    def row(label: str, models) -> AuditRow:
        margins, ra, ta = signals_and_accuracy(models)
        phis = margins["forget"]
        pos, neg = lira_scores(phis, retrained["forget"])
        roc = roc_summary(pos.ravel(), neg.ravel(), fprs=(0.01, 0.001))
        epsilons = np.array([example_epsilon(phis[:, j], retrained["forget"][:, j]) for j in range(phis.shape[1])])
        forgetting = forgetting_quality(epsilons)
        kloms = {name: klom_p95(margins[name], retrained[name]) for name in parts}
        return AuditRow(label, roc["auc"], roc["tpr@0.01"], roc["tpr@0.001"], forgetting,
                        forgetting * (ra / ra_ret) * (ta / ta_ret), ra, ta,
                        kloms["forget"], kloms["retain"], kloms["test"])

    originals = [load(f) for f in folders["original"]]
    rows = []
    for label, name, params in methods:
        unlearned = []
        for i, original in enumerate(originals):
            method = build_method(name, params)
            seed = config.seed * 10000 + SEED_OFFSETS["original"] + i
            unlearn_data = UnlearnData(data.train_x[splits.retain], data.train_y[splits.retain], forget_x, forget_y,
                                       data.train_x[splits.val], data.train_y[splits.val], data.num_classes,
                                       data.augmentation, seed, classwise=spec.is_classwise,
                                       pixel_std=data.pixel_std, dataset=config.dataset,
                                       sparsity=config.sparsity, pixel_mean=data.pixel_mean)
            began = time.perf_counter()
            unlearned.append(method.unlearn(copy_model(original), unlearn_data))
            log(f"  {label}: unlearned model {i + 1}/{k} ({time.perf_counter() - began:.1f} s)")
        rows.append(row(label, unlearned))
    rows.append(row("original (no unlearning)", originals))
    rows.append(row("retrain (reference: chance)", [load(f) for f in folders["retrain-reference"]]))
    return rows
