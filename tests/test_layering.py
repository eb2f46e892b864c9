"""The layers of README's Layout, enforced: a module imports only its own layer and the ones listed
above it, except for the few deliberate imports in `EXCEPTIONS`, each with its reason.

Imports are read from the source (function-level ones too), so a wrong-way import fails here even
where it would not make an import cycle.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# top first: each layer may import the ones before it
LAYERS = ("study.core", "study.evaluation", "study.experiment", "study.methods", "study.records", "study.engine",
          "study commands", "analysis")
EXCEPTIONS = {
    ("study.evaluation.heldout", "study.experiment"): "the held-out judge trains reference models on a prepared "
                                                      "experiment's cache",
    ("study.evaluation.heldout", "study.methods.dau.attacker"): "its fresh SAMIA judge is DAU's attacker "
                                                                "architecture, trained afresh",
    ("study.run", "analysis.run_tables"): "the command prints its table with analysis' formatter",
    ("study.tune", "analysis.rank"): "the command ends by printing the study's ranking",
    ("study.compare", "analysis.compare_table"): "the command renders table.md as analysis.compare_table does",
}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "analysis":
        return "analysis"
    if parts[0] != "study" or len(parts) == 1:
        return None  # a third-party package, or the `study` package's own re-exports
    return f"study.{parts[1]}" if f"study.{parts[1]}" in LAYERS else "study commands"


def imports(path: Path) -> set[tuple[str, int]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found |= {(alias.name, node.lineno) for alias in node.names}
    return found


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def excepted(importer: str, imported: str) -> bool:
    return any(importer == a and (imported == b or imported.startswith(b + ".")) for a, b in EXCEPTIONS)


def test_no_module_imports_a_layer_below_its_own():
    wrong = []
    for path in sorted([*ROOT.glob("study/**/*.py"), *ROOT.glob("analysis/**/*.py")]):
        importer = module_name(path)
        own = layer_of(importer) or "study commands"  # the `study` package itself re-exports for users
        for imported, line in imports(path):
            target = layer_of(imported)
            if target is None or excepted(importer, imported):
                continue
            if LAYERS.index(target) > LAYERS.index(own):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {imported} ({target} is below {own})")
    assert not wrong, "wrong-way imports:\n" + "\n".join(wrong)


def test_every_exception_is_still_needed():
    """An exception nobody uses any more is removed, so the list says what the code does."""
    used = set()
    for path in sorted([*ROOT.glob("study/**/*.py"), *ROOT.glob("analysis/**/*.py")]):
        importer = module_name(path)
        used |= {(a, b) for imported, _ in imports(path) for a, b in EXCEPTIONS
                 if importer == a and (imported == b or imported.startswith(b + "."))}
    assert used == set(EXCEPTIONS)


def test_a_wrong_way_import_is_caught(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from study.engine.study import run_study\n")
    (imported, _), = imports(module)
    assert LAYERS.index(layer_of(imported)) > LAYERS.index("study.core")


def test_bench_scripts_import_the_installed_package_without_path_edits():
    """bench/ scripts run as `python bench/<script>.py` against the installed package (`pip install -e .`):
    none edits sys.path to find it."""
    editing = [path.name for path in sorted(ROOT.glob("bench/*.py"))
               if any(isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                      and node.value.id == "sys" for node in ast.walk(ast.parse(path.read_text())))]
    assert not editing, f"bench scripts that touch sys.path: {', '.join(editing)}"
