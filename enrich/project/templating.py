"""Rendering a model's Jinja (dbt conventions): ``ref``, ``source``, ``var``, ``config``, ``this``.

The only module that imports jinja2.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2

from ..errors import ProjectError

_MISSING = object()
_CONFIG_CALL = re.compile(r"\{\{-?\s*config\s*\(.*?\}\}", re.DOTALL)


@dataclass(frozen=True)
class Relations:
    """How a model's template names other relations, in the SQL dialect it is written in."""

    ref: Callable[[str], str]
    source: Callable[[str, str], str]
    this: str


@dataclass
class Rendered:
    """A rendered model and what its template asked for."""

    sql: str
    refs: list[str] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


def render(
    template: str, *, path: str, relations: Relations, variables: Mapping[str, Any]
) -> Rendered:
    """Render `template` (the text of the model file at `path`)."""
    result = Rendered(sql="")
    # A multi-line {{ config(...) }} renders to nothing; give back its newlines so that SQL
    # errors point at the right line of the file.
    newlines = iter([call.count("\n") for call in _CONFIG_CALL.findall(template)])

    def config(**kwargs: Any) -> str:
        result.config.update(kwargs)
        return "\n" * next(newlines, 0)

    def ref(name: str) -> str:
        result.refs.append(name)
        return relations.ref(name)

    def source(source_name: str, table_name: str) -> str:
        result.sources.append((source_name, table_name))
        return relations.source(source_name, table_name)

    def var(name: str, default: Any = _MISSING) -> Any:
        if name in variables:
            return variables[name]
        if default is _MISSING:
            raise ProjectError(
                f"{path}: var('{name}') is not set; add it under [tool.enrich.vars] "
                f"in pyproject.toml or give a default: var('{name}', ...)"
            )
        return default

    names = {"config": config, "ref": ref, "source": source, "var": var, "this": relations.this}
    result.sql = _render(template, path, names)
    return result


def _render(template: str, path: str, names: Mapping[str, Any]) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        return env.from_string(template).render(**names)
    except jinja2.TemplateSyntaxError as err:
        raise ProjectError(f"{path}:{err.lineno}: template error: {err.message}") from err
    except jinja2.UndefinedError as err:
        raise ProjectError(
            f"{path}: template error: {err.message}; "
            "the names a model can use are ref, source, var, config and this"
        ) from err
