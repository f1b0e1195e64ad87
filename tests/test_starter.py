"""A project is recognised before anything is written; ``enrich init`` starts one that runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from enrich import cli


def test_a_folder_that_is_not_a_project_is_refused_and_left_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "--offline", "--project-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "is not an enrich project" in err and "enrich init" in err
    assert list(tmp_path.iterdir()) == []


def test_a_project_dir_that_does_not_exist_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    assert cli.main(["run", "--project-dir", str(missing)]) == 1
    assert "no such folder" in capsys.readouterr().err and not missing.exists()


def test_init_starts_a_project_that_runs_offline_and_only_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "new"
    assert cli.main(["init", "--project-dir", str(root)]) == 0
    assert "enrich run --offline" in capsys.readouterr().out
    assert cli.main(["run", "--offline", "--project-dir", str(root)]) == 0
    assert "3 succeeded" in capsys.readouterr().out
    assert cli.main(["init", "--project-dir", str(root)]) == 1
    assert "already an enrich project" in capsys.readouterr().err


def test_init_keeps_an_existing_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mine"\n')
    assert cli.main(["init", "--project-dir", str(tmp_path)]) == 0
    text = (tmp_path / "pyproject.toml").read_text()
    assert text.startswith('[project]\nname = "mine"\n') and "[tool.enrich]" in text
