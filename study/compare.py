"""`python -m study.compare`: a fair Table 1. Every method is tuned with the same budget on the
tuning seeds, then its best configuration is run on evaluation seeds that no study saw.

    python -m study.compare --preset fmnist-proxy --forget random:10 --budget 16 --tune-seeds 0 \
        --eval-seeds 1 2 3 --out compare/

For each method (DAU and every baseline; Original and Retrain as reference rows):
  1. a study of `--budget` trials on its own search space (the `baselines` space's section for a
     baseline; for DAU `--dau-space`, by default the space for the preset and forget scheme),
     on the tuning seeds only (several seeds: each trial reports their mean), all with the same
     objective;
  2. its best trial's configuration (`configs/<method>.yaml`) run once per evaluation seed;
  3. `table.md`: UA, MIA-Efficacy, RA, TA, Avg. Disparity, run time and time/Retrain, mean ± std
     over the evaluation seeds, with MIA-Efficacy's mean ± std over 5 member subsets beside it (a
     diagnostic: a cell is flagged when that spread exceeds its gap to the nearest other method);
     `disparity_vs_time_<level>.png`; `compare.json` with the budget and the seeds each study recorded.
A method whose study failed is shown as failed, not dropped. The same command run again reuses
finished studies and evaluation runs (`runs.csv`) and computes only what is missing. With
`--studies-only` it stops after the studies (and `compare.json`, `configs/`): the evaluation seeds
then run in one sitting, so their run times and their Retrains' are measured on the same machine
state. A finished study is reused from its records alone (`study.json`, Ray's experiment state,
each trial's `params.json` and results), so a folder whose `checkpoint_*` folders were deleted to
save space still resumes; and when a study's whole folder is gone (a comparison kept in version
control holds `compare.json` and `configs/` only), the configuration it chose is reused as recorded.

Dense and sparse side by side: run the command again into the same `--out` with `--sparsity 0.95`.
Each sparsity level gets its own studies (`studies/<level>/<method>`) and configurations
(`configs/<level>/<method>.yaml`); `table.md` then shows one table per level and, when there are
several, their headline columns side by side. A folder holds one comparison: the budget, seeds,
objective and experiment (all but the sparsity) must match what it was started with.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from study.cache import ArtifactCache
from study.cli_common import add_experiment_arguments, experiment_overrides, read_method_config, set_threads
from study.config import resolve_experiment
from study.errors import UserError, cli_entry
from study.staging import write_file_atomically
from study.methods import METHODS, build_method
from study.spaces import load_space

MIA_SUBSETS = 5
BASELINES_SPACE = "baselines"
DAU_SPACES = {("fmnist-proxy", "random"): "fmnist-random", ("fmnist-proxy", "class"): "fmnist-classwise",
              ("digits", "random"): "random", ("digits", "class"): "classwise"}
COLUMNS = ("UA", "MIA-Efficacy", "RA", "TA", "avg_disparity", "run_seconds", "time_ratio")
ROOT = Path(__file__).resolve().parent.parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m study.compare", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    tunable = [m for m, cls in METHODS.items() if cls.reference is None]
    parser.add_argument("--methods", nargs="+", default=tunable, help=f"methods to compare (default: {' '.join(tunable)})")
    parser.add_argument("--budget", type=int, default=16, help="trials per method, the same for every method (default 16)")
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[0], help="seeds the studies tune on (default 0)")
    parser.add_argument("--eval-seeds", type=int, nargs="+", default=[1, 2, 3],
                        help="seeds the chosen configurations are evaluated on; never seen by a study (default 1 2 3)")
    parser.add_argument("--objective", choices=("avg_disparity", "retrain_free"), default="avg_disparity",
                        help="what every study minimises (default Avg. Disparity to Retrain)")
    parser.add_argument("--dau-space", default=None, help="DAU's search space (default: by preset and forget scheme)")
    parser.add_argument("--cpus-per-trial", type=float, default=None, help="passed to study.tune")
    parser.add_argument("--max-concurrent", type=int, default=None, help="passed to study.tune")
    parser.add_argument("--out", default="compare", help="output folder (default ./compare)")
    parser.add_argument("--studies-only", action="store_true",
                        help="run (or reuse) the studies and write the chosen configurations, then stop before the "
                             "evaluation seeds: a long comparison can be tuned in one sitting and evaluated in another")
    add_experiment_arguments(parser)
    return parser


def check_arguments(args: argparse.Namespace) -> None:
    unknown = [m for m in args.methods if m not in METHODS or METHODS[m].reference is not None]
    if unknown:
        raise UserError(f"--methods: {', '.join(unknown)} cannot be compared; choose from "
                        f"{', '.join(m for m, c in METHODS.items() if c.reference is None)} (Original and Retrain "
                        "are always shown as reference rows)")
    if args.budget < 1:
        raise UserError("--budget must be at least 1")
    overlap = sorted(set(args.tune_seeds) & set(args.eval_seeds))
    if overlap:
        raise UserError(f"seed(s) {' '.join(map(str, overlap))} are both tuning and evaluation seeds; "
                        "the evaluation seeds must be ones no study saw")
    for flag, seeds in (("--tune-seeds", args.tune_seeds), ("--eval-seeds", args.eval_seeds)):
        if len(set(seeds)) != len(seeds) or any(seed < 0 for seed in seeds):
            raise UserError(f"{flag} must list distinct seeds of 0 or more")


def space_of(method: str, args: argparse.Namespace, preset: str, forget: str) -> list[str]:
    """The study.tune arguments that pick a method's own search space."""
    if method != "dau":
        baselines = load_space(BASELINES_SPACE)
        if method not in [m.method for m in baselines.methods]:
            raise UserError(f"the {BASELINES_SPACE} space has no section for {method}")
        return ["--space", BASELINES_SPACE, "--method", method]
    space = args.dau_space or DAU_SPACES.get((preset, forget.split(":")[0]))
    if space is None:
        raise UserError(f"no DAU space for preset {preset} and forget {forget}; pass --dau-space")
    load_space(space)  # validated before any study starts
    return ["--space", space]


