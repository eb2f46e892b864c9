"""Which processes a test started are still running: each is found by a tag in its environment.

Ray's helper processes (raylet, GCS, monitors, workers) outlive the driver that started them when
it ends badly, and are re-parented away from it, so they are found by what every descendant
inherits: an environment variable set before the command starts.
"""
from __future__ import annotations

import os
import time
import uuid

TAG_VARIABLE = "DAU_TEST_PROCESS_TAG"


def new_tag() -> str:
    return uuid.uuid4().hex[:16]


def tagged_processes(tag: str) -> dict[int, str]:
    """pid -> command line of every running process (this one excepted) whose environment holds `tag`."""
    needle = f"{TAG_VARIABLE}={tag}".encode()
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if needle not in handle.read().split(b"\0"):
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                found[int(pid)] = handle.read().replace(b"\0", b" ").decode(errors="replace")[:160]
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def survivors(tag: str, grace_s: float = 20.0, ignore: str | None = None) -> dict[int, str]:
    """The tagged processes still running after `grace_s` seconds (Ray's exit is not instant), less
    those whose command line contains `ignore`."""
    def left_now() -> dict[int, str]:
        return {pid: line for pid, line in tagged_processes(tag).items() if not (ignore and ignore in line)}

    deadline = time.time() + grace_s
    left = left_now()
    while left and time.time() < deadline:
        time.sleep(0.5)
        left = left_now()
    return left
