"""Discriminative Adversarial Unlearning: the defender plays a min-max game against a
membership-inference attacker, keeps cross-entropy on the retain set, and (optionally) pulls
forget-set features toward validation-set features with a Barlow Twins term.

It follows SPEC.md (the authors' public code) where that and the paper differ: the attacker is
pre-trained once per original and shared as a cached artifact, its time reported apart; it reads
raw logits; both networks stay in train mode; class-wise forgetting switches after `stop_iter`
iterations (the attacker's forwards after it are kept for batch-norm only, `bn_after_switch`);
defaults per setting are the reference's commands (`REFERENCE_COMMANDS`), the pre-training
length its min(epochs x batches, 1000) rule. The point-by-point reading, the cost of the noisy
copies and the project's additions (`repair_decay`, `bt_projector`, `detach_validation`,
`attacker_steps`) are in docs/dau-design.md.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from study.core.cache import state_digest
from study.core.errors import UserError
from study.core.progress import Progress
from study.core.train import check_finite
from study.methods.base import (
    BatchStream,
    Hyperparam,
    UnlearningMethod,
    sgd,
    shuffled_batches,
)
from study.methods.dau.attacker import (
    AttackerSettings,
    AttackInputs,
    PretrainedAttacker,
    SelfAttentionAttacker,
    attack_inputs,
    batch_norm_forwards,
    membership_accuracy,
    pretrain_attacker,
)
from study.methods.dau.losses import (
    attacker_loss,
    barlow_twins_loss,
    defender_adversarial_loss,
)
from study.methods.dau.store import AttackerStore, attacker_variants

CLASSWISE_STOP_ITER = 30  # the paper's class-wise switch point (SPEC.md)
RANDOM_LR, CLASSWISE_LR, CLASSWISE_STOP_LR = 0.01, 0.02, 0.01  # the reference's dense CIFAR-10 commands
# The reference's commands, by (CIFAR-100?, class-wise?, sparse?): lr, epochs, stop_iter, stop_unlearn_lr
# (None: no switch; the rate is kept). From the authors' random_script.sh and classwise_script.sh.
REFERENCE_COMMANDS = {
    (False, False, False): (RANDOM_LR, 3, None, None),
    (True, False, False): (0.01, 5, None, None),
    (False, False, True): (0.03, 3, None, None),
    (True, False, True): (0.01, 5, None, None),
    (False, True, False): (CLASSWISE_LR, 3, CLASSWISE_STOP_ITER, CLASSWISE_STOP_LR),
    (True, True, False): (0.02, 5, 30, 0.02),
    (False, True, True): (0.02, 3, 20, 0.01),
    (True, True, True): (0.02, 5, 20, 0.02),
}
PRETRAIN_EPOCHS, PRETRAIN_MAX_ITERS = 10, 1000  # the reference's pre-training loop: 10 epochs, stopped at 1,000
# The hyperparameters that select which pre-trained attacker a run loads (with the experiment seed)
ATTACKER_KEY_PARAMS = ("attacker_pretrain_iters", "attacker_pretrain_epochs", "pretrain_lr", "pretrain_batch_size",
                       "batch_size", "noise_copies", "use_softmax", "copies_per_forward")
SPACES = {("fmnist-proxy", "random"): "fmnist-random", ("fmnist-proxy", "class"): "fmnist-classwise",
          ("cifar10-proxy", "random"): "cifar10-random", ("cifar10-proxy", "class"): "cifar10-classwise",
          ("digits", "random"): "random", ("digits", "class"): "classwise"}  # DAU's space by preset and scheme


def reference_command(classwise: bool, dataset: str | None, sparsity: float) -> dict:
    """The reference's settings for a setting: CIFAR-100 has its own commands, every other dataset
    takes CIFAR-10's; any pruned original (sparsity > 0) the 95%-sparse ones."""
    lr, epochs, stop_iter, stop_lr = REFERENCE_COMMANDS[(dataset == "cifar100", classwise, sparsity > 0)]
    return {"lr": lr, "epochs": epochs, "stop_iter": stop_iter, "stop_unlearn_lr": stop_lr if stop_lr else lr}


