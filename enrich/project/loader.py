"""Loading a project: ``[tool.enrich]`` settings, seeds and SQL models, into frozen dataclasses.

:func:`load_project` is the only code that reads project files. Every model is rendered and parsed
here, before anything runs, so a mistake anywhere stops the run before it starts.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..batch.costs import DEFAULT_PRICES, Price
from ..batch.request_lines import BatchSettings
from ..batch.spec import ENRICH_KEYS, EnrichSpec, resolve
from ..errors import DependencyError, ProjectError
from ..suggest import did_you_mean
from ..warehouse import sql
from . import dag
from .materializations import COMMON_CONFIG, MATERIALIZATIONS
from .nodes import (
    DEFAULT_MEMORY_LIMIT,
    Model,
    ModelConfig,
    Project,
    Seed,
    SeedSettings,
    Settings,
    Source,
)
from .templating import Relations, render

SETTINGS_KEYS = frozenset(
    {
        "database",
        "models_dir",
        "seeds_dir",
        "target_dir",
        "vars",
        "sources",
        "seeds",
        "defaults",
        "prices",
        "batch",
        "max_cost_usd",
        "memory_limit",
        "interchangeable_apis",
        "database_wait_seconds",
    }
)
BATCH_KEYS = frozenset(
    {
        "max_lines",
        "max_bytes",
        "enqueued_tokens",
        "poll_min_seconds",
        "poll_max_seconds",
        "token_limit_wait_seconds",
    }
)
PRICE_KEYS = frozenset({"input", "output"})
SEED_KEYS = frozenset({"column_types", "delimiter"})
SOURCE_KEYS = frozenset({"schema", "tables"})


def load_project(path: str | Path = ".") -> Project:
    """Read and check the project at `path`: settings, seeds, every model, the DAG."""
    require_project(Path(path))
    settings = load_settings(Path(path))
    seeds = _discover_seeds(settings)
    files = _discover_models(settings, seeds)
    nodes = set(seeds) | set(files)
    models = {name: load_model(settings, name, rel, nodes) for name, rel in files.items()}
    models = {name: m for name, m in models.items() if m.config.enabled}
    project = Project(settings, seeds, models)
    dag.topological_order(project.graph())
    return project


def require_project(root: Path) -> None:
    """A folder is a project when its pyproject.toml has [tool.enrich] or it has models/."""
    if not root.is_dir():
        raise ProjectError(f"{root}: no such folder; give --project-dir an existing project")
    pyproject = root / "pyproject.toml"
    has_table = (
        pyproject.is_file()
        and "tool" in _document(pyproject)
        and ("enrich" in _document(pyproject)["tool"])
    )
    if not has_table and not (root / "models").is_dir():
        raise ProjectError(
            f"{root.resolve()} is not an enrich project (no [tool.enrich] in pyproject.toml and no "
            "models/ folder); start one there with 'enrich init', or give --project-dir a project"
        )


def load_settings(root: Path) -> Settings:
    """``[tool.enrich]`` from ``root/pyproject.toml``; a folder without one gets the defaults."""
    root = root.resolve()
    if not root.is_dir():
        raise ProjectError(f"project folder {root} does not exist; pass --project-dir DIR")
    table = _tool_table(root / "pyproject.toml")
    _check_keys(table, SETTINGS_KEYS, "pyproject.toml [tool.enrich]")
    return Settings(
        root=root,
        database=_string(table, "database", "enrich.duckdb"),
        models_dir=_string(table, "models_dir", "models"),
        seeds_dir=_string(table, "seeds_dir", "seeds"),
        target_dir=_string(table, "target_dir", "target"),
        vars=_table(table, "vars", "[tool.enrich]"),
        sources=_sources(_table(table, "sources", "[tool.enrich]")),
        seeds=_seed_settings(_table(table, "seeds", "[tool.enrich]")),
        defaults=_defaults(_table(table, "defaults", "[tool.enrich]")),
        prices=_prices(_table(table, "prices", "[tool.enrich]")),
        batch=_batch(_table(table, "batch", "[tool.enrich]")),
        max_cost_usd=_optional_number(table, "max_cost_usd", "[tool.enrich]"),
        interchangeable_apis=_api_groups(table.get("interchangeable_apis", [])),
        database_wait_seconds=_optional_number(table, "database_wait_seconds", "[tool.enrich]")
        or 60.0,
        memory_limit=_memory_limit(table),
    )


def _tool_table(pyproject: Path) -> Mapping[str, Any]:
    if not pyproject.is_file():
        return {}
    return _table(_document(pyproject).get("tool", {}), "enrich", "pyproject.toml [tool]")


def _document(pyproject: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ProjectError(f"{pyproject}: {err}; fix the TOML there") from err


def _check_keys(table: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    for key in table:
        if key not in known:
            raise ProjectError(
                f"{where}: unknown key {key!r}{did_you_mean(key, known)}; "
                f"known keys: {', '.join(sorted(known))}"
            )


def _table(table: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = table.get(key, {})
    if not isinstance(value, Mapping):
        raise ProjectError(f"pyproject.toml {where}: {key!r} must be a table, like [{key}]")
    return value


def _memory_limit(table: Mapping[str, Any]) -> str | None:
    """enrich's default, the project's own, or DuckDB's own (80% of RAM) for ``""``."""
    if "memory_limit" not in table:
        return DEFAULT_MEMORY_LIMIT
    if table["memory_limit"] == "":
        return None
    return _string(table, "memory_limit", "")


