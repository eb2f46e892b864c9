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


def cpu_name() -> str:
    """The processor's model name (`/proc/cpuinfo`), e.g. "AMD EPYC" or an Intel Xeon's; its
    architecture where that file is not there. Timings mean little without it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
