"""The versions a result was measured with, recorded beside it (run folders, reports, benchmarks)."""
from __future__ import annotations

import platform


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("torch", "ray", "optuna", "scikit-learn", "pandas", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found