def experiment_flags(args: argparse.Namespace) -> list[str]:
    """The experiment flags given to this command, passed on to every study (with the preset and the
    forget scheme, always given so that every study runs the same experiment)."""
    flags = []
    for name, value in vars(args).items():
        option = "--" + name.replace("_", "-")
        if name in ("dataset", "model", "sparsity", "epochs", "train_size", "val_size", "data_root",
                    "cache_dir") and value is not None:
            flags += [option, str(value)]
    return flags + (["--download"] if args.download else [])


def study_record(study_dir: Path) -> dict | None:
    """What a study wrote about itself (study.json), or None if it never started."""
    path = study_dir / "study.json"
    return json.loads(path.read_text()) if path.is_file() else None


def find_study_dir(root: Path) -> Path | None:
    found = sorted(root.glob("**/study.json"))
    return found[0].parent if found else None


def level_name(sparsity: float) -> str:
    """The folder name of a sparsity level: `dense` or `sparse-0.95`."""
    return "dense" if not sparsity else f"sparse-{sparsity:g}"


COMPARISON_FIELDS = ("budget", "objective", "tune_seeds", "eval_seeds")


def check_same_comparison(record_path: Path, current: dict) -> dict:
    """The comparison already in `--out` (its compare.json), refused if this command would mix a
    different budget, objective, seeds or experiment (other than the sparsity) into it."""
    if not record_path.is_file():
        return {}
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{record_path} is corrupted ({type(err).__name__}); move it away to start afresh") from None
    before = {**{k: record.get(k) for k in COMPARISON_FIELDS},
              "experiment": {k: v for k, v in (record.get("experiment") or {}).items() if k != "sparsity"}}
    now = {**{k: current[k] for k in COMPARISON_FIELDS},
           "experiment": {k: v for k, v in current["experiment"].items() if k != "sparsity"}}
    changed = [k for k in before if before[k] != now[k]]
    if changed:
        raise UserError(f"{record_path.parent} holds a comparison with another {', '.join(changed)}; every level of "
                        "one comparison gets the same budget and seeds: pick another --out")
    return record


