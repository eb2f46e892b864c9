"""Every command with malformed arguments and files: one clear error line, non-zero exit, no traceback.

(study.run, study.tune, study.audit and the analysis commands also have focused bad-input tests
next to their features; this sweep covers wrong types, out-of-range numbers and broken files
across all of them.) The entry points run in this process (tests/cli.py); the NaN-loss case
starts the real command, as a user would meet it.
"""
import subprocess
import sys

import pytest

from tests.cli import run_in_process as _run


def _run_command(module, *args, timeout=180):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout)


def _assert_clear_failure(result, needle=None):
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.returncode != 0 and lines, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "error:" in lines[-1], result.stderr
    if needle:
        assert needle in lines[-1], result.stderr


@pytest.mark.parametrize("module,args,needle", [
    ("study.run", ["--epochs", "ten"], "invalid int value"),
    ("study.run", ["--method", "ft", "-p", "epochs=-3"], "epochs"),
    ("study.run", ["--method", "ft", "-p", "epochs=many"], "epochs"),
    ("study.run", ["--method", "ft", "-p", "colour=red"], "colour"),
    ("study.run", ["--threads", "0"], "--threads"),
    ("study.tune", ["--space", "classwise", "--num-samples", "x"], "invalid int value"),
    ("study.tune", ["--space", "classwise", "--objective", "vibes"], "invalid choice"),
    ("study.audit", ["--k", "abc"], "invalid int value"),
    ("study.audit", ["--workers", "0"], "--workers"),
    ("study.export", ["/no/such/study", "--out", "/tmp/never.yaml"], "is not a directory"),
    ("analysis.rank", ["--top", "-"], None),
    ("analysis.report", [], None),
    ("analysis.mia_boundary", ["/no/such/run"], "not a run folder"),
    ("analysis.mia_boundary", [], None),
    ("analysis.runs", ["/no/such/run"], "not a finished run folder"),
    ("analysis.runs", [], None),
])
def test_malformed_arguments(tmp_path, module, args, needle):
    _assert_clear_failure(_run(module, *args, "--cache-dir", str(tmp_path)) if module.startswith("study.")
                          and module != "study.export" else _run(module, *args), needle)


def test_bad_config_files_for_study_run(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    broken = tmp_path / "broken.yaml"
    broken.write_text("method: [unclosed")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("method: dau\nparams: {alpha: banana}\nexperiment: {dataset: digits}\n")
    neither = tmp_path / "neither.yaml"
    neither.write_text("alpha: 0.5\n")
    listed = tmp_path / "listed.yaml"
    listed.write_text("method: dau\nparams: [0.5, 0.1]\n")
    for path in (empty, broken, wrong, neither, listed):
        result = _run("study.run", "--config", str(path), "--cache-dir", str(tmp_path / "c"), "--out",
                      str(tmp_path / "out"))
        _assert_clear_failure(result)
        assert not (tmp_path / "out").exists()


def test_corrupted_study_state(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    (study / "experiment_state-2026-01-01_00-00-00.json").write_text("{not json")
    for module in ("analysis.rank", "analysis.table", "study.export"):
        extra = ["--out", str(tmp_path / "best.yaml")] if module == "study.export" else []
        _assert_clear_failure(_run(module, str(study), *extra))
    assert not (tmp_path / "best.yaml").exists()


def test_nan_loss_is_one_clear_line_and_no_result(tmp_path, digits_random, cache_dir):
    from tests.conftest import FAST_EPOCHS

    result = _run_command("study.run", "--method", "dau", "-p", "gamma=3e38", "-p", "attacker_pretrain_iters=5", "-p",
                  "epochs=1", "--epochs", str(FAST_EPOCHS), "--cache-dir", str(cache_dir), "--out", str(tmp_path / "out"))
    _assert_clear_failure(result, "loss became")
    assert result.returncode == 2 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("module,option,text,needle", [
    ("study.run", "--config", "method: ft\nparams: {lr: [0.1\n", "line 3, column 1: expected ',' or ']'"),
    ("study.tune", "--space", "method: dau\nsearch:\n  lr: {loguniform: [1, 2]\n  x: 1\n",
     "line 4, column 3: expected ',' or '}'"),
])
def test_broken_yaml_names_its_line_and_column(tmp_path, module, option, text, needle):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    _assert_clear_failure(_run(module, option, str(path)), needle)
