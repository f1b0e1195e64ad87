"""How a model becomes a relation in DuckDB, one entry per ``config(materialized=...)`` value.

:data:`MATERIALIZATIONS` is the whole list, declared as data: a materialization names the config
keys it accepts beyond the common ones and a build function. Adding one (the enrichment
materializer) is one more entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..batch import lifecycle, pipeline
from ..batch.options import EnrichOptions, utc_now
from ..batch.session import Job
from ..batch.spec import ENRICH_KEYS
from ..errors import ExecutionError
from ..warehouse.db import Database
from .nodes import Model, Project

COMMON_CONFIG = frozenset({"materialized", "tags", "dialect", "enabled"})


@dataclass(frozen=True)
class BuildContext:
    """What a build function may use: its own connection, the project, and the run's flags."""

    db: Database
    project: Project
    full_refresh: bool = False
    options: EnrichOptions = field(default_factory=EnrichOptions)
    clock: Callable[[], datetime] = utc_now


@dataclass(frozen=True)
class Outcome:
    """What building one model did; `extra` lands in run_results.json beside the common fields."""

    rows_affected: int | None
    message: str
    extra: Mapping[str, Any] = field(default_factory=dict)
    status: Literal["success", "warn", "error"] = "success"  # error: built, but fails the run


Build = Callable[[Model, BuildContext], Outcome]


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


def require_upstream(db: Database, model: Model) -> None:
    """Every model or seed `model` reads exists in the database, or say which to build."""
    missing = sorted(n for n in model.depends_on if db.relation_kind(n) is None)
    if missing:
        raise ExecutionError(
            f"{model.path}: reads {', '.join(missing)}, not built yet; build what it reads first: "
            f"enrich run -s +{model.name}"
        )


def build_enrich(model: Model, ctx: BuildContext) -> Outcome:
    """Send the model's rows through the Batch API and build a table of the answers."""
    require_upstream(ctx.db, model)
    lifecycle.check_shared_into(ctx.db, None)  # an enrich project cannot name a shared ledger
    done = pipeline.build(enrich_job(model, ctx.project), ctx.db, ctx.options, ctx.clock)
    return Outcome(done.rows, done.message, done.figures, done.status)


def enrich_job(model: Model, project: Project) -> Job:
    """What the batch pipeline needs to know of an enrich model and its project."""
    assert model.enrich is not None  # load_project resolves it for every enrich model
    settings = project.settings
    return Job(
        name=model.name,
        sql=model.sql,
        spec=model.enrich,
        batch=settings.batch,
        prices=settings.prices,
        max_cost_usd=settings.max_cost_usd,
        folder=settings.target_path / "enrich" / model.name,
        interchangeable=settings.interchangeable_apis,
    )


MATERIALIZATIONS: Mapping[str, Materialization] = {
    m.name: m
    for m in (
        Materialization("view", build_view),
        Materialization("table", build_table),
        Materialization("enrich", build_enrich, ENRICH_KEYS),
    )
}
