"""Held-out membership attacks on a *final* model, and the retrain-free score built on them.

DAU's own attacker took part in its training, so it cannot judge DAU (SPEC.md). After
unlearning, `RetrainFreeJudge` trains fresh attackers that never saw the min-max game and asks
them to tell forget samples from validation samples the model never trained on:

- **SAMIA, afresh**: a new self-attention attacker (same architecture as DAU's) fitted on the
  final model's outputs/sensitivities/labels of half the forget set (members) vs half the
  validation set (non-members), scored on the other halves.
- **RMIA, offline** (Zarifzadeh et al. 2024): `references` small models trained on the first
  validation half only (public data; no forget sample, no Retrain); the score of x is the
  share of population samples z with [p(y|x)/p_ref(x)] / [p(y|z)/p_ref(z)] > 1, where
  p_ref is the offline approximation ½((1 + a)·mean_ref + (1 − a)), a = 0.3. The population is
  drawn from the selection set where the split keeps one (so no objective reads the test set).

For class-wise forgetting the non-members are the validation samples *of the forgotten class*:
a model that never learned the class treats its forget and validation samples alike.

`retrain_free_score` mirrors Avg. Disparity's four terms without a retrained model (points, lower
is better): forget gap |acc(forget) − acc(held-out non-members)| (≈ UA), attack gap mean over
the attacks of |AUC − 0.5| × 200 (≈ MIA-Efficacy), retain drop and validation drop against the
*original* model (≈ RA, TA; validation restricted to the remaining classes in class-wise runs).
DAU trains on the validation set's outputs (never its labels), so the validation drop is not
fully held out for DAU; the test set stays untouched.

Beside it, `heldout/rf_jsd`: LoTUS's retrain-free metric (study.evaluation.rf_jsd), the unlearned
model's class-mean posteriors on the forget set against the original's on held-out images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from study.core.cache import ArtifactCache
from study.core.errors import UserError
from study.core.inference import predict_logits
from study.evaluation.mia import roc_summary
from study.evaluation.rf_jsd import rf_jsd
from study.experiment.artifacts import trained_model
from study.experiment.prepare import Prepared
from study.methods.dau.attacker import SelfAttentionAttacker, attack_inputs

RMIA_OFFLINE_A = 0.3  # RMIA's offline scaling of the reference-model probability (their default)
RMIA_POPULATION = 1000  # population samples z (selection set, else test set)
ATTACKER_STEPS = 300  # Adam steps for the fresh SAMIA attacker (converges on the proxy's 500 vs 1000)
ATTACKER_PASSES = 40  # ...but no more than this many passes over a small fit set (digits: 63 samples)
ATTACKER_BATCH = 64
MIN_NONMEMBERS = 4  # per validation half; fewer cannot give a meaningful AUC


@dataclass
class HeldoutSplit:
    """Train-set indices: attack training and evaluation halves, and the references' training data."""

    forget_fit: np.ndarray
    forget_eval: np.ndarray
    nonmember_fit: np.ndarray
    nonmember_eval: np.ndarray
    reference_train: np.ndarray
    val_remaining: np.ndarray  # validation samples of the classes that stay (for the validation drop)


