"""Registry of unlearning methods: name -> class, all with the `UnlearningMethod` interface."""
from __future__ import annotations

from study.errors import UserError
from study.methods.base import Hyperparam, UnlearningMethod
from study.methods.baselines import (SCRUB, FineTune, FisherForgetting, GradientAscent, InfluenceUnlearning,
                                     L1Sparse, NegGradPlus, Original, RandomLabel, Retrain, SalUn)
from study.methods.dau import DAU

METHODS: dict[str, type[UnlearningMethod]] = {cls.name: cls for cls in (
    Original, Retrain, FineTune, GradientAscent, FisherForgetting, InfluenceUnlearning,
    NegGradPlus, RandomLabel, L1Sparse, SalUn, SCRUB, DAU)}


def method_class(name: str) -> type[UnlearningMethod]:
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def build_method(name: str, params: dict | None = None) -> UnlearningMethod:
    """Construct and validate a method from its name and hyperparameters (errors before any training)."""
    return method_class(name)(**(params or {}))


__all__ = ["METHODS", "Hyperparam", "UnlearningMethod", "build_method", "method_class"]
