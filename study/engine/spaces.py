"""Search spaces as data: `search_spaces/<name>.yaml`, validated on load.

A space file has these top-level keys (anything else is refused, naming the key):
  description  one line shown by `--help` and in reports
  experiment   preset / dataset / model / forget / sparsity / seeds / epochs / train_size / val_size
  method       the method name (one space, one method), or
  methods      {name: {fixed: ..., search: ...}} - one sub-study per method (the baselines space)
  fixed        hyperparameters held constant
  search       {name: {distribution: args}}: uniform [lo, hi], loguniform [lo, hi],
               int_uniform [lo, hi] (inclusive), choice [values]; `experiment.sparsity` and
               other `experiment.*` keys may be searched too
  grid         {name: [values]}: every value is run (seeds, on/off ablations); a space with a
               grid is sampled by Ray's variant generator instead of Optuna's TPE
  study        num_samples, max_concurrent
Every distribution's range is checked against the method's declared valid range.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ray import tune

from study.core.errors import UserError, yaml_problem
from study.experiment.config import SEARCHABLE_EXPERIMENT_KEYS, SPACE_EXPERIMENT_KEYS
from study.methods import method_class

SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"
TOP_LEVEL_KEYS = {"description", "experiment", "method", "methods", "fixed", "search", "grid", "study"}
STUDY_KEYS = {"num_samples", "max_concurrent"}
DISTRIBUTIONS = {"uniform", "loguniform", "int_uniform", "choice"}


@dataclass
class MethodSpace:
    method: str
    fixed: dict[str, Any] = field(default_factory=dict)
    search: dict[str, dict] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)

    @property
    def uses_optuna(self) -> bool:
        return bool(self.search) and not self.grid

    def param_space(self) -> tuple[dict, dict]:
        """(params, experiment overrides) as Ray Tune search-space objects."""
        params: dict[str, Any] = dict(self.fixed)
        experiment: dict[str, Any] = {}
        for name, spec in self.search.items():
            target, key = (experiment, name.split(".", 1)[1]) if name.startswith("experiment.") else (params, name)
            target[key] = _to_tune(spec)
        for name, values in self.grid.items():
            target, key = (experiment, name.split(".", 1)[1]) if name.startswith("experiment.") else (params, name)
            target[key] = tune.grid_search(list(values))
        return params, experiment

    def defaults(self, scheme: str, dataset: str | None = None, sparsity: float = 0.0) -> dict[str, Any]:
        """The method's documented defaults for the searched hyperparameters, beside the fixed ones:
        the configuration every study runs first (so a tuned result is never worse than the defaults
        on the tuning seed). A default that the search cannot give is refused, naming the key."""
        documented = method_class(self.method).documented_defaults(scheme, dataset, sparsity)
        point = dict(self.fixed)
        for name, spec in self.search.items():
            if name.startswith("experiment."):
                continue
            value = documented.get(name)
            kind, args = next(iter(spec.items()))
            inside = (value in args if kind == "choice" else
                      value is not None and not isinstance(value, bool) and args[0] <= value <= args[1]
                      and (kind != "int_uniform" or int(value) == value))
            if not inside:
                raise UserError(f"{self.method}: its documented default {name}={value!r} is not in search.{name} "
                                f"{spec}; every study runs the defaults first, so the space must contain them")
            point[name] = value
        return point

    def defaults_point(self, experiment: dict, scheme: str) -> dict[str, Any]:
        """`defaults` as OptunaSearch's `points_to_evaluate` entry: the searched keys only, flattened as
        Ray flattens the Trainable's config (`params/lr`, `experiment/sparsity`); a searched experiment
        key takes the experiment's value when the search can give it, else its first choice."""
        defaults = self.defaults(scheme, experiment.get("dataset"), float(experiment.get("sparsity") or 0.0))
        point = {}
        for name, spec in self.search.items():
            if name.startswith("experiment."):
                key = name.split(".", 1)[1]
                choices = next(iter(spec.values()))
                point[f"experiment/{key}"] = experiment.get(key) if experiment.get(key) in choices else choices[0]
            else:
                point[f"params/{name}"] = defaults[name]
        return point

    def values_of(self, experiment_key: str) -> list | None:
        """Every value an experiment field can take in this space (to pre-build artifacts)."""
        name = f"experiment.{experiment_key}"
        if name in self.grid:
            return list(self.grid[name])
        if name in self.search:
            kind, args = next(iter(self.search[name].items()))
            if kind == "choice":
                return list(args)
            raise UserError(f"search over {name} must be a choice (artifacts are built per value)")
        return None


@dataclass
class SearchSpace:
    name: str
    description: str
    experiment: dict[str, Any]
    methods: list[MethodSpace]
    num_samples: int = 8
    max_concurrent: int = 2
    path: Path | None = None


def _to_tune(spec: dict):
    kind, args = next(iter(spec.items()))
    if kind == "uniform":
        return tune.uniform(*args)
    if kind == "loguniform":
        return tune.loguniform(*args)
    if kind == "int_uniform":
        return tune.randint(args[0], args[1] + 1)
    return tune.choice(list(args))