def recorded_study(method: str, out: Path, level: str, previous: dict, budget: int) -> dict | None:
    """A study that compare.json records as finished with this budget but whose folder is gone, with
    the configuration chosen from it (`configs/<level>/<method>.yaml`), or None. A comparison kept
    in version control holds compare.json and configs/ but not the studies' bulky folders; its
    evaluation seeds can still be run (or resumed) from there without tuning again."""
    entry = (((previous.get("levels") or {}).get(level) or {}).get("studies") or {}).get(method)
    config_path = out / "configs" / level / f"{method}.yaml"
    if not entry or entry.get("status") != "finished" or entry.get("trials") != budget or not config_path.is_file():
        return None
    config = read_method_config(str(config_path), f"{method}'s chosen configuration")
    if config.get("method") != method:
        raise UserError(f"{config_path} is not {method}'s configuration; move it away to tune {method} again")
    return {"status": "finished", "num_trials": budget, "experiment": {"seed": entry.get("seed")},
            "average_seeds": entry.get("average_seeds"), "dir": entry.get("dir"), "config": config}


def run_study(method: str, args: argparse.Namespace, out: Path, preset: str, forget: str, log,
              level: str = "dense", previous: dict | None = None) -> dict:
    """Tune one method (or reuse its finished study, from its folder or, when that is gone, from
    compare.json and its chosen configuration); returns its record, with `status` and `dir`."""
    root = out / "studies" / level / method
    existing = find_study_dir(root)
    if existing is not None:
        record = study_record(existing)
        if record.get("status") == "finished" and record.get("num_trials") == args.budget:
            log(f"{method}: study finished earlier ({existing}), reused")
            return {**record, "dir": str(existing)}
    else:
        recorded = recorded_study(method, out, level, previous or {}, args.budget)
        if recorded is not None:
            log(f"{method}: study finished earlier (recorded in compare.json; its folder is absent), "
                f"reused through configs/{level}/{method}.yaml")
            return recorded
    seeds = (["--seed", str(args.tune_seeds[0])] if len(args.tune_seeds) == 1
             else ["--seed", str(args.tune_seeds[0]), "--average-seeds", *map(str, args.tune_seeds)])
    command = [sys.executable, "-m", "study.tune", *space_of(method, args, preset, forget), "--num-samples",
               str(args.budget), "--objective", args.objective, "--storage", str(root), "--name", method, "--quiet",
               *seeds, *experiment_flags(args), "--preset", preset, "--forget", forget]
    if args.cpus_per_trial:
        command += ["--cpus-per-trial", str(args.cpus_per_trial)]
    if args.max_concurrent:
        command += ["--max-concurrent", str(args.max_concurrent)]
    if existing is not None:
        command += ["--resume"]
    log(f"{method}: study of {args.budget} trials on seed(s) {' '.join(map(str, args.tune_seeds))} ...")
    root.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with open(root / "tune.log", "a") as output:
        result = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
    study_dir = find_study_dir(root)
    record = (study_record(study_dir) if study_dir else None) or {}
    if result.returncode != 0 or record.get("status") != "finished":
        lines = (root / "tune.log").read_text().strip().splitlines()
        reason = next((line for line in reversed(lines) if line.startswith("error:")), lines[-1] if lines else "")
        log(f"{method}: study FAILED ({reason}); see {root / 'tune.log'}")
        return {**record, "status": "failed", "reason": reason, "dir": str(study_dir or root)}
    log(f"{method}: study finished in {time.perf_counter() - began:.0f} s")
    return {**record, "dir": str(study_dir)}


