"""The numbers README.md quotes about itself, measured again: how long the set-up-and-run main job
and the first DAU run take on an empty cache, what they end with, and how many tests the README's
test command collects. Writes `docs/readme-numbers.md` (the README points there instead of carrying
numbers that go stale), and exits 1 when the README names a test count that the suite no longer has.

    python bench/readme_numbers.py --out docs/readme-numbers.md

Run it alone on the machine: it times two commands (about a minute each on 2 cores). With
`--time-ci` it also clones the repository (its committed state) into a temporary folder, with
`../shared` linked beside it as in CI, and times `bash .ci/run` there (about 7 minutes).
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN_JOB = ["-m", "study.tune", "--space", "classwise", "--num-samples", "8"]
FIRST_DAU_RUN = ["-m", "study.run", "--method", "dau"]


def machine() -> str:
    """The CPU's name and core count, as the results name it."""
    from study.core.versions import cpuinfo_field  # the project is installed (pip install -e .)

    return f"{cpuinfo_field('model name') or platform.machine()}, {os.cpu_count()} cores"


def timed(args: list[str], cwd: Path, env_cache: Path) -> tuple[float, str]:
    """Seconds a `python <args>` run took in `cwd` with an empty artifact cache, and its stdout."""
    began = time.perf_counter()
    result = subprocess.run([sys.executable, *args, "--cache-dir", str(env_cache)], cwd=cwd, capture_output=True,
                            text=True, check=False)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {result.stderr.strip().splitlines()[-1:]}")
    return seconds, result.stdout


def time_ci() -> str:
    """`bash .ci/run` in a fresh clone of the committed repository: its wall time and pytest's summary."""
    with tempfile.TemporaryDirectory() as work:
        clone = Path(work) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        shared = ROOT.parent / "shared"
        if shared.is_dir():
            (Path(work) / "shared").symlink_to(shared)
        began = time.perf_counter()
        result = subprocess.run(["bash", ".ci/run"], cwd=clone, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - began
    summary = re.findall(r"=+ (.*(?:passed|failed).*) in [\d.]+s", result.stdout)
    status = "passed" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
    return (f"- `bash .ci/run` in a fresh clone: {status} in {seconds / 60:.1f} min"
            f"{f' ({summary[-1]})' if summary else ''}")


def collected_tests() -> int:
    """How many tests the README's test command collects."""
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "tests"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    found = re.search(r"(\d+) tests? collected", result.stdout)
    if found is None:
        raise SystemExit(f"pytest collected nothing: {result.stdout[-300:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/readme_numbers.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/readme-numbers.md", help="where to write the numbers")
    parser.add_argument("--skip-timing", action="store_true", help="only count the tests (seconds, not minutes)")
    parser.add_argument("--time-ci", action="store_true", help="also time bash .ci/run in a fresh clone")
    args = parser.parse_args(argv)
    tests = collected_tests()
    lines = [f"# The README's numbers, measured {time.strftime('%Y-%m-%d')}", "",
             f"Machine: {machine()}, command: `python bench/readme_numbers.py --out {args.out}"
             f"{' --time-ci' if args.time_ci else ''}{' --skip-timing' if args.skip_timing else ''}`.", "",
             f"- the README's test command collects {tests} tests (`python -m pytest --collect-only -q tests`)."]
    if not args.skip_timing:
        with tempfile.TemporaryDirectory() as work:
            seconds, stdout = timed(MAIN_JOB, ROOT, Path(work) / "cache")
            best = re.search(r"Top (\d+) of (\d+)", stdout)
            lines.append(f"- main job `python {' '.join(MAIN_JOB)}` on an empty cache: {seconds:.0f} s"
                         + (f"; its ranking shows the top {best.group(1)} of {best.group(2)} trials" if best else ""))
            seconds, _ = timed([*FIRST_DAU_RUN, "--out", str(Path(work) / "run")], ROOT, Path(work) / "cache2")
            lines.append(f"- first DAU run `python {' '.join(FIRST_DAU_RUN)} --out runs/x` on an empty cache: "
                         f"{seconds:.0f} s")
    if args.time_ci:
        lines.append(time_ci())
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    quoted = [int(n) for n in re.findall(r"(\d+) tests\b", (ROOT / "README.md").read_text())]
    stale = [n for n in quoted if n != tests]
    if stale:
        print(f"README.md quotes {', '.join(map(str, stale))} tests; the suite has {tests}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
