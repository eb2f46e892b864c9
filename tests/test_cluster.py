"""A study on a real Ray cluster, joined as a user would: `ray start --head` on the loopback
address, then `study.tune --address`. The installed Ray turns on token authentication for such
a cluster; the driver must present the token `ray start` keeps, with nothing set by hand."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from study.records.trials import load_study
from tests.studies import tune_cli, write_space

RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def _ray_processes_of(port: int) -> dict[int, str]:
    """Running processes that belong to the cluster on `port`: pid -> command line."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                line = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if re.search(rf"gcs_server_port={port}\b|\b\d{{1,3}}(?:\.\d{{1,3}}){{3}}:{port}\b", line):
            found[int(pid)] = line[:200]  # some (the monitors) name the machine's own address, not 127.0.0.1
    return found


def _stop_cluster(port: int) -> None:
    """Stop this test's cluster only. `ray stop` would end every Ray process on the machine, a
    user's running study included; the cluster's processes all name its port, and its workers
    exit with their raylet."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _ray_processes_of(port):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 15
        while _ray_processes_of(port) and time.time() < deadline:
            time.sleep(0.5)
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # what `ray stop` would clear
    if current.is_file() and f":{port}" in current.read_text():
        current.unlink(missing_ok=True)


def test_a_study_runs_on_a_cluster_started_with_ray_start(tmp_path, cache_dir):
    from study.engine.ray_cluster import RAY_TOKEN_FILE

    # `ray start` writes a token file; a local Ray started later by this test process (which imported
    # Ray before the file existed) would have its GCS demand that token, so the test removes its own.
    token_existed = RAY_TOKEN_FILE.exists()
    port = _free_port()
    space = write_space(tmp_path, study={"num_samples": 2, "max_concurrent": 2})
    storage = tmp_path / "studies"
    try:
        started = subprocess.run([*RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                                  "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats"],
                                 capture_output=True, text=True, timeout=180, env=_clean_env())
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        result = tune_cli("--space", str(space), "--storage", str(storage), "--name", "cluster", "--num-samples", "2",
                          "--address", f"127.0.0.1:{port}", cache=cache_dir, env=_clean_env())
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    finally:
        _stop_cluster(port)
        if not token_existed:
            RAY_TOKEN_FILE.unlink(missing_ok=True)
    assert _ray_processes_of(port) == {}
    trials = load_study(storage / "cluster")
    assert len(trials) == 2 and set(trials["status"]) == {"TERMINATED"}
    ranked = subprocess.run([sys.executable, "-m", "analysis.rank", str(storage / "cluster")], capture_output=True,
                            text=True, timeout=300)
    assert ranked.returncode == 0 and "Retrain" in ranked.stdout, ranked.stderr[-2000:]
    best = tmp_path / "best.yaml"
    exported = subprocess.run([sys.executable, "-m", "study.export", str(storage / "cluster"), "--top", "1", "--out",
                               str(best)], capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert yaml.safe_load(best.read_text())["method"] == "dau"


@pytest.mark.parametrize("env, token_file, expected_mode", [
    ({}, False, None),  # no token anywhere: leave Ray's default alone
    ({}, True, "token"),  # `ray start`'s token file: present it
    ({"RAY_AUTH_TOKEN": "abc"}, False, "token"),
    ({"RAY_AUTH_MODE": "disabled"}, True, "disabled"),  # an explicit choice stands
])
def test_the_driver_presents_a_token_where_ray_keeps_one(tmp_path, monkeypatch, env, token_file, expected_mode):
    import study.engine.ray_cluster as tune

    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "auth_token"
    if token_file:
        path.write_text("secret")
    monkeypatch.setattr(tune, "RAY_TOKEN_FILE", path)
    monkeypatch.setattr(tune, "reload_ray_config", lambda: None)  # keep this test process's Ray as it was
    assert tune.present_ray_token() is (expected_mode == "token")
    assert os.environ.get("RAY_AUTH_MODE") == expected_mode
    assert "RAY_AUTH_TOKEN" in tune.TOKEN_FIX and "ray get-auth-token" in tune.TOKEN_FIX
