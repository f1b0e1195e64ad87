"""What a loaded project is made of: settings, seeds and models, as frozen records.

:mod:`.loader` builds them; everything else reads them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..batch.costs import DEFAULT_PRICES, Price
from ..batch.request_lines import BatchSettings
from ..batch.spec import EnrichSpec
from ..errors import DependencyError
from ..suggest import did_you_mean
from ..warehouse import sql
from .selector import NodeInfo


@dataclass(frozen=True)
class SeedSettings:
    """How one seed CSV is read."""

    column_types: Mapping[str, str] = field(default_factory=dict)  # column → DuckDB type
    delimiter: str = ","


@dataclass(frozen=True)
class Source:
    """Tables that exist in the database but are not built by enrich (dbt's sources)."""

    name: str
    schema: str
    tables: tuple[str, ...] = ()  # empty: any table of the schema


# DuckDB's memory limit for runs unless [tool.enrich] memory_limit says otherwise. DuckDB's own
# default (80% of RAM) lets a run's peak grow with its rows, since the blocks of every table it
# writes stay cached: at 1M rows a refresh peaked at 920 MiB without a limit, 396 MiB with this one,
# in the same time. Beyond it DuckDB spills to disk.
DEFAULT_MEMORY_LIMIT = "256MB"


@dataclass(frozen=True)
class Settings:
    """``[tool.enrich]`` of pyproject.toml, with every default filled in."""

    root: Path
    database: str = "enrich.duckdb"  # relative to root, or ":memory:"
    models_dir: str = "models"
    seeds_dir: str = "seeds"
    target_dir: str = "target"
    vars: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, Source] = field(default_factory=dict)
    seeds: Mapping[str, SeedSettings] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # config of every enrich model
    prices: Mapping[str, Price] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    batch: BatchSettings = field(default_factory=BatchSettings)
    max_cost_usd: float | None = None
    interchangeable_apis: tuple[tuple[str, ...], ...] = ()  # answers of one group are one's
    memory_limit: str | None = DEFAULT_MEMORY_LIMIT  # DuckDB's, for runs; None: DuckDB's own
    # How long a run waits for another process (a reader) to let go of the database file.
    database_wait_seconds: float = 60.0

    @property
    def database_path(self) -> str:
        """Where the DuckDB database is: a path, or ``:memory:``."""
        return self.database if self.database == ":memory:" else str(self.root / self.database)

    @property
    def target_path(self) -> Path:
        """The folder run artifacts are written to."""
        return self.root / self.target_dir


@dataclass(frozen=True)
class Seed:
    """A CSV file loaded into a table named after it."""

    name: str
    path: str  # relative to the project root
    settings: SeedSettings

    def content_hash(self, root: Path) -> str:
        """sha256 over the file's bytes and the settings it is loaded with."""
        digest = hashlib.sha256((root / self.path).read_bytes())
        digest.update(
            repr((sorted(self.settings.column_types.items()), self.settings.delimiter)).encode()
        )
        return digest.hexdigest()


@dataclass(frozen=True)
class ModelConfig:
    """A model's ``config(...)``; `options` holds the keys its materialization adds."""

    materialized: str = "view"
    tags: tuple[str, ...] = ()
    dialect: str = sql.DUCKDB
    enabled: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Model:
    """One SQL model: its rendered DuckDB query, config and dependencies."""

    name: str
    path: str  # relative to the project root
    sql: str  # rendered and, when written in another dialect, transpiled to DuckDB
    config: ModelConfig
    depends_on: frozenset[str]  # model and seed names, from ref() and tables named directly
    sources: tuple[tuple[str, str], ...] = ()
    enrich: EnrichSpec | None = None  # what an enrich model sends, resolved from its config


@dataclass(frozen=True)
class Project:
    """Everything :func:`load_project` read."""

    settings: Settings
    seeds: Mapping[str, Seed]
    models: Mapping[str, Model]

    def graph(self) -> dict[str, set[str]]:
        """Node → the nodes it depends on, seeds included."""
        graph: dict[str, set[str]] = {name: set() for name in self.seeds}
        graph.update({name: set(model.depends_on) for name, model in self.models.items()})
        return graph

    def node_info(self) -> dict[str, NodeInfo]:
        """What selectors match on, per node."""
        info = {name: NodeInfo((), seed.path) for name, seed in self.seeds.items()}
        info.update({n: NodeInfo(m.config.tags, m.path) for n, m in self.models.items()})
        return info

    def model(self, name: str) -> Model:
        """The model called `name`, or a DependencyError that suggests a close name."""
        if name not in self.models:
            hint = did_you_mean(name, self.models)
            raise DependencyError(f"no model named {name!r}{hint}; run 'enrich ls' to list them")
        return self.models[name]
