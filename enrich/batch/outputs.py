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
from ..warehouse import sql
from ..warehouse.db import TypeInfo, describe_type

_JSON_TYPES: Mapping[str, str] = {
    **dict.fromkeys(("varchar", "date", "timestamp", "timestamp with time zone"), "string"),
    **dict.fromkeys(("time", "uuid"), "string"),
    **dict.fromkeys(("tinyint", "smallint", "integer", "bigint", "hugeint"), "integer"),
    **dict.fromkeys(("utinyint", "usmallint", "uinteger", "ubigint"), "integer"),
    **dict.fromkeys(("float", "double", "decimal"), "number"),
    "boolean": "boolean",
}
# Strings of these types carry a format the API enforces in strict structured outputs.
_FORMATS: Mapping[str, str] = {
    "date": "date",
    "timestamp": "date-time",
    "timestamp with time zone": "date-time",
    "time": "time",
    "uuid": "uuid",
}
SUPPORTED = (
    "VARCHAR, BIGINT, INTEGER, DOUBLE, BOOLEAN, DATE, TIMESTAMP, TIMESTAMPTZ, TIME, UUID, "
    "ENUM(...), X[], STRUCT(...)"
)
# The API's limits on a strict schema (structured outputs guide).
MAX_PROPERTIES, MAX_DEPTH, MAX_ENUM_VALUES, MAX_SCHEMA_CHARS = 5000, 10, 1000, 120_000
LARGE_ENUM, LARGE_ENUM_CHARS = 250, 15_000
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
    pairs = _pairs(spec)
    if not pairs:
        raise ProjectError(
            f"{path}: output must map each field to a DuckDB type, "
            "like output={'summary': 'VARCHAR', 'tags': 'VARCHAR[]'}"
        )
    output = Output(tuple(_field(str(name), value, path) for name, value in pairs))
    _check_limits(output.json_schema(), path)
    return output


def _pairs(spec: Any) -> list[tuple[Any, Any]]:
    """The fields in order: a mapping's, or a list of one-field mappings' (a host such as dbt may
    reorder a mapping's keys; a list keeps the order the model asks for its fields in)."""
    if isinstance(spec, Mapping):
        return list(spec.items())
    if isinstance(spec, list) and all(isinstance(e, Mapping) and len(e) == 1 for e in spec):
        return [next(iter(e.items())) for e in spec]
    return []


def _check_limits(schema: Mapping[str, Any], path: str) -> None:
    """The API refuses a strict schema over its documented limits: say so before sending."""
    counted = _Count()
    counted.walk(schema, 0)
    problems = [
        (
            counted.properties > MAX_PROPERTIES,
            f"{counted.properties} properties (at most {MAX_PROPERTIES})",
        ),
        (counted.depth > MAX_DEPTH, f"{counted.depth} levels of nesting (at most {MAX_DEPTH})"),
        (
            counted.enum_values > MAX_ENUM_VALUES,
            f"{counted.enum_values} allowed values in all (at most {MAX_ENUM_VALUES})",
        ),
        (
            counted.chars > MAX_SCHEMA_CHARS,
            f"{counted.chars} characters of names and allowed values (at most {MAX_SCHEMA_CHARS})",
        ),
        (
            counted.large_enum_chars > LARGE_ENUM_CHARS,
            f"a list of more than {LARGE_ENUM} allowed "
            f"values with {counted.large_enum_chars} characters (at most {LARGE_ENUM_CHARS})",
        ),
    ]
    for over, what in problems:
        if over:
            raise ProjectError(
                f"{path}: output has {what}, over what the API accepts in a structured-output "
                "schema; split the model or shorten its output"
            )


class _Count:
    """What the API counts of a schema: properties, nesting, enum values and characters."""

    def __init__(self) -> None:
        self.properties = self.depth = self.enum_values = self.chars = self.large_enum_chars = 0

    def walk(self, schema: Mapping[str, Any], depth: int) -> None:
        self.depth = max(self.depth, depth)
        enum = [str(v) for v in schema.get("enum", ())]
        self.enum_values += len(enum)
        self.chars += sum(map(len, enum))
        if len(enum) > LARGE_ENUM:
            self.large_enum_chars = max(self.large_enum_chars, sum(map(len, enum)))
        for name, child in schema.get("properties", {}).items():
            self.properties += 1
            self.chars += len(name)
            self.walk(child, depth + 1)
        if "items" in schema:
            self.walk(schema["items"], depth)


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
    if info.id in _FORMATS:
        return {"type": "string", "format": _FORMATS[info.id]}
    if info.id in _JSON_TYPES:
        return {"type": _JSON_TYPES[info.id]}
    raise ProjectError(f"{where}: type {info.text} cannot be answered in JSON; use {SUPPORTED}")


# An answer is taken only if it is exactly what was declared: no lossy coercion (1.5 for BIGINT,
# "42" for BIGINT, true for VARCHAR), no missing and no extra field, no timestamp whose offset
# would be dropped. DuckDB's JSON parse coerces all of these, so each value's JSON type is checked.
_JSON_KINDS: Mapping[str, str] = {
    **dict.fromkeys(_JSON_TYPES, "'VARCHAR'"),
    **dict.fromkeys(
        (
            "tinyint",
            "smallint",
            "integer",
            "bigint",
            "hugeint",
            "utinyint",
            "usmallint",
            "uinteger",
            "ubigint",
        ),
        "'BIGINT', 'UBIGINT'",
    ),
    **dict.fromkeys(("float", "double", "decimal"), "'DOUBLE', 'BIGINT', 'UBIGINT'"),
    "boolean": "'BOOLEAN'",
    "enum": "'VARCHAR'",
}
# A timestamp without a zone keeps only UTC answers: an offset would be silently dropped.
_UTC_ONLY = "(NOT regexp_matches({v}, '[+-]\\d\\d:?\\d\\d$') OR regexp_matches({v}, '[+-]00:?00$'))"


def exactly(output: Output, answer: str) -> str:
    """SQL: true when the JSON text `answer` (SQL) has exactly the declared fields and types."""
    fields = tuple((f.name, describe_type(f.duckdb_type)) for f in output.fields)
    return _object(fields, f"({answer})::JSON", 0)


def _object(fields: tuple[tuple[str, TypeInfo], ...], value: str, depth: int) -> str:
    names = ", ".join(sql.literal(name) for name, _ in sorted(fields))
    checks = [
        f"json_type({value}) = 'OBJECT'",
        f"list_sort(json_keys({value})) = [{names}]",
        *(_exact(info, f"({value} -> {sql.literal(name)})", depth) for name, info in fields),
    ]
    return "(" + " AND ".join(checks) + ")"


def _exact(info: TypeInfo, value: str, depth: int) -> str:
    if info.id == "struct":
        return _object(info.fields, value, depth + 1)
    if info.id == "list":
        item = f"x{depth}"
        inner = _exact(info.fields[0][1], item, depth + 1)
        each = (
            f"list_bool_and(list_transform(json_extract({value}, '$[*]'), lambda {item}: {inner}))"
        )
        return f"(json_type({value}) = 'ARRAY' AND coalesce({each}, true))"
    kinds = _JSON_KINDS.get(info.id, "'VARCHAR'")
    check = f"json_type({value}) IN ({kinds})"
    if info.id == "timestamp":
        check += " AND " + _UTC_ONLY.format(v=f"({value} ->> '$')")
    return f"({check})"