def evaluation_rows(method: str, params: dict, args: argparse.Namespace, run_log, configs_by_seed: dict,
                    prepared_for, log) -> list[dict]:
    """One row per evaluation seed for `method` at `params` (Original and Retrain: their cached models).
    A row already in the run log is read back; only a missing one asks `prepared_for(seed)` for the
    seed's data and models, so a finished comparison re-runs without training any model."""
    import torch

    from study.pipeline import mia_efficacy_spread
    from study.runner import run_method

    rows = []
    for seed, config in configs_by_seed.items():
        key = {"preset": args.preset or "digits", "forget": config.forget, "method": method,
               "sparsity": config.sparsity, "seed": seed, "params": json.dumps(params, sort_keys=True)}
        row = run_log.get(key)
        if row is None:
            prepared = prepared_for(seed)
            result = run_method(prepared, build_method(method, params), log=lambda m: None)
            spread = mia_efficacy_spread(result.model, prepared.data, prepared.splits, seed, MIA_SUBSETS,
                                         prepared.device)
            row = {**key, **result.metrics, "run_seconds": result.run_seconds, **result.artifact_seconds,
                   "retrain_seconds": prepared.retrain_seconds, "threads": torch.get_num_threads(),
                   "retrain_threads": prepared.retrain_threads, "mia_subsets_mean": spread[0],
                   "mia_subsets_std": spread[1]}
            run_log.add(row)
            log(f"  {method} on seed {seed}: Avg. Disparity {row['avg_disparity']:.2f}, {row['run_seconds']:.1f} s")
        rows.append(row)
    return rows


def level_runs(record: dict, run_log, preset: str) -> dict[str, pd.DataFrame]:
    """Each level's evaluation rows (its chosen configurations and the reference rows on the
    evaluation seeds), read back from the run log, keyed by level name."""
    found = {}
    forget = record["experiment"]["forget"]
    for level, entry in sorted(record.get("levels", {}).items()):
        rows = []
        for method, params in {"retrain": {}, "original": {}, **entry.get("configs", {})}.items():
            for seed in record["eval_seeds"]:
                row = run_log.get({"preset": preset, "forget": forget, "method": method, "sparsity": entry["sparsity"],
                                   "seed": seed, "params": json.dumps(params, sort_keys=True)})
                if row is not None:
                    rows.append(row)
        if rows:
            found[level] = pd.DataFrame(rows)
    return found


