"""OpenAI's own request schemas, and the first thing a request body breaks of them.

The schemas are the ``components.schemas`` of OpenAI's OpenAPI spec (``openai-schemas.json``
beside this file). The only module that imports jsonschema. OpenAPI 3.0 is not quite JSON Schema,
so each schema is adapted once when the server starts (see :func:`_adapt`), and a failure is
reported the way the API words it: ``Invalid type for 'temperature': expected a decimal, …``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

# jsonschema ships no type information (types-jsonschema is a separate stub package).
import jsonschema  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

from .replies import Reply, error_reply

SPEC_FILE = "openai-schemas.json"
REQUEST_SCHEMAS = {
    "/v1/chat/completions": "CreateChatCompletionRequest",
    "/v1/embeddings": "CreateEmbeddingRequest",
    "/v1/responses": "CreateResponse",
}
# Keys whose values are data (or OpenAPI annotations), never schemas: left as they are.
_DATA_KEYS = frozenset(
    {"enum", "const", "default", "example", "examples", "required", "discriminator", "description"}
)
# Keys whose values map names to schemas.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
# Where the spec is stricter than the API: the API's own examples send an `input_image` with no
# `detail` (it defaults to "auto"), while the spec lists `detail` as required.
_NOT_REQUIRED = {"InputImageContent": frozenset({"detail"})}
# Keys that tell the members of a union apart: a body with another value was meant for another.
_DISCRIMINATORS = frozenset({"type", "role"})
_UNIONS = frozenset({"anyOf", "oneOf"})
_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a decimal",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def load_schemas() -> dict[str, Any]:
    """Every component schema of the spec, adapted to JSON Schema 2020-12."""
    text = resources.files(__package__).joinpath(SPEC_FILE).read_text(encoding="utf-8")
    schemas = json.loads(text)["components"]["schemas"]
    adapted = {name: _adapt(schema, name) for name, schema in schemas.items()}
    for name, loose in _NOT_REQUIRED.items():
        adapted[name]["required"] = [k for k in adapted[name]["required"] if k not in loose]
    return adapted


def _adapt(node: Any, component: str) -> Any:
    """One OpenAPI 3.0 schema node as JSON Schema 2020-12."""
    if isinstance(node, list):
        return [_adapt(item, component) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DATA_KEYS or key.startswith("x-"):
            out[key] = value
        elif key in _SCHEMA_MAPS:
            out[key] = {name: _adapt(sub, component) for name, sub in value.items()}
        else:
            out[key] = _adapt(value, component)
    # The spec says oneOf for tagged unions whose members overlap (a plain message is both an
    # EasyInputMessage and an input Item); the API picks a member, it does not refuse a body
    # that fits two.
    if "oneOf" in out:
        out["anyOf"] = out.pop("oneOf")
    # A 2019-09 recursive reference from inside a component means that component.
    if out.pop("$recursiveRef", None) is not None:
        out["$ref"] = f"#/components/schemas/{component}"
    out.pop("$recursiveAnchor", None)
    return _nullable(out) if out.pop("nullable", False) else out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0's ``nullable: true`` as a type that allows null."""
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
        if "enum" in schema and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


def _names(schema: Mapping[str, Any], schemas: Mapping[str, Any]) -> set[str]:
    """The top-level property names of `schema`, through its allOf parts and references."""
    names = set(schema.get("properties", {}))
    ref = schema.get("$ref")
    if isinstance(ref, str):
        names |= _names(schemas[ref.rsplit("/", 1)[-1]], schemas)
    for part in schema.get("allOf", ()):
        names |= _names(part, schemas)
    return names


class RequestSchemas:
    """Validators for the request bodies of the endpoints the server answers, built once."""

    def __init__(self) -> None:
        schemas = load_schemas()
        root = {"components": {"schemas": schemas}}
        self._validators = {
            url: jsonschema.Draft202012Validator({**root, "$ref": f"#/components/schemas/{name}"})
            for url, name in REQUEST_SCHEMAS.items()
        }
        self._parameters = {
            url: frozenset(_names(schemas[name], schemas)) for url, name in REQUEST_SCHEMAS.items()
        }
        # jsonschema before 4.18 resolves references through a RefResolver with a mutable scope
        # stack, and batch lines are checked from several threads: one validation at a time.
        self._lock = threading.Lock()

    def parameters(self, url: str) -> frozenset[str] | None:
        """The top-level parameters a body for `url` may have; None for an unknown URL."""
        return self._parameters.get(url)

    def problem(self, url: str, body: Mapping[str, Any]) -> Reply | None:
        """The API's 400 for the first schema violation of `body`, or None when it conforms."""
        validator = self._validators.get(url)
        if validator is None:
            return None
        with self._lock:
            errors = list(validator.iter_errors(body))
        return _describe(_cause(_first(errors))) if errors else None


def _first(errors: Iterable[ValidationError]) -> ValidationError:
    """The error nearest the top of the body, a plain one before a union that failed."""
    return min(errors, key=lambda e: (len(e.absolute_path), e.validator in _UNIONS))


def _cause(error: ValidationError) -> ValidationError:
    """Inside a failed union, the error of the member the body was meant to be (the first, when
    several fit its type and tag); the union itself when the value fits no member's."""
    while error.validator in _UNIONS and error.context:
        meant = [errs for errs in _members(error) if _meant(errs, _path(error))]
        if not meant:
            return error
        error = _first(meant[0])
    return error


def _members(error: ValidationError) -> list[list[ValidationError]]:
    """A failed union's errors, grouped by the member they came from."""
    grouped: dict[Any, list[ValidationError]] = {}
    for sub in error.context or ():
        grouped.setdefault(sub.relative_schema_path[0], []).append(sub)
    return list(grouped.values())


