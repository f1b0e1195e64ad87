"""How a model becomes a relation in DuckDB, one entry per ``config(materialized=...)`` value.

:data:`MATERIALIZATIONS` is the whole list, declared as data: a materialization names the config
keys it accepts beyond the common ones and a build function. Adding one (the enrichment
materializer) is one more entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .db import Database
from .spec import ENRICH_KEYS

if TYPE_CHECKING:
    from .client import ApiConfig
    from .project import Model, Project

COMMON_CONFIG = frozenset({"materialized", "tags", "dialect", "enabled"})


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class EnrichEvent:
    """Something an enrich model did that a person watching would want to know."""

    node: str
    message: str
    batch_id: str | None = None
    status: str | None = None
    completed: int = 0
    failed: int = 0
    total: int = 0


@dataclass(frozen=True)
class EnrichOptions:
    """How enrich models talk to the API in this run; clocks and sleeps are injectable."""

    api: ApiConfig | None = None  # None: OPENAI_BASE_URL / OPENAI_API_KEY, read when needed
    wait: bool = True  # follow batches to the end; False: submit, collect what is done, return
    dry_run: bool = False
    max_cost_usd: float | None = None  # overrides the max_cost_usd setting
    poll_seconds: tuple[float, float] | None = None  # overrides [tool.enrich.batch] backoff
    sleep: Callable[[float], None] = time.sleep
    on_event: Callable[[EnrichEvent], None] | None = None
    # Called with the name of each step as it completes (see enrichment.STEPS): crash tests stop
    # the process at exact points through it.
    on_step: Callable[[str], None] | None = None
    run_id: str = ""


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


def build_enrich(model: Model, ctx: BuildContext) -> Outcome:
    """Send the model's rows through the Batch API and build a table of the answers."""
    from .enrichment import build  # enrichment builds on this module's types

    return build(model, ctx)


MATERIALIZATIONS: Mapping[str, Materialization] = {
    m.name: m
    for m in (
        Materialization("view", build_view),
        Materialization("table", build_table),
        Materialization("enrich", build_enrich, ENRICH_KEYS),
    )
}
