"""Ray Tune's overhead: the same trials as a study vs a plain Python loop, on one machine, in one run.

Both sides run the same DAU configs one at a time with all cores, and both evaluate the
metrics after every epoch (as the Trainable does). The study's time includes starting Ray,
scheduling, checkpointing every epoch and logging; the loop's is the bare work.

    python bench/tune_overhead.py --configs 3 --out docs/tune_overhead.md
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from study.cache import ArtifactCache  # noqa: E402
from study.config import experiment_from_preset  # noqa: E402
from study.methods import build_method  # noqa: E402
from study.pipeline import prepare  # noqa: E402
from study.runner import run_method  # noqa: E402

LEARNING_RATES = [0.002, 0.004, 0.006, 0.008, 0.01, 0.012]


def trial_times(study_dir: Path) -> tuple[float, float]:
    """Sum over trials of Ray's time inside `step` and of the unlearning time alone, from each
    trial's last reported result."""
    in_steps = unlearning = 0.0
    for result_file in study_dir.glob("trial_*/result.json"):
        lines = result_file.read_text().strip().splitlines()
        if lines:
            last = json.loads(lines[-1])
            in_steps += float(last.get("time_total_s", 0.0))
            unlearning += float(last.get("run_seconds", 0.0))
    return in_steps, unlearning


def study_breakdown(study_dir: Path) -> str:
    meta_file = study_dir / "study.json"
    if not meta_file.is_file():
        sys.exit(f"error: {study_dir} has no study.json (not a study folder)")
    meta = json.loads(meta_file.read_text())
    wall = float(meta.get("wall_seconds") or 0.0)
    in_steps, unlearning = trial_times(study_dir)
    trials = int(meta.get("num_trials") or 0)
    return (f"{study_dir}: {trials} trials, {wall:.0f} s of trials (study.json), {in_steps:.0f} s inside the "
            f"trials' steps, {unlearning:.0f} s of unlearning; {wall - in_steps:.0f} s outside the steps"
            f" ({(wall - in_steps) / max(trials, 1):.0f} s per trial)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="digits")
    parser.add_argument("--configs", type=int, default=3, help="number of trials (distinct learning rates)")
    parser.add_argument("--pretrain", type=int, default=1000,
                        help="pre-training length of DAU's shared attacker (built once, before either side is timed)")
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "dau-study"))
    parser.add_argument("--out", default=None)
    parser.add_argument("--study", default=None,
                        help="only split a finished study's time (study.json's wall time) into the same parts")
    args = parser.parse_args()
    if args.study:
        print(study_breakdown(Path(args.study)))
        return
    cores = len(os.sched_getaffinity(0))
    rates = LEARNING_RATES[: args.configs]
    fixed = {"epochs": 3, "attacker_pretrain_iters": args.pretrain}
    experiment = experiment_from_preset(args.preset)
    prepared = prepare(experiment, ArtifactCache(args.cache_dir), log=print)  # warm the cache for both sides
    prepared.attacker_store().get(build_method("dau", fixed).attacker_settings(experiment.seed))
    print(f"plain loop: {len(rates)} DAU trials, {fixed['epochs']} epochs, {args.pretrain} pre-training iterations ...",
          flush=True)

    import torch

    torch.set_num_threads(cores)
    began = time.perf_counter()
    loop_unlearning = 0.0
    for lr in rates:
        result = run_method(prepared, build_method("dau", {**fixed, "lr": lr}), log=lambda m: None,
                            eval_every_epoch=True)
        loop_unlearning += result.run_seconds
    loop_seconds = time.perf_counter() - began
    print(f"plain loop: {len(rates)} trials in {loop_seconds:.1f} s; now the same trials as a Ray Tune study ...",
          flush=True)

    with tempfile.TemporaryDirectory() as folder:
        space = Path(folder) / "overhead.yaml"
        space.write_text(yaml.safe_dump({
            "description": "overhead benchmark", "experiment": {"preset": args.preset, "seeds": [0]},
            "method": "dau", "fixed": fixed, "grid": {"lr": rates}, "study": {"num_samples": 1, "max_concurrent": 1}}))
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "study.tune", "--space", str(space), "--storage", str(Path(folder) / "s"),
                        "--name", "overhead", "--cache-dir", args.cache_dir, "--cpus-per-trial", str(cores),
                        "--scheduler", "fifo", "--quiet"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        study_seconds = time.perf_counter() - began
        in_steps, study_unlearning = trial_times(Path(folder) / "s" / "overhead")
    per_trial = loop_seconds / len(rates)
    text = (f"Command: `python bench/tune_overhead.py {' '.join(sys.argv[1:])}` ({cores} cores)\n\n"
            f"| trials | mean trial (loop) | plain loop | Ray Tune study | overhead |\n|---|---|---|---|---|\n"
            f"| {len(rates)} | {per_trial:.1f} s | {loop_seconds:.1f} s | {study_seconds:.1f} s | "
            f"{100 * (study_seconds - loop_seconds) / loop_seconds:+.1f}% |\n\n"
            "Where the study's extra time goes (sums over trials):\n\n"
            "| | plain loop | Ray Tune study |\n|---|---|---|\n"
            f"| unlearning only (`run_seconds`) | {loop_unlearning:.1f} s | {study_unlearning:.1f} s |\n"
            f"| unlearning + per-epoch evaluation | {loop_seconds:.1f} s | {in_steps:.1f} s (Ray's `time_total_s`) |\n"
            f"| outside the trials' steps (Ray start, trial start-up, checkpoints, driver) | – | "
            f"{study_seconds - in_steps:.1f} s |\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
