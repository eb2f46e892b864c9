"""Ray Tune's overhead: the same trials as a study vs a plain Python loop, on one machine, in one run.

Both sides run the same DAU configs one at a time with all cores, and both evaluate the
metrics where a FIFO study's trials do: after each trial's last epoch (the study evaluates only
the epochs its scheduler reads). The study's time includes starting Ray, scheduling,
checkpointing and logging; the loop's is the bare work.

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

from study.core.cache import ArtifactCache
from study.engine.runner import run_method
from study.experiment.config import experiment_from_preset
from study.experiment.prepare import prepare
from study.methods import build_method

ROOT = Path(__file__).resolve().parent.parent

LEARNING_RATES = [0.002, 0.004, 0.006, 0.008, 0.01, 0.012]


def study_split(study_dir: Path, command_seconds: float | None = None) -> dict[str, float]:
    """Where a finished study's time went, summed over its trials (seconds).

    From study.json (the driver's Ray start-up, artifact prebuild and `tuner.fit` wall time) and
    each trial's last result (`timing/*`, `run_seconds` and Ray's `time_total_s`, the time inside
    its steps). Unlearning is `run_seconds`: the epochs plus the method's own timed set-up.
    `command_seconds` is the whole `study.tune` command as the caller timed it; the part not in
    the driver's own figures is interpreter start, imports, ranking and shutdown.
    """
    from study.records.trials import load_study

    meta_file = study_dir / "study.json"
    if not meta_file.is_file():
        sys.exit(f"error: {study_dir} has no study.json (not a study folder)")
    meta = json.loads(meta_file.read_text())
    trials = load_study(study_dir)

    def total(column: str) -> float:
        return float(trials[column].fillna(0).sum()) if column in trials else float("nan")

    fit = float(meta.get("wall_seconds") or 0.0)
    unlearning, evaluation, in_steps = total("run_seconds"), total("timing/eval_s"), total("time_total_s")
    setup, checkpoints = total("timing/setup_s"), total("timing/checkpoint_s")
    split = {"trials": float(len(trials)), "Ray start-up": float(meta.get("ray_start_seconds", float("nan"))),
             "artifact prebuild (driver)": float(meta.get("prebuild_seconds", float("nan"))),
             "trial set-up (artifacts loaded)": setup, "unlearning": unlearning, "evaluation": evaluation,
             "reporting inside steps": in_steps - total("timing/epochs_s") - evaluation, "checkpoints": checkpoints,
             "scheduling and trial start (rest of tuner.fit)": fit - in_steps - setup - checkpoints}
    if command_seconds is not None:
        split["command start, ranking, shutdown"] = (command_seconds - fit - split["Ray start-up"]
                                                     - split["artifact prebuild (driver)"])
    split["total"] = command_seconds if command_seconds is not None else fit
    return split


def split_table(loop: dict[str, float], study: dict[str, float]) -> str:
    rows = ["| part | plain loop | Ray Tune study | study − loop |", "|---|---|---|---|"]
    for part, seconds in study.items():
        if part == "trials":
            continue
        mine = loop.get(part, 0.0)
        rows.append(f"| {part} | {mine:.1f} s | {seconds:.1f} s | {seconds - mine:+.1f} s |")
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="digits")
    parser.add_argument("--configs", type=int, default=3, help="number of trials (distinct learning rates)")
    parser.add_argument("--pretrain", type=int, default=1000,
                        help="pre-training length of DAU's shared attacker (built once, before either side is timed)")
    parser.add_argument("--epochs", type=int, default=3, help="DAU epochs per trial (default 3)")
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "dau-study"))
    parser.add_argument("--out", default=None)
    parser.add_argument("--study", default=None,
                        help="only split a finished study's time (study.json's wall time) into the same parts")
    args = parser.parse_args()
    if args.study:
        split = study_split(Path(args.study))
        print(f"{args.study}: {split.pop('trials'):.0f} trials")
        print("\n".join(f"  {part}: {seconds:.1f} s" for part, seconds in split.items()))
        if split["scheduling and trial start (rest of tuner.fit)"] < 0:
            print("  (trials ran side by side, so the per-trial sums exceed tuner.fit's wall time)")
        return
    cores = len(os.sched_getaffinity(0))
    rates = LEARNING_RATES[: args.configs]
    fixed = {"epochs": args.epochs, "attacker_pretrain_iters": args.pretrain}
    experiment = experiment_from_preset(args.preset)
    prepared = prepare(experiment, ArtifactCache(args.cache_dir), log=print)  # warm the cache for both sides
    build_method("dau").prebuild(prepared, {name: [value] for name, value in fixed.items()}, print)
    print(f"plain loop: {len(rates)} DAU trials, {fixed['epochs']} epochs, {args.pretrain} pre-training iterations ...",
          flush=True)

    import torch

    torch.set_num_threads(cores)
    evaluate, eval_seconds = prepared.evaluate, [0.0]

    def timed_evaluate(model):
        began = time.perf_counter()
        try:
            return evaluate(model)
        finally:
            eval_seconds[0] += time.perf_counter() - began

    prepared.evaluate = timed_evaluate  # the loop's evaluation time, as the trials report theirs
    began = time.perf_counter()
    loop_unlearning = 0.0
    for lr in rates:
        result = run_method(prepared, build_method("dau", {**fixed, "lr": lr}), log=lambda m: None)
        loop_unlearning += result.run_seconds
    loop_seconds = time.perf_counter() - began
    loop = {"unlearning": loop_unlearning, "evaluation": eval_seconds[0],
            "trial set-up (artifacts loaded)": loop_seconds - loop_unlearning - eval_seconds[0], "total": loop_seconds}
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
        study = study_split(Path(folder) / "s" / "overhead", study_seconds)
    trial_seconds = study["trial set-up (artifacts loaded)"] + study["unlearning"] + study["evaluation"] + \
        study["reporting inside steps"] + study["checkpoints"]
    text = (f"Command: `python bench/tune_overhead.py {' '.join(sys.argv[1:])}` ({cores} cores, preset "
            f"{args.preset})\n\n"
            f"| trials | mean trial (loop) | plain loop | Ray Tune study | overhead |\n|---|---|---|---|---|\n"
            f"| {len(rates)} | {loop_seconds / len(rates):.1f} s | {loop_seconds:.1f} s | {study_seconds:.1f} s | "
            f"{100 * (study_seconds - loop_seconds) / loop_seconds:+.1f}% |\n\n"
            "Where the time goes (sums over trials):\n\n" + split_table(loop, study) +
            f"\nEvaluation is {100 * study['evaluation'] / trial_seconds:.1f}% of the trials' own time in the study "
            f"({100 * loop['evaluation'] / loop_seconds:.1f}% of the loop's).\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
