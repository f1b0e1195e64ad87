"""``enrich dbt init``: enrich's dbt package added to a dbt project's packages, the file's other
entries and comments kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enrich import ProjectError
from enrich.cli import main
from enrich.hosts.dbt_setup import PACKAGE_DIR, add_package, init_dbt_project

ENTRY = f"local: {json.dumps(str(PACKAGE_DIR))}"


def _project(tmp_path: Path, **files: str) -> Path:
    (tmp_path / "dbt_project.yml").write_text("name: shop\nprofile: shop\n")
    for name, text in files.items():
        (tmp_path / name.replace("_", ".")).write_text(text)
    return tmp_path


def test_init_writes_packages_yml_and_a_second_init_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path)
    assert main(["dbt", "init", str(root)]) == 0
    assert (root / "packages.yml").read_text() == f"packages:\n  - {ENTRY}\n"
    assert "added enrich's dbt package" in capsys.readouterr().out
    assert main(["dbt", "init", "--project-dir", str(root)]) == 0
    assert "already there" in capsys.readouterr().out
    assert (root / "packages.yml").read_text() == f"packages:\n  - {ENTRY}\n"


def test_the_package_folder_is_a_dbt_package_with_the_materialization() -> None:
    assert "name: enrich" in (PACKAGE_DIR / "dbt_project.yml").read_text()
    macros = (PACKAGE_DIR / "macros" / "enrich.sql").read_text()
    assert "{% materialization enrich, adapter='duckdb'" in macros


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (  # other packages and comments stay, ours goes first at their indentation
            "# deps\npackages:  # pinned\n    - package: dbt-labs/dbt_utils\n"
            "      version: 1.3.0\n",
            "# deps\npackages:  # pinned\n    - {e}\n    - package: dbt-labs/dbt_utils\n"
            "      version: 1.3.0\n",
        ),
        ("packages: []\n", "packages:\n  - {e}\n"),
        ("# nothing yet", "# nothing yet\npackages:\n  - {e}\n"),
        (  # an earlier install's path is pointed here
            'packages:\n  - local: "/old/venv/site-packages/enrich/hosts/dbt_package"\n',
            "packages:\n  - {e}\n",
        ),
    ],
)
def test_add_package_edits_the_file_as_text(before: str, after: str) -> None:
    assert add_package(before, PACKAGE_DIR) == after.format(e=ENTRY)


def test_a_project_listing_packages_in_dependencies_yml_gets_it_there(tmp_path: Path) -> None:
    root = _project(tmp_path, dependencies_yml="projects:\n  - name: core\npackages:\n")
    done = init_dbt_project(root)
    assert done.path == root / "dependencies.yml" and done.changed
    assert not (root / "packages.yml").exists()


def test_a_folder_that_is_not_a_dbt_project_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"has no dbt_project\.yml: run 'enrich dbt init' in"):
        init_dbt_project(tmp_path)
