"""The membership-inference attacker DAU plays against (SAMIA, Yuan & Zhang 2022).

Per sample it sees three length-C vectors: the defender's output (softmax by default, a
flag switches to raw logits as DAU's code does), its sensitivity to input noise, and the
one-hot label. The 3C inputs are batch-normalised, regrouped into C tokens (p_c, s_c, y_c),
embedded to width 64, passed through a 3-layer transformer encoder and read out to two
membership logits. Sensitivity and output keep their autograd graph, so the defender is
trained *through* the attacker (SPEC.md: unlike SAMIA's own code).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SENSITIVITY_SIGMA = 1e-3  # SAMIA's finite-difference step on the normalised input
TOKEN_WIDTH = 64
FEEDFORWARD_WIDTH = 128
LAYERS, HEADS, DROPOUT = 3, 4, 0.2


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
        tokens = raw.view(-1, 3, self.num_classes).transpose(1, 2)  # token c = (p_c, s_c, y_c)
        encoded = self.encoder(self.embed(tokens))
        return self.readout(encoded.flatten(1))


def attack_inputs(defender: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, noise_copies: int,
                  generator: torch.Generator, use_softmax: bool = True, sigma: float = SENSITIVITY_SIGMA,
                  with_features: bool = False):
    """(outputs, sensitivity, onehot[, features]) of the defender on batch x, in one forward pass of
    (noise_copies + 1) x batch: sensitivity = mean_k |out(x + sigma u_k) - out(x)| / sigma."""
    batch = x.shape[0]
    noise = torch.randn((noise_copies, *x.shape), generator=generator).to(x.device) * sigma
    stacked = torch.cat([x, (x.unsqueeze(0) + noise).flatten(0, 1)])
    logits, features = defender.forward_with_features(stacked)
    out = torch.softmax(logits, dim=1) if use_softmax else logits
    clean, noisy = out[:batch], out[batch:].view(noise_copies, batch, -1)
    sensitivity = (noisy - clean.unsqueeze(0)).abs().mean(dim=0) / sigma
    onehot = F.one_hot(y, num_classes).float()
    if with_features:
        return clean, sensitivity, onehot, features[:batch]
    return clean, sensitivity, onehot
