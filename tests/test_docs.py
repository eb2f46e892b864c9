"""The README and docs/RESULTS.md name files that exist and commands the current code accepts.

A figure is only as good as the command that reproduces it: every path these documents name
(under docs/, bench/, search_spaces/, study/, analysis/, tests/) must exist, and every option of
every `python -m study.*`, `python -m analysis.*` or `python bench/*.py` command they show must be
one that command defines (in its own module, or among the shared experiment flags).
"""
import re
from pathlib import Path

import pytest

from study.experiment.config import EXPERIMENT_FIELDS

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "RESULTS.md"]
PATH = re.compile(r"(?<![\w/.-])((?:docs|bench|search_spaces|study|analysis|tests)/[\w./*-]+)")
COMMAND = re.compile(r"python (?:-m ((?:study|analysis)\.\w+)|(bench/\w+\.py))((?: [^`|\n]*)?)")
SHARED_FLAGS = (ROOT / "study" / "cli_common.py").read_text() + " ".join(
    f'"{field.flag}"' for field in EXPERIMENT_FIELDS)


def _text(document: Path) -> str:
    return document.read_text().replace("\\\n", " ")  # join continued command lines


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_named_file_exists(document):
    missing = []
    for match in PATH.finditer(_text(document)):
        name = match.group(1).rstrip(".,:;)")
        if "<" in name or not name:
            continue
        if not (list(ROOT.glob(name)) if "*" in name else (ROOT / name).exists()):
            missing.append(name)
    assert not missing, f"{document.name} names files that do not exist: {sorted(set(missing))}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_command_option_exists(document):
    unknown = []
    for match in COMMAND.finditer(_text(document)):
        module, script, rest = match.groups()
        source_file = ROOT / script if script else ROOT / (module.replace(".", "/") + ".py")
        assert source_file.is_file(), f"{document.name}: no such command {module or script}"
        source = source_file.read_text()
        for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest):
            if f'"{flag}"' not in source and f'"{flag}"' not in SHARED_FLAGS:
                unknown.append(f"{module or script} {flag}")
    assert not unknown, f"{document.name} shows options the commands do not define: {sorted(set(unknown))}"


def test_the_readme_quotes_no_test_count_that_could_go_stale():
    """Counts and timings of the README itself live in docs/readme-numbers.md, written by
    bench/readme_numbers.py, not in prose that every new test would make wrong."""
    import re

    text = (ROOT / "README.md").read_text()
    assert not re.findall(r"\b\d+ (?:tests|passed)\b", text)
    assert "docs/readme-numbers.md" in text and (ROOT / "bench" / "readme_numbers.py").is_file()
