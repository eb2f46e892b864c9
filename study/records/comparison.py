"""A comparison's records: `compare.json` (the budget, seeds, objective, experiment, and per sparsity
level the studies, their chosen configurations and failures) and the evaluation rows of its run
log (`runs.csv`), read back per level. One `--out` folder holds one comparison."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from study.core.errors import UserError
from study.core.staging import write_file_atomically
from study.records.method_config import read_method_config
from study.records.paths import read_path
from study.records.run_log import RunLog, run_key

COMPARE_FILE = "compare.json"
COMPARISON_FIELDS = ("budget", "objective", "tune_seeds", "eval_seeds", "configs_from")
REFERENCE_ROWS = ("retrain", "original")  # shown beside the methods on every evaluation seed


def level_name(sparsity: float) -> str:
    """The folder name of a sparsity level: `dense` or `sparse-0.95`."""
    return "dense" if not sparsity else f"sparse-{sparsity:g}"


def read_comparison(out: Path) -> dict:
    """The comparison kept in `out` (its compare.json), or {} when there is none yet."""
    path = Path(out) / COMPARE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is corrupted ({type(err).__name__}); move it away to start afresh") from None


def write_comparison(out: Path, record: dict) -> None:
    write_file_atomically(Path(out) / COMPARE_FILE, json.dumps(record, indent=2, default=str))


def check_same_comparison(out: Path, current: dict) -> dict:
    """The comparison already in `out`, refused if `current` would mix a different budget, objective,
    seeds or experiment (other than the sparsity) into it."""
    record = read_comparison(out)
    if not record:
        return {}
    before = {**{k: record.get(k) for k in COMPARISON_FIELDS},
              "experiment": {k: v for k, v in (record.get("experiment") or {}).items() if k != "sparsity"}}
    now = {**{k: current[k] for k in COMPARISON_FIELDS},
           "experiment": {k: v for k, v in current["experiment"].items() if k != "sparsity"}}
    changed = [k for k in before if before[k] != now[k]]
    if changed:
        raise UserError(f"{out} holds a comparison with another {', '.join(changed)}; every level of "
                        "one comparison gets the same budget and seeds: pick another --out")
    return record


def chosen_config_path(out: Path, level: str, method: str) -> Path:
    return Path(out) / "configs" / level / f"{method}.yaml"


def recorded_study(method: str, out: Path, level: str, previous: dict, budget: int) -> dict | None:
    """A study that compare.json records as finished with this budget but whose folder is gone, with
    the configuration chosen from it, or None. A comparison kept in version control holds
    compare.json and configs/ but not the studies' bulky folders; its evaluation seeds can still be
    run (or resumed) from there without tuning again."""
    entry = (((previous.get("levels") or {}).get(level) or {}).get("studies") or {}).get(method)
    config_path = chosen_config_path(out, level, method)
    if not entry or entry.get("status") != "finished" or entry.get("trials") != budget or not config_path.is_file():
        return None
    config = read_method_config(str(config_path), f"{method}'s chosen configuration")
    if config.get("method") != method:
        raise UserError(f"{config_path} is not {method}'s configuration; move it away to tune {method} again")
    return {"status": "finished", "num_trials": budget, "experiment": {"seed": entry.get("seed")},
            "average_seeds": entry.get("average_seeds"), "dir": entry.get("dir"), "config": config}


SAME_SETTING_EXCEPT = ("forget", "sparsity", "seed")  # what a transferred configuration may change


def transferred_configs(source: Path, level: str, methods: list[str], experiment: dict,
                        eval_seeds: list[int]) -> tuple[dict, dict[str, dict]]:
    """The configurations another comparison (`source`, a `study.compare --out` folder) chose at
    `level`, for evaluating them on another forget set without tuning (`study.compare
    --configs-from`): does what was tuned on random 10% carry to the most-memorised 10%?

    Returns the source's protocol (what this comparison's header records instead of a budget it
    never spent: budget, objective, tuning seeds, selection set, and the source and its forget
    set) and one study record per method holding its chosen configuration. Refused in one line:
    no comparison there, another dataset/model/recipe, a method it did not tune at that level, or
    an evaluation seed the source tuned on."""
    record = read_comparison(source)
    if not record:
        raise UserError(f"--configs-from {source}: no comparison there (no {COMPARE_FILE})")
    theirs = {k: v for k, v in (record.get("experiment") or {}).items() if k not in SAME_SETTING_EXCEPT}
    ours = {k: v for k, v in experiment.items() if k not in SAME_SETTING_EXCEPT}
    differing = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if differing:
        raise UserError(f"--configs-from {source}: its experiment differs in {', '.join(differing)}; "
                        "only the forget set may change")
    entry = (record.get("levels") or {}).get(level)
    missing = [m for m in methods if m not in ((entry or {}).get("configs") or {})]
    if missing:
        raise UserError(f"--configs-from {source}: no chosen configuration for {', '.join(missing)} at level {level}")
    seen = sorted(set(record.get("tune_seeds") or []) & set(eval_seeds))
    if seen:
        raise UserError(f"--configs-from {source}: its studies tuned on seed(s) {' '.join(map(str, seen))}; "
                        "evaluate on seeds they never saw")
    protocol = {"budget": record.get("budget"), "objective": record.get("objective"),
                "tune_seeds": record.get("tune_seeds"), "selected_on": record.get("selected_on"),
                "configs_from": {"folder": str(source), "forget": record["experiment"]["forget"]}}
    studies = {}
    for method in methods:
        study = (entry.get("studies") or {}).get(method) or {}
        where = read_path(study.get("dir"), source)  # stored relative to the source's folder
        studies[method] = {"status": "finished", "num_trials": study.get("trials"),
                           "dir": str(where) if where is not None else None,
                           "experiment": {"seed": study.get("seed")}, "average_seeds": study.get("average_seeds"),
                           "config": {"method": method, "params": entry["configs"][method]}}
    return protocol, studies

TUNED, DEFAULTS = "tuned", "defaults"  # the `variant` of a method's evaluation row


def level_runs(record: dict, run_log: RunLog, preset: str) -> dict[str, pd.DataFrame]:
    """Each level's evaluation rows (the reference rows, each chosen configuration and each method
    at its documented defaults, on the evaluation seeds), read back from the run log, keyed by level
    name; `variant` says which (`tuned` for the reference rows and the chosen configurations)."""
    found = {}
    forget = record["experiment"]["forget"]
    for level, entry in sorted(record.get("levels", {}).items()):
        rows = []
        chosen = [*((name, {}, TUNED) for name in REFERENCE_ROWS),
                  *((method, params, TUNED) for method, params in entry.get("configs", {}).items()),
                  *((method, params, DEFAULTS) for method, params in (entry.get("defaults") or {}).items()
                    if method in entry.get("configs", {}) or record.get("budget") == 0)]
        for method, params, variant in chosen:
            for seed in record["eval_seeds"]:
                row = run_log.get(run_key(preset, forget, method, entry["sparsity"], seed, params))
                if row is not None:
                    rows.append({**row, "variant": variant})
        if rows:
            found[level] = pd.DataFrame(rows)
    return found
