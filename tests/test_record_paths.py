"""Kept records hold paths relative to their folder, and commands relative to where they ran."""
import os

from study.records.paths import portable_command, read_path, stored_path


def test_a_command_names_paths_under_its_directory_relatively(tmp_path):
    argv = ["--out", str(tmp_path / "docs" / "t"), "--cache-dir=" + str(tmp_path / "cache"),
            "--cache-dir", "/elsewhere/c", "--forget", "random:10", "--space", "dau=my space.yaml"]
    command = portable_command("python -m study.compare", argv, cwd=tmp_path)
    assert command == ("python -m study.compare --out docs/t --cache-dir=cache --cache-dir /elsewhere/c "
                       "--forget random:10 --space 'dau=my space.yaml'")


def test_stored_paths_are_read_back_against_their_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder, beside = tmp_path / "docs" / "a", tmp_path / "docs" / "b" / "studies" / "ft"
    assert stored_path(folder / "studies" / "ft", folder) == os.path.join("studies", "ft")
    assert stored_path("docs/b/studies/ft", "docs/a") == os.path.join("..", "b", "studies", "ft")
    assert read_path(stored_path(beside, folder), folder).resolve() == beside
    assert read_path("/abs/x", folder) == type(folder)("/abs/x") and read_path(None, folder) is None
