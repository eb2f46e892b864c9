"""Starting or joining Ray for a study: a local instance, or an existing cluster with its token.

`ray start` protects a cluster with a token (kept in `~/.ray/auth_token`); a driver joining with
`ray.init(address=...)` presents it only in token mode, so `connect_ray` switches that mode on
when a token is at hand and turns a refusal into one error line that says what to set.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from study.core.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]  # put on every worker's PYTHONPATH
RAY_TOKEN_FILE = Path.home() / ".ray" / "auth_token"  # where `ray start` keeps the cluster's token
TOKEN_FIX = (f"set RAY_AUTH_TOKEN to the output of `ray get-auth-token` on its head node, or copy that token to "
             f"{RAY_TOKEN_FILE}")


def check_address_reachable(address: str) -> None:
    if address in ("auto", "local") or ":" not in address:
        return
    host_port = address[len("ray://"):] if address.startswith("ray://") else address
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except (OSError, ValueError) as err:
        raise UserError(f"cannot reach a Ray cluster at --address {address}: {err}") from None


def present_ray_token() -> bool:
    """Have the driver present the cluster's authentication token when one is where Ray keeps it.

    With RAY_AUTH_MODE unset, switch token mode on when RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or the
    default token file gives a token. An explicit RAY_AUTH_MODE is left as it is. Returns whether
    token mode is on.
    """
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None:
        return mode.lower() == "token"
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or RAY_TOKEN_FILE.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
        reload_ray_config()
        return True
    return False


def reload_ray_config() -> None:
    """Ray reads its configuration (the auth mode among it) when it is imported; read it again."""
    try:
        from ray._raylet import Config

        Config.initialize("")
    except (ImportError, AttributeError):
        pass


def connect_ray(address: str | None):
    """Start a local Ray (address None) or join the cluster at `address`; returns the `ray` module."""
    import ray

    if ray.is_initialized():  # a comparison runs its studies in one Ray session
        return ray
    runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                             os.environ.get("PYTHONPATH")]))}}
    if address:
        check_address_reachable(address)
        token_mode = present_ray_token()
        try:
            ray.init(address=address, runtime_env=runtime_env, logging_level=logging.ERROR, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.AuthenticationError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            # the address answered (checked above), so a refusal here is most often the token
            presented = "a token was presented, but" if token_mode else "no token was presented;"
            reason += f" ({presented} if the cluster asks for one, {TOKEN_FIX})"
            raise UserError(f"cannot join the Ray cluster at --address {address}: {reason}") from None
    else:
        ray.init(runtime_env=runtime_env, logging_level=logging.ERROR, include_dashboard=False, log_to_driver=False)
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[float]:
    """Ray connected for the block (started here, or joined at `address`) and shut down after it;
    yields the seconds the start took (a study records them)."""
    began = time.perf_counter()
    ray = connect_ray(address)
    try:
        yield time.perf_counter() - began
    finally:
        ray.shutdown()
