"""The package's shape: layers that import in one direction, no import cycles, each third-party
library imported in one module, and every status change made by the lifecycle module."""

from __future__ import annotations

import ast
import graphlib
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "enrich"

# Which layers each layer may import (besides itself and the shared base: errors, suggest).
LAYERS = {
    "warehouse": set(),
    "batch": {"warehouse"},
    # The server answers whole batch files in SQL (server/bulk.py), through warehouse/db.py, the
    # only duckdb importer: DuckDB is already a dependency, and a second JSON engine is not.
    "server": {"batch", "warehouse"},
    "project": {"warehouse", "batch"},
    "hosts": {"warehouse", "batch", "server", "project"},
}

ONLY_IN = {
    "duckdb": "warehouse/db.py",
    "sqlglot": "warehouse/sql.py",
    "openai": "batch/client.py",
    "starlette": "server/app.py",
    "uvicorn": "server/serve.py",
    "jinja2": "project/templating.py",
    "rich": "progress.py",
    "jsonschema": "server/schemas.py",
    "filelock": "warehouse/run_lock.py",
    "dbt": "hosts/dbt_materialization.py",
    "polars": "frames.py",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every enrich module or third-party top-level package `path` imports, anywhere in it."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _graph() -> dict[str, set[str]]:
    return {
        name: {
            m for m in _imports(path) if m in MODULES and m != name and not name.startswith(m + ".")
        }
        for name, path in MODULES.items()
    }


def test_no_module_imports_itself_back_through_others() -> None:
    graphlib.TopologicalSorter(_graph()).prepare()  # raises CycleError with the cycle


def test_a_cycle_would_be_seen() -> None:
    graph = _graph()
    graph["enrich.warehouse.db"].add("enrich.batch.ledger")
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else None


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    wrong = {
        (name, target)
        for name, targets in _graph().items()
        if _layer(name) == layer
        for target in targets
        if _layer(target) not in (None, layer, *LAYERS[layer])
        or (_layer(target) is None and target.split(".")[1] in ("cli", "progress"))
    }
    assert not wrong


@pytest.mark.parametrize("library", sorted(ONLY_IN))
def test_each_library_is_imported_in_one_module(library: str) -> None:
    importers = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if any(m == library or m.startswith(library + ".") for m in _imports(path))
    }
    assert importers == {ONLY_IN[library]}


_STATUS_WRITE = re.compile(
    r"(UPDATE|INSERT INTO|DELETE FROM)\s+(_enrich|\{ledger\})\.(requests|batches)\b"
)


def test_only_the_lifecycle_writes_requests_and_submissions() -> None:
    writers = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if _STATUS_WRITE.search(path.read_text(encoding="utf-8"))
    }
    assert writers == {"batch/lifecycle.py"}