def available_spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def _check_distribution(where: str, spec: Any, hyperparam=None) -> None:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise UserError(f"{where}: expected one distribution like {{loguniform: [1e-4, 1e-1]}}, got {spec!r}")
    kind, args = next(iter(spec.items()))
    if kind not in DISTRIBUTIONS:
        raise UserError(f"{where}: unknown distribution {kind!r}; use one of {', '.join(sorted(DISTRIBUTIONS))}")
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise UserError(f"{where}: choice needs a non-empty list")
        values = args
    else:
        if not isinstance(args, list) or len(args) != 2 or not all(isinstance(a, (int, float)) for a in args):
            raise UserError(f"{where}: {kind} needs [low, high] numbers, got {args!r}")
        low, high = args
        if not low < high:
            raise UserError(f"{where}: invalid range [{low}, {high}]: low must be below high")
        if kind == "loguniform" and low <= 0:
            raise UserError(f"{where}: invalid range [{low}, {high}]: loguniform needs low > 0")
        if kind == "int_uniform" and (int(low) != low or int(high) != high):
            raise UserError(f"{where}: int_uniform needs integer bounds")
        values = [low, high]
    if hyperparam is not None:
        for value in values:
            try:
                hyperparam.coerce(value, where)
            except UserError as err:
                raise UserError(f"{where}: invalid range: {err}") from None


def _method_space(where: str, method: str, fixed: dict, search: dict, grid: dict) -> MethodSpace:
    cls = method_class(method)
    declared = {h.name: h for h in cls.hyperparams}
    for section, entries in (("fixed", fixed), ("search", search), ("grid", grid)):
        if not isinstance(entries, dict):
            raise UserError(f"{where}: '{section}' must be a mapping")
        for name in entries:
            if name.startswith("experiment."):
                if name.split(".", 1)[1] not in SEARCHABLE_EXPERIMENT_KEYS or section == "fixed":
                    raise UserError(f"{where}: unknown key {section}.{name}; searchable experiment keys are "
                                    f"{', '.join('experiment.' + k for k in sorted(SEARCHABLE_EXPERIMENT_KEYS))}")
                continue
            if name not in declared:
                raise UserError(f"{where}: unknown key {section}.{name}: {method} has no hyperparameter {name!r} "
                                f"(it takes {', '.join(declared) or 'none'})")
    for name, value in fixed.items():
        declared[name].coerce(value, f"{where}: fixed.{name}")
    for name, spec in search.items():
        _check_distribution(f"{where}: search.{name}", spec, declared.get(name))
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: grid.{name} must be a non-empty list")
        if name in declared:
            for value in values:
                declared[name].coerce(value, f"{where}: grid.{name}")
    overlap = (set(fixed) & set(search)) | (set(fixed) & set(grid)) | (set(search) & set(grid))
    if overlap:
        raise UserError(f"{where}: {', '.join(sorted(overlap))} appears in more than one of fixed/search/grid")
    return MethodSpace(method, dict(fixed), dict(search), dict(grid))


def load_space(name_or_path: str) -> SearchSpace:
    """Load and validate a space by name (`classwise`) or by path to a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SPACES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise UserError(f"unknown search space {name_or_path!r}; available: {', '.join(available_spaces())} "
                        "(or a path to a .yaml file)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML: {yaml_problem(err)}") from None
    where = path.name
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a search space must be a mapping")
    unknown = set(raw) - TOP_LEVEL_KEYS
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}")
    experiment = raw.get("experiment") or {}
    bad = set(experiment) - SPACE_EXPERIMENT_KEYS
    if bad:
        raise UserError(f"{where}: unknown key(s) experiment.{', experiment.'.join(sorted(bad))}; "
                        f"allowed: {', '.join(sorted(SPACE_EXPERIMENT_KEYS))}")
    seeds = experiment.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise UserError(f"{where}: experiment.seeds must be a non-empty list of integers")
    study = raw.get("study") or {}
    bad = set(study) - STUDY_KEYS
    if bad:
        raise UserError(f"{where}: unknown key(s) study.{', study.'.join(sorted(bad))}")
    if ("method" in raw) == ("methods" in raw):
        raise UserError(f"{where}: give exactly one of 'method' (one method) or 'methods' (one sub-study each)")
    if "method" in raw:
        grid = dict(raw.get("grid") or {})
        if len(seeds) > 1:
            grid.setdefault("experiment.seed", seeds)
        methods = [_method_space(where, raw["method"], raw.get("fixed") or {}, raw.get("search") or {}, grid)]
    else:
        if not isinstance(raw["methods"], dict) or not raw["methods"]:
            raise UserError(f"{where}: 'methods' must map method names to {{fixed, search}}")
        methods = []
        for method, section in raw["methods"].items():
            section = section or {}
            extra = set(section) - {"fixed", "search", "grid"}
            if extra:
                raise UserError(f"{where}: unknown key(s) methods.{method}.{', '.join(sorted(extra))}")
            grid = dict(section.get("grid") or {})
            if len(seeds) > 1:
                grid.setdefault("experiment.seed", seeds)
            methods.append(_method_space(f"{where}: methods.{method}", method, section.get("fixed") or {},
                                         section.get("search") or {}, grid))
    num_samples = study.get("num_samples", 8)
    max_concurrent = study.get("max_concurrent", 2)
    for key, value in (("num_samples", num_samples), ("max_concurrent", max_concurrent)):
        if not isinstance(value, int) or value < 1:
            raise UserError(f"{where}: study.{key} must be a positive integer")
    experiment = {k: v for k, v in experiment.items() if k != "seeds"}
    experiment["seed"] = seeds[0]
    return SearchSpace(path.stem, str(raw.get("description", "")), experiment, methods, num_samples,
                       max_concurrent, path)
