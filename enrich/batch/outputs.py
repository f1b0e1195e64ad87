"""A model's ``output``: field → DuckDB type, turned into a strict JSON schema and typed columns.

The same declaration drives three things: the ``json_schema`` response format sent with each
request, the DuckDB structure answers are parsed into on load (an answer that does not fit is a
failure, never a new label), and the columns of the target table.

>>> out = parse_output({"label": ["good", "bad"], "score": "DOUBLE"}, "models/m.sql")
>>> out.json_schema()["properties"]["label"]
{'type': 'string', 'enum': ['good', 'bad']}
>>> [f.duckdb_type for f in out.fields]
["ENUM('good', 'bad')", 'DOUBLE']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ProjectError
from ..warehouse.db import TypeInfo, describe_type

_JSON_TYPES: Mapping[str, str] = {
    **dict.fromkeys(("varchar", "date", "timestamp", "time", "uuid"), "string"),
    **dict.fromkeys(("tinyint", "smallint", "integer", "bigint", "hugeint"), "integer"),
    **dict.fromkeys(("utinyint", "usmallint", "uinteger", "ubigint"), "integer"),
    **dict.fromkeys(("float", "double", "decimal"), "number"),
    "boolean": "boolean",
}
SUPPORTED = (
    "VARCHAR, BIGINT, INTEGER, DOUBLE, BOOLEAN, DATE, TIMESTAMP, ENUM(...), X[], STRUCT(...)"
)
PROVENANCE_PREFIX = "_enrich_"


@dataclass(frozen=True)
class Field:
    """One output column: its name, DuckDB type and JSON schema."""

    name: str
    duckdb_type: str
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class Output:
    """The fields a structured answer has, in declared order."""

    fields: tuple[Field, ...]

    def json_schema(self) -> dict[str, Any]:
        """The strict JSON schema of an answer: every field required, nothing else allowed."""
        return {
            "type": "object",
            "properties": {f.name: dict(f.schema) for f in self.fields},
            "required": [f.name for f in self.fields],
            "additionalProperties": False,
        }

    def structure(self) -> dict[str, str]:
        """The ``from_json`` structure answers are parsed into."""
        return {f.name: f.duckdb_type for f in self.fields}


def parse_output(spec: Any, path: str) -> Output:
    """Check ``config(output=...)`` and build its schema; errors name the model file and field."""
    if not isinstance(spec, Mapping) or not spec:
        raise ProjectError(
            f"{path}: output must map each field to a DuckDB type, "
            "like output={'summary': 'VARCHAR', 'tags': 'VARCHAR[]'}"
        )
    return Output(tuple(_field(str(name), value, path) for name, value in spec.items()))


def _field(name: str, value: Any, path: str) -> Field:
    where = f"{path}: output field {name!r}"
    if not name or name.startswith(PROVENANCE_PREFIX):
        raise ProjectError(f"{where}: names starting with {PROVENANCE_PREFIX!r} are reserved")
    if isinstance(value, list | tuple):
        value = _enum_text(value, where)
    if not isinstance(value, str):
        raise ProjectError(f"{where}: expected a DuckDB type name or a list of allowed values")
    try:
        info = describe_type(value)
    except ProjectError as err:
        raise ProjectError(f"{where}: {err}; supported types: {SUPPORTED}") from err
    return Field(name, info.text, _schema(info, where))


def _enum_text(values: list[Any] | tuple[Any, ...], where: str) -> str:
    if not values:
        raise ProjectError(f"{where}: the list of allowed values is empty; list at least one")
    if not all(isinstance(v, str) and v for v in values):
        raise ProjectError(f"{where}: allowed values must be non-empty strings")
    if len(set(values)) != len(values):
        raise ProjectError(f"{where}: the list of allowed values repeats a value")
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"ENUM({quoted})"


def _schema(info: TypeInfo, where: str) -> dict[str, Any]:
    if info.id == "enum":
        return {"type": "string", "enum": list(info.values)}
    if info.id == "list":
        return {"type": "array", "items": _schema(info.fields[0][1], where)}
    if info.id == "struct":
        return {
            "type": "object",
            "properties": {name: _schema(child, where) for name, child in info.fields},
            "required": [name for name, _ in info.fields],
            "additionalProperties": False,
        }
    if info.id in _JSON_TYPES:
        return {"type": _JSON_TYPES[info.id]}
    raise ProjectError(f"{where}: type {info.text} cannot be answered in JSON; use {SUPPORTED}")
