"""The versions a result was measured with, recorded beside it (run folders, reports, benchmarks)."""
from __future__ import annotations

import platform
from pathlib import Path


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("torch", "ray", "optuna", "scikit-learn", "pandas", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def cpuinfo_field(name: str) -> str | None:
    """The first `name : value` of `/proc/cpuinfo` (e.g. "model name", "flags"); None where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == name:
                return value.strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The processor's model name, e.g. "AMD EPYC" or an Intel Xeon's; its architecture where
    `/proc/cpuinfo` does not say. Timings mean little without it."""
    return cpuinfo_field("model name") or platform.processor() or platform.machine()
