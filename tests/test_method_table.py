"""bench/method_table.py on digits: each row is that method's run, and a time limit leaves methods
out by name instead of leaving a table that looks complete."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from study.engine.runner import run_method
from study.methods import build_method
from tests.conftest import FAST_EPOCHS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module("method_table")


def rows_of(text: str) -> dict[str, list[str]]:
    return {cells[0].strip(): [c.strip() for c in cells[1:]]
            for cells in (line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| "))
            if cells[0].strip() not in ("method", "---")}


def test_the_table_holds_each_methods_metrics_and_says_when_it_is_done(bench, cache_dir, digits_random, tmp_path):
    out = tmp_path / "table.md"
    args = ["--preset", "digits", "--forget", "random:10", "--methods", "ga", "--epochs", str(FAST_EPOCHS),
            "--device", "cpu", "--cache-dir", str(cache_dir), "--out", str(out)]
    assert bench.main(args) == 0
    text = out.read_text()
    rows = rows_of(text)
    assert sorted(rows) == ["Original", "Retrain", "ga"]
    ga = run_method(digits_random, build_method("ga"), log=lambda m: None)  # GA at its defaults is deterministic
    assert float(rows["ga"][0]) == pytest.approx(ga.metrics["UA"], abs=0.01)
    assert float(rows["Retrain"][4]) == 0.0
    assert "(in progress)" not in text and "Left out" not in text


def test_a_time_limit_names_what_it_left_out(bench, cache_dir, tmp_path):
    out = tmp_path / "table.md"
    args = ["--preset", "digits", "--forget", "random:10", "class:0", "--methods", "ft", "ga", "--epochs",
            str(FAST_EPOCHS), "--device", "cpu", "--time-limit", "0", "--cache-dir", str(cache_dir), "--out", str(out)]
    assert bench.main(args) == 0
    text = out.read_text()
    assert "Left out by --time-limit 0: forget random:10, forget class:0" in text
    assert rows_of(text) == {}


def test_an_unknown_method_stops_before_any_training(bench, tmp_path):
    from study.core.errors import UserError

    out, cache = tmp_path / "table.md", tmp_path / "cache"
    with pytest.raises(UserError, match="unknown method 'nope'"):
        bench.main(["--preset", "digits", "--forget", "random:10", "--methods", "ga", "nope", "--cache-dir", str(cache),
                    "--out", str(out)])
    assert not out.exists() and not cache.exists()


def test_the_paper_scale_cifar10_command_on_tiny_settings(bench, tmp_path):
    """The GPU command of the docstring (`--preset cifar10`, ResNet-18, crop+flip) on a small image zip on CPU."""
    from tests.test_image_folder import image_files, png_bytes, write_zip

    files = image_files({"train": 8, "test": 2}, seed=2)
    archive = write_zip(tmp_path / "c10.zip", {k: png_bytes(v) for k, v in files.items()})
    out = tmp_path / "table.md"
    args = ["--preset", "cifar10", "--data-root", str(archive), "--train-size", "50", "--val-size", "10",
            "--select-size", "10", "--epochs", "1", "--forget", "random:10", "class:0", "--methods", "ga",
            "--device", "cpu", "--threads", "1", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    assert bench.main(args) == 0
    text = out.read_text()
    assert text.count("### cifar10 (cifar10 image folder c10.zip sha256:") == 2 and "/ resnet18," in text
    assert "forget random:10" in text and "forget class:0" in text and "(in progress)" not in text
