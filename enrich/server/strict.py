"""Structured outputs: the ``json_schema`` response formats the API refuses.

A format's ``name`` must be a short identifier. With ``strict: true`` the schema must also be one
the API can compile into a grammar (the structured outputs guide): an object at the root, every
object closed (``additionalProperties: false``) with every property required, only the string
formats it knows, and within its size limits.

>>> print(schema_problem({"type": "object", "properties": {"a": {}}, "required": ["a"]}))
In context=(), 'additionalProperties' is required to be supplied and to be false.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from .replies import Reply, error_reply

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
FORMATS = ("date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid")
MAX_PROPERTIES, MAX_DEPTH, MAX_ENUM_VALUES, MAX_CHARS = 5000, 10, 1000, 120_000
LARGE_ENUM, LARGE_ENUM_CHARS = 250, 15_000
_DEFINITIONS = ("$defs", "definitions")


def check_format(url: str, body: Mapping[str, Any]) -> Reply | None:
    """The API's 400 for a ``json_schema`` response format it refuses, or None."""
    found = _json_schema_format(url, body)
    if found is None:
        return None
    param, spec = found
    name = spec.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        return _refuse(
            f"Invalid '{param}' name {name!r}: it must be 1 to 64 characters of a-z, A-Z, 0-9, "
            "underscores and dashes.",
            param,
        )
    if spec.get("strict") is not True:
        return None
    problem = schema_problem(spec.get("schema"))
    if problem is None:
        return None
    return _refuse(f"Invalid schema for {param} '{name}': {problem}", param)


def _json_schema_format(url: str, body: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """Where `body` asks for a JSON schema: the parameter's name, and the format's settings
    (name, strict, schema), which chat nests under ``json_schema``."""
    if url.endswith("/chat/completions"):
        wanted = body.get("response_format")
        if isinstance(wanted, Mapping) and wanted.get("type") == "json_schema":
            spec = wanted.get("json_schema")
            return "response_format", spec if isinstance(spec, Mapping) else {}
    if url.endswith("/responses"):
        text = body.get("text")
        wanted = text.get("format") if isinstance(text, Mapping) else None
        if isinstance(wanted, Mapping) and wanted.get("type") == "json_schema":
            return "text.format", wanted
    return None


def schema_problem(schema: Any) -> str | None:
    """What makes `schema` unusable for strict structured outputs, or None."""
    if not isinstance(schema, Mapping):
        return "a strict schema must be supplied, as a JSON Schema object."
    if schema.get("type") != "object" or "anyOf" in schema:
        shown = "anyOf" if "anyOf" in schema else schema.get("type")
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{shown}\"'."
    tally = _Tally()
    return tally.walk(schema, (), 0) or tally.over_limits()


class _Tally:
    """A walk over a schema that stops at the first broken rule and counts what the API limits:
    properties, nesting, enum values, and the characters of names and values."""

    def __init__(self) -> None:
        self.properties = self.depth = self.enum_values = self.chars = 0

    def walk(self, schema: Any, context: tuple[str, ...], depth: int) -> str | None:
        if not isinstance(schema, Mapping):
            return None
        self.depth = max(self.depth, depth)
        problem = _object_problem(schema) or _format_problem(schema) or self._values(schema)
        if problem:
            return f"In context={context!r}, {problem}"
        for step, child, deeper in _children(schema):
            problem = self.walk(child, (*context, *step), depth + deeper)
            if problem:
                return problem
        return None

    def _values(self, schema: Mapping[str, Any]) -> str | None:
        """Count the names and values of one node; a long list of long strings is refused."""
        self.properties += len(schema.get("properties") or {})
        self.chars += sum(len(str(name)) for name in schema.get("properties") or {})
        self.chars += sum(len(str(name)) for key in _DEFINITIONS for name in schema.get(key) or {})
        if isinstance(schema.get("const"), str):
            self.chars += len(schema["const"])
        enum = schema.get("enum")
        if not isinstance(enum, list):
            return None
        self.enum_values += len(enum)
        strings = [v for v in enum if isinstance(v, str)]
        length = sum(map(len, strings))
        self.chars += length
        if len(strings) > LARGE_ENUM and length > LARGE_ENUM_CHARS:
            return (
                f"an enum of {len(strings)} string values has {length} characters in all; an "
                f"enum of more than {LARGE_ENUM} values may have at most {LARGE_ENUM_CHARS}."
            )
        return None

    def over_limits(self) -> str | None:
        """The first size limit the whole schema is over, or None."""
        limits = [
            (self.properties, MAX_PROPERTIES, "object properties in all"),
            (self.depth, MAX_DEPTH, "levels of nesting"),
            (self.enum_values, MAX_ENUM_VALUES, "enum values in all"),
            (
                self.chars,
                MAX_CHARS,
                "characters of property names, definition names and enum and const values",
            ),
        ]
        for count, limit, what in limits:
            if count > limit:
                return f"the schema has {count} {what}; at most {limit} are allowed."
        return None


def _children(schema: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], Any, int]]:
    """Each subschema of `schema`: its place in the context, and 1 when it nests a level."""
    for name, child in (schema.get("properties") or {}).items():
        yield ("properties", str(name)), child, 1
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield ("items",), items, 0
    for index, child in enumerate(schema.get("anyOf") or ()):
        yield ("anyOf", str(index)), child, 0
    for key in _DEFINITIONS:
        for name, child in (schema.get(key) or {}).items():
            yield (key, str(name)), child, 0


def _object_problem(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if not (kind == "object" or (isinstance(kind, list) and "object" in kind)):
        return None
    if schema.get("additionalProperties") is not False:
        return "'additionalProperties' is required to be supplied and to be false."
    properties = schema.get("properties") or {}
    required = schema.get("required")
    listed = required if isinstance(required, list) else []
    missing = [name for name in properties if name not in listed]
    if missing:
        return (
            "'required' is required to be supplied and to be an array including every key in "
            f"properties. Missing '{missing[0]}'."
        )
    return None


def _format_problem(schema: Mapping[str, Any]) -> str | None:
    value = schema.get("format")
    if value is None or value in FORMATS:
        return None
    return f"'format' value {value!r} is not supported; use one of: {', '.join(FORMATS)}."


def _refuse(message: str, param: str) -> Reply:
    return error_reply(400, message, param, "invalid_value")
