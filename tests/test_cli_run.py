"""The one-run CLI end to end on digits, `load_run`, and its bad-input behaviour."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from study import load_run
from study.evaluation.metrics import mia_efficacy, true_label_confidence
from tests.cli import run_in_process


def run_cli(*args, cache=None, module="study.run"):
    command = [sys.executable, "-m", module, *args]
    if cache is not None:
        command += ["--cache-dir", str(cache)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    out = root / "run"
    result = run_cli("--method", "ft", "-p", "epochs=1", "--epochs", "5", "--threads", "2", "--out", str(out),
                     cache=root / "cache")
    assert result.returncode == 0, result.stderr
    return root, out, result.stdout


def test_run_writes_a_complete_folder(finished_run):
    _, out, stdout = finished_run
    for name in ("metrics.json", "model.pt", "config.json", "splits.npz", "margins.npz"):
        assert (out / name).exists(), name
    with np.load(out / "margins.npz") as margins, np.load(out / "splits.npz") as splits:
        assert {name: len(margins[name]) for name in ("forget", "retain", "test")} == {
            name: len(splits[name]) for name in ("forget", "retain", "test")}
    assert "Avg.Disparity" in stdout and "retrain" in stdout and "ft" in stdout
    assert "scored on the test set" in stdout
    references = json.loads((out / "metrics.json").read_text())["references"]
    assert set(references) == {"original_digest", "retrain_digest", "forget_digest"}
    assert all(len(d) == 16 for d in references.values())


def test_load_run_recomputes_the_metrics_without_project_code(finished_run):
    _, out, _ = finished_run
    run = load_run(out)
    recorded = json.loads((out / "metrics.json").read_text())["metrics"]
    d, s = run.data, run.splits
    with torch.no_grad():
        predict = lambda idx, x: run.model(x[idx]).argmax(1)  # noqa: E731
        forget_acc = (predict(s.forget, d.train_x) == d.train_y[s.forget]).float().mean().item() * 100
        retain_acc = (predict(s.retain, d.train_x) == d.train_y[s.retain]).float().mean().item() * 100
        test_acc = (predict(s.test, d.test_x) == d.test_y[s.test]).float().mean().item() * 100
    assert recorded["UA"] == pytest.approx(100 - forget_acc, abs=1e-6)
    assert recorded["RA"] == pytest.approx(retain_acc, abs=1e-6)
    assert recorded["TA"] == pytest.approx(test_acc, abs=1e-6)
    with torch.no_grad():
        conf = {k: true_label_confidence(run.model(x[idx]), y[idx]) for k, (x, y, idx) in {
            "retain": (d.train_x, d.train_y, s.retain), "forget": (d.train_x, d.train_y, s.forget),
            "test": (d.test_x, d.test_y, s.test)}.items()}
    assert recorded["MIA-Efficacy"] == pytest.approx(mia_efficacy(conf["retain"], conf["test"], conf["forget"]))
    assert not run.model.training


def test_second_run_reuses_the_cache(finished_run):
    root, _, _ = finished_run
    result = run_in_process("study.run", "--method", "original", "--epochs", "5", "--cache-dir", str(root / "cache"))
    assert result.returncode == 0, result.stderr
    assert "reusing cached model" in result.stdout and "training original" not in result.stdout


def test_config_file_reruns_the_same_run(finished_run):
    root, out, _ = finished_run
    again = root / "again"
    result = run_cli("--config", str(out / "config.json"), "--out", str(again), cache=root / "cache")
    assert result.returncode == 0, result.stderr
    first = json.loads((out / "metrics.json").read_text())["metrics"]
    second = json.loads((again / "metrics.json").read_text())["metrics"]
    for key in ("UA", "RA", "TA", "MIA-Efficacy"):
        assert abs(first[key] - second[key]) <= 0.5


def test_method_config_takes_the_experiment_from_the_flags(finished_run):
    """bench/configs/*.yaml hold only `method` and `params`: the flags give the experiment."""
    root, out, _ = finished_run
    method_config = root / "ft-method.yaml"
    method_config.write_text("method: ft\nparams:\n  epochs: 1\n")
    again = root / "from-method-config"
    result = run_cli("--config", str(method_config), "--epochs", "5", "--threads", "2", "--out", str(again),
                     cache=root / "cache")
    assert result.returncode == 0, result.stderr
    first = json.loads((out / "metrics.json").read_text())
    second = json.loads((again / "metrics.json").read_text())
    assert json.loads((again / "config.json").read_text())["experiment"] == json.loads(
        (out / "config.json").read_text())["experiment"]
    assert second["metrics"]["UA"] == first["metrics"]["UA"]
    assert second["metrics"]["TA"] == first["metrics"]["TA"]


def test_mia_boundary_reads_a_run_folder_and_agrees_with_its_metrics(finished_run):
    _, out, _ = finished_run
    result = run_in_process("analysis.mia_boundary", str(out))
    assert result.returncode == 0, result.stderr
    recorded = json.loads((out / "metrics.json").read_text())["metrics"]["MIA-Efficacy"]
    assert f"MIA-Efficacy (forget called non-member): {recorded:.1f}" in result.stdout
    assert "note:" not in result.stdout


def test_existing_output_is_not_overwritten(finished_run):
    root, out, _ = finished_run
    result = run_in_process("study.run", "--method", "original", "--epochs", "5", "--out", str(out), "--cache-dir",
                            str(root / "cache"))
    assert result.returncode == 2 and "already exists" in result.stderr


def _one_error_line(result):
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args,needle", [
    (["--dataset", "imagenet"], "unknown dataset"),
    (["--model", "vgg"], "unknown model"),
    (["--method", "magic"], "unknown method"),
    (["--forget", "random:0"], "strictly between"),
    (["--forget", "random:150"], "strictly between"),
    (["--forget", "class:99"], "0..9"),
    (["--forget", "sideways"], "malformed forget spec"),
    (["--dataset", "fashion-mnist", "--data-root", "/no/such/folder"], "dataset-fashion-mnist"),
    (["--dataset", "cifar10", "--data-root", "/no/such/folder"], "cifar-10-batches-py"),
    (["--method", "dau", "-p", "alpha=-1"], "alpha"),
    (["--method", "dau", "-p", "attacker_pretrain_iters=2.5"], "integer"),
    (["--config", "/no/such/best.yaml"], "not found"),
    (["--sparsity", "1.5"], "sparsity"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, needle):
    result = run_in_process("study.run", *args, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"))
    _one_error_line(result)
    assert needle in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_real_command_prints_one_line_on_bad_input(tmp_path):
    """The cases above run the entry point in this process; this one starts `python -m study.run`."""
    result = run_cli("--method", "magic", "--out", str(tmp_path / "out"), cache=tmp_path / "cache")
    _one_error_line(result)
    assert "unknown method" in result.stderr and not (tmp_path / "out").exists()


def test_corrupted_cached_model_is_one_clear_line(finished_run, tmp_path):
    root, _, _ = finished_run
    cache = tmp_path / "cache"
    import shutil

    shutil.copytree(root / "cache", cache)
    for model_file in cache.glob("*/model.pt"):
        model_file.write_bytes(b"garbage")
    result = run_in_process("study.run", "--method", "original", "--epochs", "5", "--out", str(tmp_path / "out"),
                            "--cache-dir", str(cache))
    _one_error_line(result)
    assert "corrupted" in result.stderr and not (tmp_path / "out").exists()