def side_by_side(runs_by_level: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The paper's layout: one row per method, each level's headline columns side by side."""
    from analysis.table import TABLE_COLUMNS, summarize, wide_table

    runs = pd.concat(list(runs_by_level.values()), ignore_index=True)
    return wide_table(summarize(runs[["method", "sparsity", *TABLE_COLUMNS]]))


def summary_table(runs: pd.DataFrame, order: list[str], failed: dict[str, str]) -> pd.DataFrame:
    """Mean ± std over evaluation seeds per method, the MIA-Efficacy diagnostic and its flag."""
    from analysis.formatting import display_name, mean_std

    runs = runs.assign(time_ratio=runs["run_seconds"] / runs["retrain_seconds"])
    means = runs.groupby("method")[[*COLUMNS, "mia_subsets_std"]].mean()
    stds = runs.groupby("method")[list(COLUMNS)].std()
    rows = []
    for method in order:
        if method in failed:
            rows.append({"method": display_name(method), "Avg. Disparity": f"failed: {failed[method]}"})
            continue
        if method not in means.index:
            continue
        m, s = means.loc[method], stds.loc[method]
        others = means.drop(index=[method, "retrain", "original"], errors="ignore")["MIA-Efficacy"]
        gap = float((others - m["MIA-Efficacy"]).abs().min()) if len(others) else float("nan")
        spread = float(m["mia_subsets_std"])
        row = {"method": display_name(method)}
        for column, label in (("UA", "UA"), ("MIA-Efficacy", "MIA-Efficacy"), ("RA", "RA"), ("TA", "TA"),
                              ("avg_disparity", "Avg. Disparity"), ("run_seconds", "run time (s)"),
                              ("time_ratio", "time / Retrain")):
            row[label] = mean_std(m[column], s[column], 1 if column == "run_seconds" else (3 if column == "time_ratio" else 2))
        row["MIA-Efficacy over 5 subsets (std)"] = f"{spread:.2f}" + (" ⚑" if spread > gap else "")
        rows.append(row)
    return pd.DataFrame(rows).fillna("–")


def thread_mismatches(runs: pd.DataFrame) -> list[str]:
    """Evaluation runs whose time / Retrain compares different torch thread counts (the run's and
    the one Retrain was trained with), or a Retrain whose thread count was not recorded: one line
    per such seed, for a note under the table."""
    if "threads" not in runs or "retrain_threads" not in runs:
        return []
    notes = []
    timed = runs[~runs["method"].isin(["original", "retrain"])]
    for seed, group in timed.groupby("seed"):
        retrain = group["retrain_threads"].iloc[0]
        threads = sorted({int(t) for t in group["threads"].dropna()})
        if pd.isna(retrain):
            notes.append(f"seed {seed}: Retrain's thread count was not recorded (a model cached before it was kept); "
                         f"the runs used {', '.join(map(str, threads))}")
        elif threads != [int(retrain)]:
            notes.append(f"seed {seed}: runs used {', '.join(map(str, threads))} thread(s), Retrain was trained with "
                         f"{int(retrain)}")
    return notes


def disparity_figure(runs: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.formatting import display_name

    runs = runs[~runs["method"].isin(["original", "retrain"])]
    runs = runs.assign(time_ratio=runs["run_seconds"] / runs["retrain_seconds"])
    means = runs.groupby("method")[["avg_disparity", "time_ratio"]].mean()
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.scatter(means["time_ratio"], means["avg_disparity"])
    for method, row in means.iterrows():
        axes.annotate(display_name(method), (row["time_ratio"], row["avg_disparity"]), textcoords="offset points",
                      xytext=(4, 4))
    axes.set_xlabel("run time / Retrain's")
    axes.set_ylabel("Avg. Disparity (lower is better)")
    axes.set_title("tuned methods on the evaluation seeds (mean)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def exit_status(failed: dict[str, str], methods: list[str], studies: Path) -> int:
    """0 when at least one study finished; every study failing is an error (after what could be written is)."""
    if len(failed) == len(methods):
        raise UserError(f"every study failed; see {studies}/<method>/tune.log")
    return 0


def main(argv: list[str] | None = None) -> int:
    from analysis.formatting import markdown_table, method_sort_key
    from analysis.table import sparsity_label
    from study.export import best_configs, write_config
    from study.pipeline import prepare
    from study.run_log import RunLog

    args = build_parser().parse_args(argv)
    check_arguments(args)
    set_threads(args.threads)
    experiment = resolve_experiment(args.preset, None, experiment_overrides(args))
    preset = args.preset or "digits"
    level = level_name(experiment.sparsity)
    for method in args.methods:  # every space is checked before anything trains
        space_of(method, args, preset, experiment.forget)
    out = Path(args.out)
    command = "python -m study.compare " + " ".join(sys.argv[1:] if argv is None else argv)
    current = {"command": command, "experiment": experiment.as_dict(), "budget": args.budget,
               "objective": args.objective, "tune_seeds": args.tune_seeds, "eval_seeds": args.eval_seeds}
    previous = check_same_comparison(out / "compare.json", current)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda message: print(message, flush=True)  # noqa: E731
    log(f"budget: {args.budget} trials per method, the same for every method; tuning seed(s) "
        f"{' '.join(map(str, args.tune_seeds))}, evaluation seed(s) {' '.join(map(str, args.eval_seeds))}; "
        f"{sparsity_label(experiment.sparsity)}")
    began = time.perf_counter()
    studies = {method: run_study(method, args, out, preset, experiment.forget, log, level, previous)
               for method in args.methods}
    failed = {m: r.get("reason", "failed") for m, r in studies.items() if r.get("status") != "finished"}
    configs = {}
    for method, record in studies.items():
        if method in failed:
            continue
        if "config" in record:  # reused through its configuration: nothing to export again
            config = record["config"]
        else:
            config = best_configs(record["dir"])[0]
            config["source"]["study"] = record["dir"]  # as the command named it, not this machine's absolute path
            write_config(config, out / "configs" / level / f"{method}.yaml")
        configs[method] = config
    seeds_seen = {method: {"seed": (record.get("experiment") or {}).get("seed"),
                           "average_seeds": record.get("average_seeds"), "trials": record.get("num_trials"),
                           "status": record.get("status"), "dir": record.get("dir")}
                  for method, record in studies.items()}
    levels = {**previous.get("levels", {}), level: {
        "sparsity": experiment.sparsity, "methods": list(args.methods), "studies": seeds_seen, "failed": failed,
        "configs": {method: config["params"] for method, config in configs.items()}}}
    record = {**current, "levels": levels}
    write_file_atomically(out / "compare.json", json.dumps(record, indent=2, default=str))
    if args.studies_only:
        log(f"--studies-only: {len(configs)} configuration(s) in {out / 'configs' / level}; evaluation seeds not run "
            "(the same command without --studies-only runs them)")
        return exit_status(failed, args.methods, out / "studies" / level)
    cache = ArtifactCache(args.cache_dir)
    configs_by_seed = {seed: resolve_experiment(None, experiment.as_dict(), {"seed": seed}) for seed in args.eval_seeds}
    prepared_by_seed: dict = {}

    def prepared_for(seed: int):
        if seed not in prepared_by_seed:
            prepared_by_seed[seed] = prepare(configs_by_seed[seed], cache, log=log)
        return prepared_by_seed[seed]

    run_log = RunLog(out / "runs.csv")
    rows = []
    for method in ("retrain", "original", *configs):
        params = configs[method]["params"] if method in configs else {}
        rows += evaluation_rows(method, params, args, run_log, configs_by_seed, prepared_for, log)
    disparity_figure(pd.DataFrame(rows), out / f"disparity_vs_time_{level}.png")

    sections = [f"Command: `{command}`", "",
                f"{experiment.dataset} / {experiment.model}, forget {experiment.forget}. Every method tuned with "
                f"{args.budget} trials on seed(s) {', '.join(map(str, args.tune_seeds))} ({args.objective}); "
                f"mean ± std over evaluation seeds {', '.join(map(str, args.eval_seeds))}. ⚑: MIA-Efficacy's spread over "
                f"{MIA_SUBSETS} member subsets exceeds its gap to the nearest other method.", ""]
    runs_by_level = level_runs(record, run_log, preset)
    for name, runs in runs_by_level.items():
        entry = levels[name]
        order = sorted({"retrain", "original", *entry["methods"]}, key=method_sort_key)
        sections += [f"### {sparsity_label(entry['sparsity'])}", "",
                     markdown_table(summary_table(runs, order, entry["failed"])), ""]
        mismatches = thread_mismatches(runs)
        if mismatches:
            sections += ["time / Retrain compares different thread counts here, so read it with care: "
                         + "; ".join(mismatches) + ".", ""]
    if len(runs_by_level) > 1:
        sections += ["### side by side", "", markdown_table(side_by_side(runs_by_level)), ""]
    sections.append(f"Wall time of this command: {time.perf_counter() - began:.0f} s")
    text = "\n".join(sections)
    (out / "table.md").write_text(text + "\n")
    print("\n" + text)
    return exit_status(failed, args.methods, out / "studies" / level)


run = cli_entry(main)

if __name__ == "__main__":
    run()
