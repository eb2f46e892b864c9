"""The membership-inference attacker DAU plays against (SAMIA, Yuan & Zhang 2022), its inputs,
and its pre-training.

Per sample the attacker sees three length-C vectors: the defender's output (raw logits by
default, as DAU's public code; softmax as an option), its sensitivity to input noise, and the
one-hot label. The 3C inputs are batch-normalised, regrouped into C tokens (o_c, s_c, y_c),
embedded to width 64, passed through a 3-layer transformer encoder and read out to two
membership logits. Output and sensitivity keep their autograd graph, so the defender is
trained *through* the attacker (SPEC.md: unlike SAMIA's own code).

Pre-training (SPEC.md) happens once per original model, on batches of the whole training set
(members) against validation batches (non-members), with the defender frozen: it runs on a
private copy, so the original's weights and batch-norm statistics are untouched. One pass
yields snapshots at several lengths, so a study that searches the length pays for one pass.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from study.core.precision import full_precision
from study.core.progress import Progress
from study.core.pruning import copy_model
from study.methods.base import BatchStream
from study.methods.dau.losses import MEMBER, NON_MEMBER, attacker_loss

SENSITIVITY_SIGMA = 1e-3  # noise std on the un-normalised [0, 1] image, as the reference code
TOKEN_WIDTH = 64
FEEDFORWARD_WIDTH = 128
LAYERS, HEADS, DROPOUT = 3, 4, 0.2
PRETRAIN_STATS_TAIL = 50  # pre-training loss/accuracy are reported over the last this many iterations


class SelfAttentionAttacker(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.input_norm = nn.BatchNorm1d(3 * num_classes)
        self.embed = nn.Sequential(nn.Linear(3, TOKEN_WIDTH), nn.GELU())
        layer = nn.TransformerEncoderLayer(TOKEN_WIDTH, HEADS, FEEDFORWARD_WIDTH, DROPOUT, activation="gelu",
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.readout = nn.Sequential(nn.Linear(num_classes * TOKEN_WIDTH, TOKEN_WIDTH), nn.ReLU(),
                                     nn.Linear(TOKEN_WIDTH, 2))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, outputs: torch.Tensor, sensitivity: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        raw = self.input_norm(torch.cat([outputs, sensitivity, onehot], dim=1))  # (B, 3C)
        tokens = raw.view(-1, 3, self.num_classes).transpose(1, 2)  # token c = (o_c, s_c, y_c)
        encoded = self.encoder(self.embed(tokens))
        return self.readout(encoded.flatten(1))


@dataclass
class AttackInputs:
    """What the attacker reads of one batch, plus the defender's features of the clean images."""

    outputs: torch.Tensor
    sensitivity: torch.Tensor
    onehot: torch.Tensor
    features: torch.Tensor

    def detached(self) -> "AttackInputs":
        return AttackInputs(self.outputs.detach(), self.sensitivity.detach(), self.onehot, self.features.detach())

    @staticmethod
    def joint(first: "AttackInputs", second: "AttackInputs") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The attacker's three inputs for cat[first, second], one batch as the reference feeds it."""
        return (torch.cat([first.outputs, second.outputs]), torch.cat([first.sensitivity, second.sensitivity]),
                torch.cat([first.onehot, second.onehot]))


def noise_scale(pixel_std: tuple[float, ...], sigma: float = SENSITIVITY_SIGMA) -> torch.Tensor:
    """Per-channel noise std on normalised inputs: sigma on the [0, 1] image is sigma / std after
    normalisation (the reference adds its noise before normalising)."""
    return (sigma / torch.tensor(pixel_std, dtype=torch.float32)).view(1, -1, 1, 1)


def noisy_copies(x: torch.Tensor, noise_copies: int, generator: torch.Generator,
                 pixel_std: tuple[float, ...] = (1.0,), sigma: float = SENSITIVITY_SIGMA) -> torch.Tensor:
    """The m copies of batch x under Gaussian noise of `sigma` on the [0, 1] pixel scale, stacked as
    one batch of m x B images (copy k is rows k*B .. (k+1)*B - 1)."""
    noise = torch.randn((noise_copies, *x.shape), generator=generator).to(x.device)
    noise = noise * noise_scale(pixel_std, sigma).to(x.device).unsqueeze(0)
    return (x.unsqueeze(0) + noise).flatten(0, 1)


def attack_inputs(defender: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, noise_copies: int,
                  generator: torch.Generator, use_softmax: bool = False, pixel_std: tuple[float, ...] = (1.0,),
                  copies_per_forward: int | None = None, sigma: float = SENSITIVITY_SIGMA) -> AttackInputs:
    """The attacker's inputs for batch x: outputs, sensitivity = mean_k |out(x + noise_k) - out(x)| / sigma,
    the one-hot label, and the clean images' penultimate features.

    These forwards run in fp32 whatever the experiment's precision: bf16 keeps 8 bits of mantissa, so
    an input moved by 1e-3 would round back to itself and the sensitivity would measure rounding.

    The clean batch and its noisy copies go through the defender in forwards of
    `copies_per_forward` batches each (None: all 1 + m in one forward). In train mode each forward
    normalises by its own batch statistics; the copies differ from the clean batch by noise of
    1e-3, so the statistics agree to within that noise, and smaller forwards run faster on CPU.
    """
    batch = x.shape[0]
    stacked = torch.cat([x, noisy_copies(x, noise_copies, generator, pixel_std, sigma)])
    rows = len(stacked) if copies_per_forward is None else copies_per_forward * batch
    with full_precision(x.device.type):  # under bf16 the 1e-3 noise would round away: these forwards stay fp32
        pieces = [defender.forward_with_features(stacked[start:start + rows])
                  for start in range(0, len(stacked), rows)]
    logits = torch.cat([p[0] for p in pieces])
    features = pieces[0][1][:batch]
    out = torch.softmax(logits, dim=1) if use_softmax else logits
    clean, noisy = out[:batch], out[batch:].view(noise_copies, batch, -1)
    sensitivity = (noisy - clean.unsqueeze(0)).abs().mean(dim=0) / sigma
    return AttackInputs(clean, sensitivity, F.one_hot(y, num_classes).float(), features)


