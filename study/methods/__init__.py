"""The methods, by name: every `UnlearningMethod` subclass registers itself when defined.

Importing this package defines the project's own methods (the baselines, DAU, LoTUS, SFR-on, SSD,
Scissorhands, then ReGUn and AMUN: the order the tables follow); a method defined elsewhere (a plug-in, a test's toy method) joins the same registry when its module is
imported, and `method_class(name, module)` imports that module first (how a Ray worker finds it).
"""
from __future__ import annotations

import importlib

from study.core.errors import UserError
from study.methods import baselines, dau, lotus, scissorhands, sfron, ssd  # noqa: F401  (defining them registers them)
from study.methods import regun, amun  # noqa: F401, I001  (after the others: the tables' order)
from study.methods.base import REGISTRY, Hyperparam, UnlearningMethod

METHODS = REGISTRY  # name -> class, in definition order (the tables' order)


def method_class(name: str, module: str | None = None) -> type[UnlearningMethod]:
    if name not in METHODS and module:
        importlib.import_module(module)
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def build_method(name: str, params: dict | None = None, module: str | None = None) -> UnlearningMethod:
    """Construct and validate a method from its name and hyperparameters (errors before any training)."""
    return method_class(name, module)(**(params or {}))


def tunable_methods() -> list[str]:
    """Every method a study can tune: all but the reference rows (Original, Retrain)."""
    return [name for name, cls in METHODS.items() if cls.reference is None]


def shared_artifact_keys() -> tuple[str, ...]:
    """Every result key any method reports shared artifacts' seconds under."""
    return tuple(dict.fromkeys(key for cls in METHODS.values() for key in cls.shared_artifact_keys))


def sort_key(method: str) -> tuple[int, str]:
    """Tables' order: Retrain, Original, then the methods as defined (the paper's Table 1 order)."""
    order = ["retrain", "original", *(m for m in METHODS if m not in ("retrain", "original"))]
    return (order.index(method) if method in order else len(order), method)


def display_name(method: str) -> str:
    return METHODS[method].display_name() if method in METHODS else method


__all__ = ["METHODS", "Hyperparam", "UnlearningMethod", "build_method", "display_name", "method_class",
           "shared_artifact_keys", "sort_key", "tunable_methods"]
