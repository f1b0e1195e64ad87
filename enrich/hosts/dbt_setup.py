"""``enrich dbt init``: add enrich's dbt package to a dbt project's packages.yml.

The package is :data:`PACKAGE_DIR`, shipped inside the installed enrich; the project names it as a
local package (its absolute path), so ``dbt deps`` installs the materialization of the enrich that
runs it. The file is edited as text, so its comments and other entries stay as they were.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ProjectError

PACKAGE_DIR = Path(__file__).resolve().parent / "dbt_package"

_PACKAGES_KEY = re.compile(r"^packages:[ \t]*(#.*)?$", re.MULTILINE)
_EMPTY_PACKAGES = re.compile(r"^packages:[ \t]*\[[ \t]*\][ \t]*(#.*)?$", re.MULTILINE)
# An entry for enrich's package, wherever an earlier install put it.
_OUR_ENTRY = re.compile(
    r"^(?P<lead>[ \t]*-[ \t]*local:[ \t]*)(?P<path>[\"']?[^\n]*/hosts/dbt_package/?[\"']?)[ \t]*$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class DbtInit:
    """What :func:`init_dbt_project` did."""

    path: Path  # the packages file
    changed: bool  # False: it already named this package
    dbt_installed: bool  # dbt-core and dbt-duckdb can be imported here


def init_dbt_project(root: Path) -> DbtInit:
    """Add enrich's dbt package to the dbt project at `root`: to its packages.yml (or the
    ``packages:`` of its dependencies.yml), made if missing; an entry for the package at another
    path (an earlier install) is pointed here."""
    if not (root / "dbt_project.yml").is_file():
        raise ProjectError(
            f"{root.resolve()} has no dbt_project.yml: run 'enrich dbt init' in a dbt project's "
            "folder, or name it: enrich dbt init PATH"
        )
    path = _packages_file(root)
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    after = add_package(before, PACKAGE_DIR)
    if after != before:
        path.write_text(after, encoding="utf-8")
    installed = importlib.util.find_spec("dbt.adapters.duckdb") is not None
    return DbtInit(path, after != before, installed)


def add_package(text: str, package: Path) -> str:
    """`text` (a packages.yml) naming `package` as a local package.

    >>> print(add_package("", Path("/site/enrich/hosts/dbt_package")), end="")
    packages:
      - local: "/site/enrich/hosts/dbt_package"
    >>> print(add_package("packages:\\n- package: dbt-labs/dbt_utils\\n", Path("/e")), end="")
    packages:
    - local: "/e"
    - package: dbt-labs/dbt_utils
    """
    quoted = json.dumps(str(package))  # a YAML double-quoted scalar
    found = _OUR_ENTRY.search(text)
    if found:
        return text[: found.start("path")] + quoted + text[found.end("path") :]
    if _EMPTY_PACKAGES.search(text):
        text = _EMPTY_PACKAGES.sub("packages:", text, count=1)
    key = _PACKAGES_KEY.search(text)
    if key is None:
        lead = text if not text or text.endswith("\n") else text + "\n"
        return f"{lead}packages:\n  - local: {quoted}\n"
    indent = _item_indent(text[key.end() :])
    return f"{text[: key.end()]}\n{indent}- local: {quoted}{text[key.end() :]}"


def _item_indent(rest: str) -> str:
    """The indentation of the list's first item, to add ours beside it (two spaces if none)."""
    for line in rest.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return line[: len(line) - len(line.lstrip())] if stripped.startswith("-") else "  "
    return "  "


def _packages_file(root: Path) -> Path:
    """packages.yml, unless the project lists its packages in dependencies.yml."""
    packages, dependencies = root / "packages.yml", root / "dependencies.yml"
    if packages.exists() or not dependencies.is_file():
        return packages
    listed = _PACKAGES_KEY.search(dependencies.read_text(encoding="utf-8"))
    return dependencies if listed else packages