def test_corrupted_run_folder_model(finished_run, tmp_path):
    _, out, _ = finished_run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "model.pt").write_bytes(b"\x00" * 10)
    from study.core.errors import UserError

    with pytest.raises(UserError, match="corrupted"):
        load_run(copy)


def test_list_methods():
    result = run_in_process("study.run", "--list-methods")
    assert result.returncode == 0
    for name in ("dau", "ft", "ga", "ff", "iu", "scrub", "salun"):
        assert f"{name}:" in result.stdout


def test_a_command_may_declare_an_experiment_flag_its_own_way():
    """A benchmark that takes several forget schemes declares --forget itself; the shared flags
    leave it out, and the overrides they read do not carry it."""
    import argparse

    from study.cli_common import add_experiment_arguments, experiment_overrides

    parser = argparse.ArgumentParser()
    add_experiment_arguments(parser, exclude={"forget"}, preset_default="fmnist-proxy")
    parser.add_argument("--forget", nargs="+", default=["random:10"])
    args = parser.parse_args(["--forget", "random:10", "class:0", "--epochs", "3"])
    assert args.preset == "fmnist-proxy" and args.forget == ["random:10", "class:0"]
    overrides = experiment_overrides(args)
    assert "forget" not in overrides and overrides["epochs"] == 3 and overrides["dataset"] is None
    with pytest.raises(ValueError, match="not experiment fields"):
        add_experiment_arguments(argparse.ArgumentParser(), exclude={"forgett"})


def test_the_run_prints_the_values_it_resolves_not_null():
    from study.experiment.config import experiment_from_preset
    from study.methods import build_method
    from study.run import resolved_params

    random_run = resolved_params(build_method("dau"), experiment_from_preset("digits"))
    classwise = resolved_params(build_method("dau"), experiment_from_preset("digits", forget="class:3"))
    assert random_run["lr"] == 0.01 and classwise["lr"] == 0.02 and random_run["epochs"] == 3  # the reference's
    assert resolved_params(build_method("dau", {"lr": 0.5}), experiment_from_preset("digits"))["lr"] == 0.5