def _string(table: Mapping[str, Any], key: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ProjectError(f"pyproject.toml [tool.enrich]: {key!r} must be a non-empty string")
    return value


def _sources(table: Mapping[str, Any]) -> dict[str, Source]:
    sources: dict[str, Source] = {}
    for name, entry in table.items():
        where = f"pyproject.toml [tool.enrich.sources.{name}]"
        entry = _table(table, name, "[tool.enrich.sources]")
        _check_keys(entry, SOURCE_KEYS, where)
        tables = entry.get("tables", [])
        if not isinstance(tables, list) or not all(isinstance(t, str) for t in tables):
            raise ProjectError(f"{where}: 'tables' must be a list of table names")
        sources[name] = Source(name, str(entry.get("schema", name)), tuple(tables))
    return sources


def _seed_settings(table: Mapping[str, Any]) -> dict[str, SeedSettings]:
    seeds: dict[str, SeedSettings] = {}
    for name in table:
        where = f"pyproject.toml [tool.enrich.seeds.{name}]"
        entry = _table(table, name, "[tool.enrich.seeds]")
        _check_keys(entry, SEED_KEYS, where)
        types = _table(entry, "column_types", where)
        if not all(isinstance(v, str) for v in types.values()):
            raise ProjectError(f"{where}: column_types maps a column to a DuckDB type name")
        seeds[name] = SeedSettings(dict(types), str(entry.get("delimiter", ",")))
    return seeds


def _defaults(table: Mapping[str, Any]) -> dict[str, Any]:
    _check_keys(table, ENRICH_KEYS, "pyproject.toml [tool.enrich.defaults]")
    return dict(table)


def _prices(table: Mapping[str, Any]) -> dict[str, Price]:
    prices = dict(DEFAULT_PRICES)
    for model in table:
        where = f'pyproject.toml [tool.enrich.prices."{model}"]'
        entry = _table(table, model, "[tool.enrich.prices]")
        _check_keys(entry, PRICE_KEYS, where)
        values = [_optional_number(entry, key, where) for key in ("input", "output")]
        if values[0] is None:
            raise ProjectError(f"{where}: set input = USD per million input tokens (batch price)")
        prices[model] = Price(values[0], values[1] or 0.0)
    return prices


def _batch(table: Mapping[str, Any]) -> BatchSettings:
    where = "pyproject.toml [tool.enrich.batch]"
    _check_keys(table, BATCH_KEYS, where)
    defaults = BatchSettings()
    tokens = table.get("enqueued_tokens", defaults.enqueued_tokens)
    if isinstance(tokens, int):
        tokens = {"default": tokens}
    if not isinstance(tokens, Mapping) or not all(
        isinstance(v, int) and v > 0 for v in tokens.values()
    ):
        raise ProjectError(
            f"{where}: enqueued_tokens is a number, or a table of model = number (plus default)"
        )
    limits = {k: _optional_number(table, k, where) for k in BATCH_KEYS - {"enqueued_tokens"}}
    return BatchSettings(
        max_lines=int(limits["max_lines"] or defaults.max_lines),
        max_bytes=int(limits["max_bytes"] or defaults.max_bytes),
        enqueued_tokens=dict(tokens),
        poll_min_seconds=float(limits["poll_min_seconds"] or defaults.poll_min_seconds),
        poll_max_seconds=float(limits["poll_max_seconds"] or defaults.poll_max_seconds),
        token_limit_wait_seconds=float(
            limits["token_limit_wait_seconds"] or defaults.token_limit_wait_seconds
        ),
    )


def _api_groups(value: Any) -> tuple[tuple[str, ...], ...]:
    groups = value if isinstance(value, list) else None
    if groups is None or not all(
        isinstance(g, list) and g and all(isinstance(u, str) and u for u in g) for g in groups
    ):
        raise ProjectError(
            "pyproject.toml [tool.enrich]: interchangeable_apis is a list of lists of base URLs "
            '(or "offline"), e.g. [["https://api.openai.com/v1", "https://proxy.example/v1"]]'
        )
    return tuple(tuple(u.rstrip("/") for u in g) for g in groups)


def _optional_number(table: Mapping[str, Any], key: str, where: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ProjectError(f"{where}: {key!r} must be a positive number")
    return float(value)


def _discover_seeds(settings: Settings) -> dict[str, Seed]:
    folder = settings.root / settings.seeds_dir
    paths = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    seeds = {
        p.stem: Seed(
            p.stem, _relative(p, settings.root), settings.seeds.get(p.stem, SeedSettings())
        )
        for p in paths
    }
    for name in settings.seeds:
        if name not in seeds:
            raise ProjectError(
                f"pyproject.toml [tool.enrich.seeds.{name}]: no seed file "
                f"{settings.seeds_dir}/{name}.csv{did_you_mean(name, seeds)}"
            )
    return seeds


def _discover_models(settings: Settings, seeds: Mapping[str, Seed]) -> dict[str, str]:
    folder = settings.root / settings.models_dir
    files: dict[str, str] = {}
    for path in sorted(folder.rglob("*.sql")) if folder.is_dir() else []:
        rel = _relative(path, settings.root)
        clash = files.get(path.stem) or (seeds[path.stem].path if path.stem in seeds else None)
        if clash:
            raise ProjectError(f"{rel} and {clash} both define {path.stem!r}; rename one of them")
        files[path.stem] = rel
    return files


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def load_model(settings: Settings, name: str, path: str, nodes: set[str]) -> Model:
    """Render, parse and check one model file."""
    template = _read_model(settings.root / path, path)
    first = render(
        template,
        path=path,
        relations=_relations(settings, name, sql.DUCKDB),
        variables=settings.vars,
    )
    config = model_config(first.config, path)
    rendered = first
    if config.dialect != sql.DUCKDB:
        relations = _relations(settings, name, config.dialect)
        rendered = render(template, path=path, relations=relations, variables=settings.vars)
    _check_refs(rendered.refs, nodes, path)
    _check_sources(rendered.sources, settings.sources, path)
    query = sql.parse_model(rendered.sql, dialect=config.dialect, path=path)
    lowered = {node.lower(): node for node in nodes}
    implicit = {lowered[t.lower()] for t in sql.local_tables(query) if t.lower() in lowered}
    depends_on = (set(rendered.refs) | implicit) - {name}
    return Model(
        name=name,
        path=path,
        sql=sql.to_duckdb(query, rendered.sql, config.dialect),
        config=config,
        depends_on=frozenset(depends_on),
        sources=tuple(rendered.sources),
        enrich=_enrich_spec(settings, name, path, config),
    )


def _enrich_spec(
    settings: Settings, name: str, path: str, config: ModelConfig
) -> EnrichSpec | None:
    if config.materialized != "enrich":
        return None
    return resolve(name, path, config.options, settings.defaults, settings.root)


def _read_model(path: Path, rel: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ProjectError(
            f"{rel}: not UTF-8 text (byte {err.start}); save the file as UTF-8"
        ) from err


def _relations(settings: Settings, name: str, dialect: str) -> Relations:
    def source(source_name: str, table: str) -> str:
        found = settings.sources.get(source_name)
        return sql.quote_table(table, found.schema if found else source_name, dialect)

    return Relations(
        ref=lambda node: sql.quote_table(node, dialect=dialect),
        source=source,
        this=sql.quote_table(name, dialect=dialect),
    )


def _check_refs(refs: list[str], nodes: set[str], path: str) -> None:
    for ref in refs:
        if ref not in nodes:
            raise DependencyError(
                f"{path}: ref('{ref}') is not a model or seed{did_you_mean(ref, nodes)}; "
                "models are the .sql files under models/, seeds the .csv files under seeds/"
            )


def _check_sources(used: list[tuple[str, str]], sources: Mapping[str, Source], path: str) -> None:
    for source_name, table in used:
        found = sources.get(source_name)
        if found is None:
            raise DependencyError(
                f"{path}: source('{source_name}', '{table}') is not declared"
                f"{did_you_mean(source_name, sources)}; declare it under "
                f"[tool.enrich.sources.{source_name}] in pyproject.toml"
            )
        if found.tables and table not in found.tables:
            raise DependencyError(
                f"{path}: source '{source_name}' has no table {table!r}"
                f"{did_you_mean(table, found.tables)}; add it to its 'tables' list"
            )


def model_config(values: Mapping[str, Any], path: str) -> ModelConfig:
    """Check a model's ``config(...)`` keys against its materialization and build the config."""
    materialized = values.get("materialized", "view")
    if materialized not in MATERIALIZATIONS:
        raise ProjectError(
            f"{path}: materialized={materialized!r} is unknown"
            f"{did_you_mean(str(materialized), MATERIALIZATIONS)}; "
            f"use one of: {', '.join(MATERIALIZATIONS)}"
        )
    known = COMMON_CONFIG | MATERIALIZATIONS[materialized].config_keys
    for key in values:
        if key not in known:
            raise ProjectError(
                f"{path}: config key {key!r} is unknown{did_you_mean(key, known)}; "
                f"materialized={materialized!r} takes: {', '.join(sorted(known))}"
            )
    tags = values.get("tags", ())
    tags = (tags,) if isinstance(tags, str) else tuple(tags)
    return ModelConfig(
        materialized=materialized,
        tags=tags,
        dialect=sql.check_dialect(str(values.get("dialect", sql.DUCKDB)), path),
        enabled=bool(values.get("enabled", True)),
        options={k: v for k, v in values.items() if k not in COMMON_CONFIG},
    )