@torch.no_grad()
def batch_norm_forwards(defender: nn.Module, x: torch.Tensor, noise_copies: int, generator: torch.Generator,
                        pixel_std: tuple[float, ...] = (1.0,), sigma: float = SENSITIVITY_SIGMA) -> None:
    """The reference's two forwards of batch x without gradients: the clean batch, then its m noisy
    copies as one batch. In train mode each forward moves the batch-norm running statistics once
    (momentum 0.1), so after DAU's class-wise switch these keep the forget batches' weight in them
    what it is in the reference's loop (2 forwards per batch, not the 1 + m of `attack_inputs`)."""
    with full_precision(x.device.type):
        defender(x)
        defender(noisy_copies(x, noise_copies, generator, pixel_std, sigma))


def membership_accuracy(joint_logits: torch.Tensor, members: int) -> float:
    """Share of a joint batch (members first) the attacker labels correctly."""
    predicted = joint_logits.argmax(1)
    return float(((predicted[:members] == MEMBER).sum() + (predicted[members:] == NON_MEMBER).sum()) / len(joint_logits))


@dataclass(frozen=True)
class AttackerSettings:
    """Everything that changes a pre-trained attacker, besides the original model and its data:
    the cache key of the artifact (with the original's key)."""

    iters: int
    lr: float = 1e-3
    noise_copies: int = 10
    use_softmax: bool = False
    batch_size: int = 256
    seed: int = 0
    copies_per_forward: int | None = 1
    sigma: float = SENSITIVITY_SIGMA

    def key(self) -> dict:
        return asdict(self)


@dataclass
class PretrainedAttacker:
    """An attacker's weights after `iters` pre-training iterations, the seconds they took, and
    its loss and accuracy over the last iterations (on its own training batches)."""

    iters: int
    state: dict
    seconds: float
    stats: dict[str, float] = field(default_factory=dict)


def pretrain_attacker(defender: nn.Module, members: tuple[torch.Tensor, torch.Tensor],
                      non_members: tuple[torch.Tensor, torch.Tensor], num_classes: int, settings: AttackerSettings,
                      lengths: Iterable[int], pixel_std: tuple[float, ...] = (1.0,),
                      device: str = "cpu", desc: str | None = None) -> dict[int, PretrainedAttacker]:
    """Train a fresh attacker for max(lengths) iterations against a frozen copy of `defender` and
    return a snapshot at every listed length (0 = the untrained attacker).

    The copy runs in train mode, as the reference's pre-training process does; `defender` itself
    is never touched. Torch's global generator (attacker initialisation, dropout) is seeded from
    `settings.seed` inside a forked RNG state, so the caller's random stream is unchanged and a
    snapshot at n iterations equals an n-iteration pass with the same settings. With `desc`, progress
    is shown per iteration.
    """
    wanted = sorted(set(int(n) for n in lengths))
    if not wanted or wanted[0] < 0:
        raise ValueError(f"pre-training lengths must be 0 or more, got {wanted}")
    frozen = copy_model(defender).to(device).train()
    for parameter in frozen.parameters():
        parameter.requires_grad_(False)
    generator = torch.Generator().manual_seed(settings.seed)
    batch = min(settings.batch_size, len(members[0]), len(non_members[0]))  # balanced joint batches
    member_batches = BatchStream(*members, batch, generator, device)
    val_batches = BatchStream(*non_members, batch, generator, device)
    snapshots: dict[int, PretrainedAttacker] = {}
    devices = [torch.device(device).index or 0] if str(device).startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(settings.seed)
        attacker = SelfAttentionAttacker(num_classes).to(device).train()
        optimizer = torch.optim.Adam(attacker.parameters(), lr=settings.lr)
        history: list[tuple[float, float]] = []
        progress = Progress(wanted[-1], desc, "it") if desc else None
        began = time.perf_counter()
        for iteration in range(wanted[-1] + 1):
            if iteration in wanted:
                tail = history[-PRETRAIN_STATS_TAIL:]
                stats = ({"attacker_pretrain_loss": sum(l for l, _ in tail) / len(tail),
                          "attacker_pretrain_acc": 100.0 * sum(a for _, a in tail) / len(tail)} if tail else {})
                snapshots[iteration] = PretrainedAttacker(iteration, copy.deepcopy(attacker.state_dict()),
                                                          time.perf_counter() - began, stats)
            if iteration == wanted[-1]:
                break
            (mx, my), (vx, vy) = member_batches.next(), val_batches.next()
            with torch.no_grad():
                member_in = attack_inputs(frozen, mx, my, num_classes, settings.noise_copies,
                                          generator, settings.use_softmax, pixel_std, settings.copies_per_forward,
                                          settings.sigma)
                val_in = attack_inputs(frozen, vx, vy, num_classes, settings.noise_copies,
                                       generator, settings.use_softmax, pixel_std, settings.copies_per_forward,
                                       settings.sigma)
            logits = attacker(*AttackInputs.joint(member_in, val_in))
            loss = attacker_loss(logits[:len(mx)], logits[len(mx):])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.append((loss.item(), membership_accuracy(logits, len(mx))))
            if progress is not None:
                progress.update(loss=history[-1][0])
        if progress is not None:
            progress.close()
    return snapshots