def _meant(errors: Sequence[ValidationError], path: list[Any]) -> bool:
    """Whether a union member that failed with `errors` is the kind of value the body holds:
    not when the value's JSON type or its ``type``/``role`` tag is another member's."""
    for error in errors:
        where = _path(error)
        if error.validator == "type" and where == path:
            return False
        if error.validator in ("enum", "const") and _tag_of(where, path):
            return False
        if (
            error.validator in _UNIONS
            and where == path
            and not any(_meant(errs, path) for errs in _members(error))
        ):
            return False
    return True


def _misses(error: ValidationError) -> list[ValidationError]:
    """Why a value fits no member of a union: each member's type or tag error, through nested
    unions at the same place."""
    here, found = _path(error), []
    for sub in error.context or ():
        if sub.validator in _UNIONS and _path(sub) == here:
            found += _misses(sub)
        elif (sub.validator == "type" and _path(sub) == here) or (
            sub.validator in ("enum", "const") and _tag_of(_path(sub), here)
        ):
            found.append(sub)
    return found


def _tag_of(where: list[Any], path: list[Any]) -> bool:
    """Whether `where` is the ``type`` or ``role`` key of the object at `path`."""
    return len(where) == len(path) + 1 and where[:-1] == path and where[-1] in _DISCRIMINATORS


def _path(error: ValidationError) -> list[Any]:
    return list(error.absolute_path)


def _describe(error: ValidationError) -> Reply:
    """The API's answer to one schema violation."""
    param = _param(_path(error))
    kind = str(error.validator)
    if kind == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        name = _param([*_path(error), missing])
        return _bad(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
    if kind == "type":
        return _wrong_type(param, _listed(error.validator_value), error.instance)
    if kind in ("enum", "const"):
        return _unsupported(param, error.instance, _allowed(error))
    if kind == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - known) or sorted(error.instance)
        name = _param([*_path(error), extra[0]])
        return _bad(f"Unknown parameter: '{name}'.", name, "unknown_parameter")
    if kind in _UNIONS:
        return _union(error, param)
    return _bad(f"Invalid '{param}': {_limit(kind, error)}", param, "invalid_value")


def _union(error: ValidationError, param: str) -> Reply:
    """A value that fits no member of a union: the tags it could have had, else the types."""
    misses = _misses(error)
    tags = [e for e in misses if e.validator != "type"]
    if tags:
        where = max((_path(e) for e in tags), key=len)
        allowed = [v for e in tags if _path(e) == where for v in _allowed(e)]
        return _unsupported(_param(where), tags[0].instance, allowed)
    expected = [t for e in misses for t in _listed(e.validator_value)]
    return _wrong_type(param, expected or ["object"], error.instance)


def _allowed(error: ValidationError) -> list[Any]:
    return list(error.validator_value) if error.validator == "enum" else [error.validator_value]


def _wrong_type(param: str, expected: list[str], value: Any) -> Reply:
    # Null is allowed in many places but never what a caller meant to send.
    named = [t for t in expected if t != "null"] or expected
    names = list(dict.fromkeys(_TYPE_NAMES.get(t, t) for t in named))
    wanted = names[0] if len(names) == 1 else "one of " + " or ".join(names)
    return _bad(
        f"Invalid type for '{param}': expected {wanted}, but got {_type_of(value)} instead.",
        param,
        "invalid_type",
    )


def _unsupported(param: str, value: Any, allowed: Iterable[Any]) -> Reply:
    unique = {json.dumps(v): v for v in allowed}.values()
    return _bad(
        f"Invalid value: {_show(value)}. Supported values are: "
        f"{', '.join(_show(v) for v in unique)}.",
        param,
        "invalid_value",
    )


def _show(value: Any) -> str:
    """A value as the API quotes it: strings in single quotes, the rest as JSON."""
    return f"'{value}'" if isinstance(value, str) else json.dumps(value)


_BOUNDS = {
    "minimum": ("below minimum value", ">="),
    "exclusiveMinimum": ("below minimum value", ">"),
    "maximum": ("above maximum value", "<="),
    "exclusiveMaximum": ("above maximum value", "<"),
}
_SIZES = {
    "minItems": ("an array", "array too short", "minimum"),
    "maxItems": ("an array", "array too long", "maximum"),
    "minLength": ("a string", "string too short", "minimum"),
    "maxLength": ("a string", "string too long", "maximum"),
}


def _limit(kind: str, error: ValidationError) -> str:
    """How a value breaks a bound (minimum, maxLength, …), in the API's words."""
    bound, value = error.validator_value, error.instance
    if kind in _BOUNDS:
        problem, relation = _BOUNDS[kind]
        number = "integer" if "integer" in _listed(error.schema.get("type", ())) else "decimal"
        return f"{number} {problem}. Expected a value {relation} {bound}, but got {value} instead."
    if kind in _SIZES:
        what, problem, end = _SIZES[kind]
        return (
            f"{problem}. Expected {what} with {end} length {bound}, but got {what} with length "
            f"{len(value)} instead."
        )
    return f"{error.message}."


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    kinds = {float: "a decimal", str: "a string", list: "an array", dict: "an object"}
    return kinds.get(type(value), type(value).__name__)


def _listed(kind: Any) -> list[str]:
    return [kind] if isinstance(kind, str) else [str(k) for k in kind]


def _param(path: Sequence[Any]) -> str:
    """A location in a body as the API names it: ``messages[0].content``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _bad(message: str, param: str | None, code: str | None) -> Reply:
    return error_reply(400, message, param, code)
