"""Mixed precision: bf16 autocast where the device runs it natively, fp32 everywhere else.

`--precision bf16` runs the defender's forward (`Defender.forward`: training, unlearning and evaluation
alike) under `torch.autocast(dtype=bfloat16)` and hands back fp32 logits: convolutions and matrix
products take bf16 inputs; weights, gradients, optimiser state, losses and backward passes stay fp32.
On an AMD EPYC with AVX-512 BF16 (no AMX) the proxy's training and FT ran 1.4-1.5x faster and DAU
not at all (`python bench/precision.py`, docs/precision-fmnist); on a CPU without native bf16 it is
emulated and slower than fp32, so it is refused there, with one line saying why, and the run goes
on in fp32. `auto` picks bf16 only where `AUTO_PICKS_BF16` says its metrics were measured to stay
within fp32's own seed-to-seed spread (docs/RESULTS.md, "Does bf16 change the science?").

The resolved precision (never `auto`) is what records and cache keys carry: a model trained in bf16
is a different artifact from one trained in fp32.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterator

import torch

from study.core.errors import UserError
from study.core.versions import cpuinfo_field

PRECISIONS = ("fp32", "bf16", "auto")
AUTO_PICKS_BF16 = False  # bench/precision.py, 2026-12-05: three rows off fp32's seed spread on one metric each
NATIVE_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_flags() -> frozenset[str]:
    return frozenset((cpuinfo_field("flags") or "").split())


def bf16_support(device: str) -> tuple[bool, str]:
    """Whether `device` runs bf16 natively, and the reason in words."""
    if device.startswith("cuda"):
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{torch.cuda.get_device_name(torch.device(device))} runs bf16"
        return False, "this GPU has no native bf16 (compute capability below 8.0)"
    native = [flag for flag in NATIVE_BF16_CPU_FLAGS if flag in cpu_flags()]
    if native:
        return True, f"this CPU has {' and '.join(native)}"
    return False, "this CPU has neither AVX-512 BF16 nor AMX, so bf16 would be emulated and slower than fp32"


def resolve_precision(requested: str, device: str, log: Callable[[str], None] | None = None) -> str:
    """`fp32` or `bf16`: what a run on `device` uses when `requested` was asked for."""
    if requested not in PRECISIONS:
        raise UserError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return "fp32"
    supported, why = bf16_support(device)
    if requested == "auto" and not AUTO_PICKS_BF16:
        if log:
            log("precision auto: fp32 (bf16 is not yet measured to stay within fp32's seed noise here)")
        return "fp32"
    if not supported:
        if log:
            log(f"precision {requested}: fp32, because {why}")
        return "fp32"
    return "bf16"


def set_model_precision(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """Run `model`'s forward (a `Defender`'s) under bf16 autocast, or in fp32; returns the model."""
    model.autocast_dtype = torch.bfloat16 if precision == "bf16" else None
    return model


@contextlib.contextmanager
def model_precision(model: torch.nn.Module, precision: str) -> Iterator[None]:
    """`model` at `precision` inside the block, as it was after it (a one-shot method's fp32 statistics)."""
    before = getattr(model, "autocast_dtype", None)
    set_model_precision(model, precision)
    try:
        yield
    finally:
        model.autocast_dtype = before


def full_precision(device: str) -> contextlib.AbstractContextManager:
    """fp32 inside a bf16 region (DAU's sensitivity forwards, whose 1e-3 input noise bf16 would round away)."""
    return torch.autocast(device_type="cuda" if str(device).startswith("cuda") else "cpu", enabled=False)
