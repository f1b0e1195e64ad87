"""How a model becomes a relation in DuckDB, one entry per ``config(materialized=...)`` value.

:data:`MATERIALIZATIONS` is the whole list, declared as data: a materialization names the config
keys it accepts beyond the common ones and a build function. Adding one (the enrichment
materializer) is one more entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .db import Database

if TYPE_CHECKING:
    from .project import Model, Project

COMMON_CONFIG = frozenset({"materialized", "tags", "dialect", "enabled"})


@dataclass(frozen=True)
class BuildContext:
    """What a build function may use: its own connection, the project, and the run's flags."""

    db: Database
    project: Project
    full_refresh: bool = False


@dataclass(frozen=True)
class Outcome:
    """What building one model did; `extra` lands in run_results.json beside the common fields."""

    rows_affected: int | None
    message: str
    extra: Mapping[str, Any] = field(default_factory=dict)


Build = Callable[["Model", BuildContext], Outcome]


@dataclass(frozen=True)
class Materialization:
    """One way to build a model."""

    name: str
    build: Build
    config_keys: frozenset[str] = frozenset()


def build_view(model: Model, ctx: BuildContext) -> Outcome:
    """``CREATE OR REPLACE VIEW`` over the model's query."""
    ctx.db.replace_relation(model.name, model.sql, "view")
    return Outcome(None, f"view {model.name} created")


def build_table(model: Model, ctx: BuildContext) -> Outcome:
    """``CREATE OR REPLACE TABLE … AS`` the model's query."""
    rows = ctx.db.replace_relation(model.name, model.sql, "table")
    return Outcome(rows, f"table {model.name} built with {rows} rows")


MATERIALIZATIONS: Mapping[str, Materialization] = {
    m.name: m for m in (Materialization("view", build_view), Materialization("table", build_table))
}