def pretrain_length(epochs: int, retain_size: int, batch_size: int) -> int:
    """The reference's pre-training length: `epochs` passes over the retain batches, at most 1,000."""
    return min(epochs * math.ceil(retain_size / batch_size), PRETRAIN_MAX_ITERS)


class BarlowProjector(nn.Module):
    """Optional projector over the defender's features, as commonly used in SSL (paper Sec. 3.4)."""

    def __init__(self, width: int, out_width: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, out_width), nn.BatchNorm1d(out_width), nn.ReLU(),
                                 nn.Linear(out_width, out_width))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No gradients into `module`'s parameters (the defender's step must not train the attacker)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class DAU(UnlearningMethod):
    name = "dau"
    label = "DAU"
    summary = "Discriminative Adversarial Unlearning: min-max against a SAMIA attacker + Barlow Twins"
    hyperparams = (
        Hyperparam("lr", float, None, 1e-6, 1.0, optional=True,
                   help=f"defender learning rate, SGD momentum 0.9 (none = the reference command's: {RANDOM_LR} random, "
                        f"{CLASSWISE_LR} class-wise; 0.03 random on a sparse original)"),
        Hyperparam("epochs", int, None, 1, 100, optional=True,
                   help="passes over the retain set (none = the reference command's: 3, or 5 on CIFAR-100)"),
        Hyperparam("batch_size", int, 256, 2, 4096, help="retain, forget and validation batch size"),
        Hyperparam("alpha", float, 0.9, 0.0, None, help="weight of the adversarial term"),
        Hyperparam("gamma", float, 0.001, 0.0, None, help="weight of the Barlow Twins term"),
        Hyperparam("beta", float, 1.0, 0.0, None, help="weight of the whole unlearning part (0 after stop_iter)"),
        Hyperparam("regularizer", bool, True, help="use the Barlow Twins term (false = the paper's 'No BT' ablation)"),
        Hyperparam("bt_lambda_offdiag", float, 5e-3, 0.0, None, help="Barlow Twins off-diagonal weight"),
        Hyperparam("bt_projector", bool, False, help="apply Barlow Twins on a projector head instead of raw features"),
        Hyperparam("non_saturating", bool, True, help="defender's adversarial loss: swapped-label CE (true) or -CE"),
        Hyperparam("attacker_lr", float, 1e-3, 1e-7, 1.0, help="attacker Adam learning rate during unlearning"),
        Hyperparam("attacker_pretrain_iters", int, None, 0, 100000, optional=True,
                   help="pre-training iterations of the shared attacker, a cached artifact per original model "
                        f"(none = the reference's min(attacker_pretrain_epochs x retain batches, {PRETRAIN_MAX_ITERS}))"),
        Hyperparam("attacker_pretrain_epochs", int, PRETRAIN_EPOCHS, 0, 1000,
                   help="passes over the retain batches the attacker is pre-trained for when attacker_pretrain_iters "
                        f"is none (the reference's loop, stopped at {PRETRAIN_MAX_ITERS} iterations)"),
        Hyperparam("pretrain_lr", float, 1e-3, 1e-7, 1.0, help="attacker Adam learning rate during pre-training"),
        Hyperparam("pretrain_batch_size", int, None, 2, 4096, optional=True,
                   help="members and non-members per pre-training iteration (none = batch_size)"),
        Hyperparam("noise_copies", int, 10, 1, 100, help="noisy input copies for the sensitivity feature"),
        Hyperparam("copies_per_forward", int, 1, 1, 101, optional=True,
                   help="batches (clean or noisy) per defender forward: 1 = the clean batch, then each noisy copy, "
                        "alone (none = all in one forward)"),
        Hyperparam("use_softmax", bool, False, help="feed softmax outputs (SAMIA) instead of raw logits (DAU code)"),
        Hyperparam("stop_iter", int, None, 0, None, optional=True,
                   help="after this many defender iterations set beta=0 (none = the reference command's: "
                        f"{CLASSWISE_STOP_ITER}, or 20 on a sparse original, for class-wise forgetting if "
                        "classwise_switch, else never)"),
        Hyperparam("classwise_switch", bool, True,
                   help="class-wise forgetting with stop_iter unset switches after the reference command's "
                        f"{CLASSWISE_STOP_ITER} (sparse: 20) iterations (the paper's protocol); false = never switch "
                        "unless stop_iter is set"),
        Hyperparam("stop_unlearn_lr", float, None, 1e-7, 1.0, optional=True,
                   help=f"defender learning rate after the switch (none = the reference command's: "
                        f"{CLASSWISE_STOP_LR} class-wise, 0.02 on CIFAR-100; else keep lr)"),
        Hyperparam("repair_decay", bool, False,
                   help="after the switch, decay the defender learning rate by a cosine to 0 over the remaining "
                        "iterations (not in SPEC.md; false = constant, as SPEC.md)"),
        Hyperparam("bn_after_switch", bool, True,
                   help="after the class-wise switch, still forward the forget and validation batches (clean, then "
                        "the noisy copies as one batch; no gradients) before the retain batch, so batch-norm statistics "
                        "move as in the reference's loop (false = skip them, as SPEC.md allows)"),
        Hyperparam("detach_validation", bool, False,
                   help="the defender's adversarial and Barlow Twins terms read the validation outputs detached, so "
                        "only the forget outputs move (an ablation; false = the reference)"),
        Hyperparam("attacker_steps", int, 1, 1, 100,
                   help="attacker updates per defender step on the same detached batch (an ablation; 1 = the "
                        "reference)"),
    )

    shared_artifact_keys = ("attacker_pretrain_seconds",)
    attacker_key_params = ATTACKER_KEY_PARAMS

    @classmethod
    def default_space(cls, preset: str, scheme: str) -> str:
        if (preset, scheme) not in SPACES:
            raise UserError(f"no DAU space for preset {preset} and forget scheme {scheme}; name one for dau")
        return SPACES[(preset, scheme)]

    @classmethod
    def documented_defaults(cls, scheme: str, dataset: str | None = None, sparsity: float = 0.0) -> dict:
        """The defaults a run resolves in a setting (the reference's command for it); the
        pre-training length stays the rule (`attacker_pretrain_epochs` 10)."""
        return {**super().documented_defaults(scheme, dataset, sparsity),
                **reference_command(scheme == "class", dataset, sparsity)}

    @property
    def num_epochs(self) -> int:
        """`epochs`, or the reference command's once `setup` has seen the setting (3 before)."""
        if self.params["epochs"] is not None:
            return int(self.params["epochs"])
        return int(self.__dict__.get("command", {}).get("epochs", 3))

    @classmethod
    def prebuild(cls, prepared, options: dict[str, list | None], log) -> None:
        """Pre-train (or find) every attacker snapshot the search's runs will load, one pass per setting."""
        store = AttackerStore(prepared.shared_context(log))
        retain_size = len(prepared.splits.retain)
        for settings, lengths in attacker_variants(cls, options, prepared.config.seed, retain_size, log):
            store.ensure(settings, lengths)

    def pretrain_iters(self, retain_size: int) -> int:
        """The pre-training length: `attacker_pretrain_iters`, or the reference's rule."""
        if self.attacker_pretrain_iters is not None:
            return self.attacker_pretrain_iters
        return pretrain_length(self.attacker_pretrain_epochs, retain_size, self.batch_size)

    def attacker_settings(self, seed: int, retain_size: int) -> AttackerSettings:
        """The pre-trained attacker this configuration loads (the artifact's cache key)."""
        return AttackerSettings(iters=self.pretrain_iters(retain_size), lr=self.pretrain_lr,
                                noise_copies=self.noise_copies, use_softmax=self.use_softmax,
                                batch_size=self.pretrain_batch_size or self.batch_size, seed=seed,
                                copies_per_forward=self.copies_per_forward)

    def _load_attacker(self, model, data) -> PretrainedAttacker:
        """From the artifact cache when the experiment provides one; else pre-trained here, on a copy."""
        settings = self.attacker_settings(data.seed, len(data.retain_x))
        if data.shared is not None:
            return AttackerStore(data.shared).get(settings)
        members = (torch.cat([data.retain_x, data.forget_x]), torch.cat([data.retain_y, data.forget_y]))
        return pretrain_attacker(model, members, (data.val_x, data.val_y), data.num_classes, settings,
                                 [settings.iters], data.pixel_std, data.device)[settings.iters]

    def setup(self, model, data) -> None:
        super().setup(model, data)
        began = time.perf_counter()
        pretrained = self._load_attacker(self.model, data)
        self.artifact_seconds = time.perf_counter() - began
        self.pretrain_logs = {"attacker_pretrain_seconds": pretrained.seconds, **pretrained.stats}
        self.attacker_digest = state_digest(pretrained.state)
        torch.manual_seed(data.seed)  # the attacker's dropout during unlearning
        self.attacker = SelfAttentionAttacker(data.num_classes).to(data.device)
        self.attacker.load_state_dict(pretrained.state)
        self.attacker_optimizer = torch.optim.Adam(self.attacker.parameters(), lr=self.attacker_lr)
        self.projector = None
        trainable = list(model.parameters())
        if self.regularizer and self.bt_projector:
            self.projector = BarlowProjector(model.head.in_features).to(data.device)
            trainable += list(self.projector.parameters())
        self.command = reference_command(data.classwise, data.dataset, data.sparsity)
        self.defender_lr = self.lr if self.lr is not None else self.command["lr"]
        self.optimizer = sgd(trainable, self.defender_lr)
        # The reference converts forget and validation sets to test transforms for random forgetting
        # only: class-wise, their batches are augmented like the retain set's (CIFAR's crop and flip).
        augmentation = data.augmentation if data.classwise else "none"
        self.forget_stream = BatchStream(data.forget_x, data.forget_y, self.batch_size, self.generator, data.device,
                                         augmentation)
        self.val_stream = BatchStream(data.val_x, data.val_y, self.batch_size, self.generator, data.device,
                                      augmentation)
        self.defender_iterations = 0
        self.switch_at = self.stop_iter
        if self.switch_at is None and self.classwise_switch and data.classwise:
            self.switch_at = self.command["stop_iter"]
        self.repair_lr = self.stop_unlearn_lr
        if self.repair_lr is None:
            self.repair_lr = self.command["stop_unlearn_lr"] if data.classwise else self.defender_lr

    def shared_artifact_seconds(self) -> dict[str, float]:
        return {"attacker_pretrain_seconds": self.pretrain_logs["attacker_pretrain_seconds"]}

    def shared_artifact_digests(self) -> dict[str, str]:
        return {"attacker_digest": self.attacker_digest}

    def _inputs(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> AttackInputs:
        return attack_inputs(self.model, x, y, self.data.num_classes, self.noise_copies, generator or self.generator,
                             self.use_softmax, self.data.pixel_std, self.copies_per_forward)

    def _paired_batches(self):
        (fx, fy), (vx, vy) = self.forget_stream.next(), self.val_stream.next()
        size = min(len(fx), len(vx))  # Barlow Twins pairs sample n with sample n
        return fx[:size], fy[:size], vx[:size], vy[:size]

    def _switched_off(self) -> bool:
        return self.switch_at is not None and self.defender_iterations >= self.switch_at

    def _set_repair_lr(self) -> None:
        """The defender's learning rate for the repair iterations after the switch."""
        if self.repair_decay:
            per_epoch = math.ceil(len(self.data.retain_x) / self.batch_size)
            remaining = max(1, self.num_epochs * per_epoch - self.switch_at)
            progress = min(1.0, (self.defender_iterations - self.switch_at) / remaining)
            lr = 0.5 * self.repair_lr * (1.0 + math.cos(math.pi * progress))
        elif self.defender_iterations == self.switch_at:
            lr = self.repair_lr
        else:
            return
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def attacker_step(self, forget_in: AttackInputs, val_in: AttackInputs) -> dict[str, float]:
        """One attacker update on the detached joint batch cat[forget, validation]."""
        self.attacker.train()
        logits = self.attacker(*AttackInputs.joint(forget_in.detached(), val_in.detached()))
        n = len(forget_in.outputs)
        loss = attacker_loss(logits[:n], logits[n:])
        self.attacker_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.attacker_optimizer.step()
        return {"attacker_loss": loss.item(), "attacker_train_acc": 100.0 * membership_accuracy(logits.detach(), n)}

    def unlearning_loss(self, forget_in: AttackInputs, val_in: AttackInputs) -> tuple[torch.Tensor, dict]:
        """alpha * L_adv (+ gamma * BT) on the same graph-connected outputs the attacker just trained on."""
        n = len(forget_in.outputs)
        if self.detach_validation:
            val_in = val_in.detached()
        with frozen(self.attacker):
            logits = self.attacker(*AttackInputs.joint(forget_in, val_in))
        adversarial = defender_adversarial_loss(logits[:n], logits[n:], self.non_saturating)
        loss, logs = self.alpha * adversarial, {"adv_loss": adversarial.item()}
        if self.regularizer and self.gamma > 0:
            f_forget, f_val = forget_in.features, val_in.features
            if self.projector is not None:
                self.projector.train()
                projected = self.projector(torch.cat([f_forget, f_val]))
                f_forget, f_val = projected[:n], projected[n:]
            bt = barlow_twins_loss(f_forget, f_val, self.bt_lambda_offdiag)
            loss, logs["bt_loss"] = loss + self.gamma * bt, bt.item()
        return loss, logs

    def iteration(self, rx: torch.Tensor, ry: torch.Tensor) -> dict[str, float]:
        """One retain batch: (before the switch) one defender pass over a forget and a validation
        batch, the attacker's step on it, then the defender's step."""
        self.model.train()
        if self._switched_off() and self.bn_after_switch:
            fx, _, vx, _ = self._paired_batches()  # only the batch-norm running statistics change
            for x in (fx, vx):
                batch_norm_forwards(self.model, x, self.noise_copies, self.generator, self.data.pixel_std)
        ce = nn.functional.cross_entropy(self.model(rx), ry)
        total, logs = ce, {"ce_loss": ce.item()}
        if self._switched_off():
            self._set_repair_lr()
        elif self.beta > 0:
            fx, fy, vx, vy = self._paired_batches()
            forget_in, val_in = self._inputs(fx, fy), self._inputs(vx, vy)
            for _ in range(self.attacker_steps):
                logs.update(self.attacker_step(forget_in, val_in))
            unlearning, unlearning_logs = self.unlearning_loss(forget_in, val_in)
            logs.update(unlearning_logs)
            total = total + self.beta * unlearning
        check_finite(total, f"dau defender step {self.defender_iterations + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.defender_iterations += 1
        logs["defender_loss"] = total.item()
        return logs

    def run_epoch(self, epoch: int) -> dict[str, float]:
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        batches = math.ceil(len(self.data.retain_x) / self.batch_size)
        with Progress(batches, f"dau epoch {epoch + 1}/{self.num_epochs}", "batch") as progress:
            for rx, ry in shuffled_batches(self.data.retain_x, self.data.retain_y, self.batch_size, self.generator,
                                           self.data.augmentation, self.data.device):
                logs = self.iteration(rx, ry)
                for key, value in logs.items():
                    sums[key] = sums.get(key, 0.0) + value
                    counts[key] = counts.get(key, 0) + 1
                progress.update(defender_loss=logs["defender_loss"])
        return {**self.pretrain_logs, **{key: value / counts[key] for key, value in sums.items()}}

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.update(attacker=self.attacker.state_dict(), attacker_optimizer=self.attacker_optimizer.state_dict(),
                     projector=self.projector.state_dict() if self.projector is not None else None,
                     defender_iterations=self.defender_iterations)
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.attacker.load_state_dict(state["attacker"])
        self.attacker_optimizer.load_state_dict(state["attacker_optimizer"])
        if self.projector is not None and state.get("projector") is not None:
            self.projector.load_state_dict(state["projector"])
        self.defender_iterations = state["defender_iterations"]
