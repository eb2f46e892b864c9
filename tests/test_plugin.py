"""The plug-in contract: a method is one class plus one search-space section, nothing else.

The toy methods below are defined here and nowhere in the project. Defining them registers them;
they then run through `study.run` and `study.compare` (a 2-trial Ray study, whose workers import
this module to find them), exactly as the project's own methods do. The studies run as a
user of a plug-in would start them: a process that imports the plug-in's module, then calls the
command's entry point (each in a process of its own, so Ray starts afresh).
"""
import json
import subprocess
import sys

import pytest
import torch
import yaml

from study.methods.base import Hyperparam, UnlearningMethod
from tests.cli import run_in_process
from tests.conftest import FAST_EPOCHS


class ShrinkHead(UnlearningMethod):
    """Test-only: each epoch scales the classifier head's weights by `factor`."""

    name = "toy-shrink"
    summary = "test-only: scale the classifier head each epoch"
    hyperparams = (Hyperparam("factor", float, 0.9, 0.0, 1.0, help="scale per epoch"),
                   Hyperparam("epochs", int, 1, 1, 3, help="epochs"))

    def run_epoch(self, epoch: int) -> dict[str, float]:
        with torch.no_grad():
            self.model.head.weight.mul_(self.factor)
        return {"head_norm": float(self.model.head.weight.detach().norm())}


class ZeroForgetClassRow(UnlearningMethod):
    """Test-only, one-shot: zero the head row of the forget set's most common label."""

    name = "toy-oneshot"
    summary = "test-only: zero one head row, once"
    one_shot = True

    def apply(self) -> dict[str, float]:
        label = int(torch.mode(self.data.forget_y).values)
        with torch.no_grad():
            self.model.head.weight[label].zero_()
        return {"zeroed_row": float(label)}


TOY_SPACE = {"description": "the toy method's space", "experiment": {"preset": "digits", "forget": "random:10"},
             "methods": {"toy-shrink": {"search": {"factor": {"uniform": [0.5, 1.0]}}}},
             "study": {"num_samples": 2, "max_concurrent": 2}}


@pytest.fixture(scope="module")
def toy_space(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "toy.yaml"
    path.write_text(yaml.safe_dump(TOY_SPACE))
    return path


def test_a_method_overriding_unlearn_is_refused_when_defined():
    """Ray trials only call start/epoch; an overridden unlearn would silently do nothing there."""
    with pytest.raises(TypeError, match="overrides unlearn"):
        class Sneaky(UnlearningMethod):  # noqa: F841
            name = "toy-sneaky"

            def unlearn(self, model, data, callbacks=()):
                return model


def test_the_toy_methods_run_and_are_listed(cache_dir, digits_random):
    listed = run_in_process("study.run", "--list-methods")
    assert "toy-shrink: test-only" in listed.stdout and "factor (float, default 0.9" in listed.stdout
    for method, params in (("toy-shrink", ["-p", "factor=0.5"]), ("toy-oneshot", [])):
        result = run_in_process("study.run", "--method", method, *params, "--epochs", str(FAST_EPOCHS),
                                "--cache-dir", str(cache_dir), "--quiet")
        assert result.returncode == 0, result.stderr[-2000:]
        assert any(line.startswith(method) for line in result.stdout.splitlines())


def _with_plugin(command: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m study.<command> ARGS` in a process that first imports this module (the plug-in)."""
    launcher = f"import {__name__}; from study.{command} import run; run()"
    return subprocess.run([sys.executable, "-c", launcher, *args], capture_output=True, text=True, timeout=600)


def test_a_toy_method_is_tuned_and_compared(cache_dir, digits_random, toy_space, tmp_path):
    """`study.compare` tunes the toy method in a Ray study (its workers import this module to find
    it, as `study.tune`'s do: one trial path) and tabulates it; the probes are tested elsewhere."""
    compared = _with_plugin("compare", "--methods", "toy-shrink", "--space", f"toy-shrink={toy_space}",
                            "--budget", "2", "--tune-seeds", "0", "--eval-seeds", "1", "--epochs", str(FAST_EPOCHS),
                            "--relearn", "0", "--no-heldout", "--cache-dir", str(cache_dir),
                            "--out", str(tmp_path / "compare"), "--quiet")
    assert compared.returncode == 0, compared.stdout[-2000:] + compared.stderr[-2000:]
    trials = list((tmp_path / "compare" / "studies").glob("**/trial_*/params.json"))
    assert len(trials) == 2
    assert all(json.loads(p.read_text())["method_module"] == __name__ for p in trials)
    table = (tmp_path / "compare" / "table.md").read_text()
    assert "| toy-shrink |" in table and "Retrain" in table