def heldout_split(prepared: Prepared) -> HeldoutSplit:
    splits, train_y = prepared.splits, prepared.data.train_y.numpy()
    rng = np.random.Generator(np.random.PCG64([prepared.config.seed, 7]))
    forget = rng.permutation(splits.forget)
    val = rng.permutation(splits.val)
    half = len(val) // 2
    reference_train, val_eval_pool = np.sort(val[:half]), np.sort(val[half:])
    if prepared.spec.is_classwise:
        k = int(prepared.spec.value)
        nonmember_fit = reference_train[train_y[reference_train] == k]
        nonmember_eval = val_eval_pool[train_y[val_eval_pool] == k]
        val_remaining = splits.val[train_y[splits.val] != k]
    else:
        nonmember_fit, nonmember_eval, val_remaining = reference_train, val_eval_pool, splits.val
    if min(len(nonmember_fit), len(nonmember_eval)) < MIN_NONMEMBERS or len(forget) < 2 * MIN_NONMEMBERS:
        raise UserError(f"held-out attacks need at least {MIN_NONMEMBERS} validation samples per half "
                        f"(and twice that many forget samples); this split has {len(nonmember_fit)}/"
                        f"{len(nonmember_eval)} and {len(forget)}: raise --val-size")
    return HeldoutSplit(np.sort(forget[: len(forget) // 2]), np.sort(forget[len(forget) // 2:]),
                        nonmember_fit, nonmember_eval, reference_train, val_remaining)


@torch.no_grad()
def _attack_features(model, x, y, num_classes: int, seed: int, device: str) -> torch.Tensor:
    """SAMIA inputs (softmax, sensitivity, one-hot) of a frozen model in eval mode, (n, 3C).
    The model's train/eval mode is restored afterwards (a Trainable keeps training it)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    parts = []
    for i in range(0, len(x), 256):
        inputs = attack_inputs(model, x[i:i + 256].to(device), y[i:i + 256].to(device), num_classes, 10, generator,
                               use_softmax=True)  # SAMIA's own form, whatever DAU's attacker reads
        parts.append(torch.cat([inputs.outputs, inputs.sensitivity, inputs.onehot], dim=1).cpu())
    model.train(was_training)
    return torch.cat(parts)


def samia_heldout(model, prepared: Prepared, split: HeldoutSplit, steps: int = ATTACKER_STEPS) -> dict[str, float]:
    """Fit a fresh SAMIA attacker on (forget_fit vs nonmember_fit); AUC/TPR on the eval halves."""
    data, c, seed, device = prepared.data, prepared.data.num_classes, prepared.config.seed, prepared.device
    feats = {name: _attack_features(model, data.train_x[idx], data.train_y[idx], c, seed + i, device)
             for i, (name, idx) in enumerate((("mf", split.forget_fit), ("nf", split.nonmember_fit),
                                              ("me", split.forget_eval), ("ne", split.nonmember_eval)))}
    with torch.random.fork_rng(devices=[]):  # never disturb the global RNG of a run being judged
        torch.manual_seed(seed)
        attacker = SelfAttentionAttacker(c)
        optimizer = torch.optim.Adam(attacker.parameters(), lr=1e-3)
        rng = np.random.Generator(np.random.PCG64([seed, 11]))
        batch = min(ATTACKER_BATCH, len(feats["mf"]), len(feats["nf"]))
        steps = min(steps, ATTACKER_PASSES * -(-len(feats["mf"]) // batch))
        attacker.train()
        for _ in range(steps):
            members = feats["mf"][rng.choice(len(feats["mf"]), batch, replace=False)]
            nonmembers = feats["nf"][rng.choice(len(feats["nf"]), batch, replace=False)]
            inputs = torch.cat([members, nonmembers])
            targets = torch.cat([torch.ones(batch, dtype=torch.long), torch.zeros(batch, dtype=torch.long)])
            loss = F.cross_entropy(attacker(*inputs.split(c, dim=1)), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        attacker.eval()
        with torch.no_grad():
            scores = [attacker(*feats[n].split(c, dim=1)) for n in ("me", "ne")]
    member_score, nonmember_score = [(s[:, 1] - s[:, 0]).numpy() for s in scores]
    return roc_summary(member_score, nonmember_score, fprs=(0.01,))


def reference_models(prepared: Prepared, split: HeldoutSplit, cache: ArtifactCache, count: int) -> list:
    """RMIA's offline reference models: trained on the first validation half only, cached."""
    config = prepared.config
    return [trained_model(cache, config, prepared.data, "rmia-reference", split.reference_train,
                          config.seed * 1000 + 100 + i, prepared.device).model for i in range(count)]


def _true_prob(model, x, y, device) -> np.ndarray:
    probs = torch.softmax(predict_logits(model, x, device=device), dim=1)
    return probs.gather(1, y.view(-1, 1)).squeeze(1).numpy().astype(np.float64)


def rmia_scores(target_x: np.ndarray, reference_x: np.ndarray, target_z: np.ndarray, reference_z: np.ndarray,
                a: float = RMIA_OFFLINE_A, gamma: float = 1.0) -> np.ndarray:
    """Offline RMIA: for each x, the share of population z with LR(x, z) > gamma.

    target_x (n,), reference_x (k, n): p(y|x) under the target and each reference model;
    target_z (m,), reference_z (k, m) the same for the population."""
    prior_x = 0.5 * ((1 + a) * reference_x.mean(axis=0) + (1 - a))
    prior_z = 0.5 * ((1 + a) * reference_z.mean(axis=0) + (1 - a))
    ratio_x = target_x / prior_x
    ratio_z = np.sort(target_z / prior_z)
    # LR(x, z) > gamma  <=>  ratio_z < ratio_x / gamma
    return np.searchsorted(ratio_z, ratio_x / gamma, side="left") / len(ratio_z)


class RetrainFreeJudge:
    """Held-out attacks and the retrain-free score of a final model; never reads Retrain."""

    def __init__(self, prepared: Prepared, cache: ArtifactCache, references: int = 2,
                 attacker_steps: int = ATTACKER_STEPS):
        self.prepared, self.attacker_steps = prepared, attacker_steps
        self.split = heldout_split(prepared)
        data, device = prepared.data, prepared.device
        self.references = reference_models(prepared, self.split, cache, references) if references else []
        rng = np.random.Generator(np.random.PCG64([prepared.config.seed, 13]))
        # RMIA's population: the selection set where the split keeps one (a study's objective then
        # never reads the test set), else the test set
        splits = prepared.splits
        if len(splits.select):
            self.population_x, self.population_y, pool = data.train_x, data.train_y, splits.select
        else:
            self.population_x, self.population_y, pool = data.test_x, data.test_y, splits.test
        self.population = np.sort(rng.choice(pool, size=min(RMIA_POPULATION, len(pool)), replace=False))
        eval_sets = {"forget": self.split.forget_eval, "nonmember": self.split.nonmember_eval}
        self._ref_probs = {name: np.stack([_true_prob(r, data.train_x[idx], data.train_y[idx], device)
                                           for r in self.references]) if self.references else None
                           for name, idx in eval_sets.items()}
        self._ref_pop = (np.stack([_true_prob(r, self.population_x[self.population], self.population_y[self.population],
                                             device)
                                   for r in self.references]) if self.references else None)
        self.original_accuracy = self._accuracies(prepared.original)
        # RF-JSD's reference: the original's posteriors on every held-out image (the forgotten class's too)
        held_out = np.concatenate([splits.select, splits.select_forget] if len(splits.select)
                                  else [splits.test, splits.test_forget])
        x_source, y_source = (data.train_x, data.train_y) if len(splits.select) else (data.test_x, data.test_y)
        self.held_out_labels = y_source[held_out]
        self.original_held_out = torch.softmax(predict_logits(prepared.original, x_source[held_out], device=device), 1)

    def _accuracies(self, model, forget_logits: torch.Tensor | None = None) -> dict[str, float]:
        """Accuracies on the sets the score reads (`forget_logits`: the forget set's, when already predicted)."""
        data, device, s = self.prepared.data, self.prepared.device, self.prepared.splits

        def acc(idx, logits=None):
            logits = predict_logits(model, data.train_x[idx], device=device) if logits is None else logits
            return 100.0 * float((logits.argmax(1) == data.train_y[idx]).float().mean())

        return {"retain": acc(s.retain), "forget": acc(s.forget, forget_logits),
                "nonmember": acc(self.split.nonmember_eval),
                "val": acc(self.split.val_remaining)}

    def __call__(self, model) -> dict[str, float]:
        data, device = self.prepared.data, self.prepared.device
        results: dict[str, float] = {}
        for key, value in samia_heldout(model, self.prepared, self.split, self.attacker_steps).items():
            results[f"heldout/samia_{key}"] = value
        aucs = [results["heldout/samia_auc"]]
        if self.references:
            target = {name: _true_prob(model, data.train_x[idx], data.train_y[idx], device)
                      for name, idx in (("forget", self.split.forget_eval), ("nonmember", self.split.nonmember_eval))}
            target_pop = _true_prob(model, self.population_x[self.population], self.population_y[self.population],
                                    device)
            scores = {name: rmia_scores(target[name], self._ref_probs[name], target_pop, self._ref_pop)
                      for name in target}
            for key, value in roc_summary(scores["forget"], scores["nonmember"], fprs=(0.01,)).items():
                results[f"heldout/rmia_{key}"] = value
            aucs.append(results["heldout/rmia_auc"])
        forget = self.prepared.splits.forget
        forget_logits = predict_logits(model, data.train_x[forget], device=device)  # for RF-JSD and the forget gap
        results["heldout/rf_jsd"] = rf_jsd(torch.softmax(forget_logits, 1), data.train_y[forget],
                                           self.original_held_out, self.held_out_labels)
        accuracy = self._accuracies(model, forget_logits)
        components = {
            "forget_gap": abs(accuracy["forget"] - accuracy["nonmember"]),
            "attack_gap": float(np.mean([abs(auc - 0.5) * 200.0 for auc in aucs])),
            "retain_drop": max(0.0, self.original_accuracy["retain"] - accuracy["retain"]),
            "val_drop": max(0.0, self.original_accuracy["val"] - accuracy["val"]),
        }
        results.update({f"retrain_free/{k}": v for k, v in components.items()})
        results["retrain_free_score"] = float(np.mean(list(components.values())))
        return results
