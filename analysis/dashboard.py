"""`python -m analysis.dashboard X`: optuna-dashboard over a comparison's (or a tune run's) one
Optuna file, checked and photographed in headless Chromium.

A comparison keeps every method's study in `X/optuna.db` (`<method>-<level>`, each trial carrying
its metrics and Ray trial id), so optuna-dashboard's compare-studies view puts every method's
search side by side. This module starts the dashboard on a loopback port, loads its pages in a
real browser (Debian's `chromium`), returns what the pages show, and can keep a screenshot of the
compare view:

    python -m analysis.dashboard docs/some-comparison --screenshot docs/dashboard-compare.png

Needs `pip install -e ".[dashboard]"` and a `chromium` (or `chromium-browser`) on PATH; says so in
one line where either is missing. For browsing by hand, `optuna-dashboard sqlite:///X/optuna.db`.
"""
from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from study.core.errors import UserError, cli_entry
from study.records.pareto import OPTUNA_FILE

PAGE_BUDGET_MS = 10000  # virtual time Chromium lets a page's scripts run before it is read


def chromium_binary() -> str | None:
    """The headless-capable Chromium on PATH, if any."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def storage_of(folder: Path) -> str:
    """The SQLite URL of a comparison's (or tune run's) one Optuna file."""
    path = Path(folder) / OPTUNA_FILE
    if not path.is_file():
        raise UserError(f"{folder} holds no {OPTUNA_FILE}: not a comparison or tune run with an Optuna search")
    return f"sqlite:///{path.resolve()}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def dashboard(storage: str, timeout_s: float = 30.0) -> Iterator[str]:
    """optuna-dashboard on a free loopback port for the duration; yields its base URL."""
    try:
        import optuna_dashboard  # noqa: F401
    except ImportError:
        raise UserError('optuna-dashboard is not installed: pip install -e ".[dashboard]"') from None
    port = _free_port()
    code = ("import sys, optuna_dashboard; "
            "optuna_dashboard.run_server(sys.argv[1], host='127.0.0.1', port=int(sys.argv[2]))")
    server = subprocess.Popen([sys.executable, "-c", code, storage, str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise UserError(f"optuna-dashboard did not start: {(server.stderr.read() or 'no output')[-300:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/dashboard"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _chromium(*args: str) -> subprocess.CompletedProcess:
    binary = chromium_binary()
    if binary is None:
        raise UserError("no chromium on PATH (Debian: apt-get install chromium)")
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           f"--virtual-time-budget={PAGE_BUDGET_MS}", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def page_text(url: str) -> str:
    """The page's DOM after its scripts ran, as headless Chromium renders it."""
    return _chromium("--dump-dom", url).stdout


def screenshot(url: str, out: Path, size: tuple[int, int] = (1400, 1000)) -> Path:
    """A PNG of the page as Chromium draws it."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    _chromium(f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", url)
    if not out.is_file():
        raise UserError(f"chromium wrote no screenshot to {out}")
    return out


def study_ids(storage: str) -> dict[str, int]:
    """Each study's name and the id the dashboard's URLs use."""
    import optuna

    rdb = optuna.storages.RDBStorage(storage)
    return {study.study_name: rdb.get_study_id_from_name(study.study_name) for study in rdb.get_all_studies()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.dashboard", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("folder", help="a study.compare --out folder (or a study.tune run folder) holding optuna.db")
    parser.add_argument("--screenshot", default=None, metavar="PNG", help="keep a screenshot of the compare view")
    args = parser.parse_args(argv)
    storage = storage_of(Path(args.folder))
    ids = study_ids(storage)
    with dashboard(storage) as base:
        listed = page_text(base)
        shown = [name for name in ids if name in listed]
        print(f"optuna-dashboard lists {len(shown)} of {len(ids)} studies: {', '.join(shown)}")
        if args.screenshot:
            url = f"{base}/compare-studies?ids={','.join(map(str, sorted(ids.values())))}"
            print(f"compare view: {screenshot(url, Path(args.screenshot))}")
    return 0 if len(shown) == len(ids) else 1


run = cli_entry(main)

if __name__ == "__main__":
    run()
