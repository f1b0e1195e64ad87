"""Values valid against a JSON schema, the subset strict structured outputs use, seeded by text.

Every type and string format a strict schema may ask for gets a value of that shape (a date is
``YYYY-MM-DD``, a ``uuid`` a UUID …), within its bounds, lengths and enums, through ``$ref``,
``$defs`` and ``anyOf``. The same schema and text always give the same value.

>>> sample({"type": "object", "properties": {"n": {"type": "integer"},
...         "tag": {"enum": ["a", "b"]}}}, "x")
{'n': 4, 'tag': 'b'}
>>> sample({"type": "string", "format": "date"}, "x")
'2015-06-23'
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
# Past this depth a recursive schema takes its way out: null in an anyOf, the fewest items.
_DEEP = 6
_DEEPEST = 40


def sample(schema: Mapping[str, Any], text: str) -> Any:
    """A value valid against `schema`, chosen by `text`."""
    return _Sampler(schema).value(schema, text, "", 0)


class _Sampler:
    """Sampling within one root schema, which ``$ref`` pointers lead into."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root

    def value(self, schema: Mapping[str, Any], text: str, key: str, depth: int) -> Any:
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][pick(text + key, len(schema["enum"]))]
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            return self.value(_option(options, depth), text, key, depth)
        kind = schema.get("type", "object")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if depth > _DEEPEST:
            return None
        if kind == "object":
            return self._object(schema, text, depth)
        if kind == "array":
            return self._array(schema, text, key, depth)
        return _SCALARS.get(kind, _null)(schema, text, key)

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """`schema`, or what its ``$ref`` (``#``, ``#/$defs/x`` …) points to."""
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#"):
            return schema
        node: Any = self.root
        for step in filter(None, ref[1:].split("/")):
            node = node.get(step.replace("~1", "/").replace("~0", "~"), {})
        return node if isinstance(node, Mapping) else {}

    def _object(self, schema: Mapping[str, Any], text: str, depth: int) -> Any:
        properties = schema.get("properties", {})
        return {name: self.value(sub, text, name, depth + 1) for name, sub in properties.items()}

    def _array(self, schema: Mapping[str, Any], text: str, key: str, depth: int) -> Any:
        low = int(schema.get("minItems", 1 if depth <= _DEEP else 0))
        high = int(schema.get("maxItems", max(low, 3 if depth <= _DEEP else 0)))
        count = low + pick(text + key, high - low + 1)
        items = schema.get("items", {})
        return [self.value(items, f"{text}#{i}", key, depth + 1) for i in range(count)]


def _option(options: list[Any], depth: int) -> Mapping[str, Any]:
    """The anyOf member to answer with: the first that is not null, unless nested deep."""
    null = [o for o in options if isinstance(o, Mapping) and o.get("type") == "null"]
    usable = [o for o in options if isinstance(o, Mapping) and o.get("type") != "null"]
    if depth > _DEEP and null:
        return dict(null[0])
    return dict((usable or null or [{}])[0])


def _string(schema: Mapping[str, Any], text: str, key: str) -> Any:
    formatted = _FORMATS.get(str(schema.get("format")))
    if formatted is not None:
        return formatted(text + key)
    words = _WORD.findall(text) or ["offline"]
    if "#" in text:  # an array item: a short label from the input's words
        value = words[pick(text, len(words))].lower()
    else:
        value = f"{key.replace('_', ' ').capitalize() or 'Answer'}: {' '.join(words[:24])}."
    shortest, longest = int(schema.get("minLength", 0)), schema.get("maxLength")
    value = value.ljust(shortest, ".")
    return value[: int(longest)] if longest is not None else value


def _integer(schema: Mapping[str, Any], text: str, key: str) -> Any:
    first, last, step = integer_range(schema)
    return (first + pick(text + key, last - first + 1)) * step


def integer_range(schema: Mapping[str, Any]) -> tuple[int, int, int]:
    """An integer schema's values as ``(first, last, step)``: from ``first * step`` to
    ``last * step``."""
    low, high = _bounds(schema)
    low = math.floor(low) + 1 if "exclusiveMinimum" in schema else math.ceil(low)
    high = math.ceil(high) - 1 if "exclusiveMaximum" in schema else math.floor(high)
    step = int(schema.get("multipleOf", 1)) or 1
    return math.ceil(low / step), math.floor(high / step), step


def _number(schema: Mapping[str, Any], text: str, key: str) -> Any:
    if not any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
        return float(_integer(schema, text, key)) + 0.5
    low, high = _bounds(schema)
    share = (pick(text + key, 999) + 1) / 1000  # strictly between 0 and 1: inside either bound
    return round(low + (high - low) * share, 6) if high > low else float(low)


def _bounds(schema: Mapping[str, Any], span: int = 10) -> tuple[float, float]:
    """The lowest and highest numbers `schema` allows; unbounded, a span from 0."""
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is None:
        low = 0 if high is None or high >= 0 else high - span
    if high is None:
        high = low + span
    return float(low), float(high)


def _boolean(schema: Mapping[str, Any], text: str, key: str) -> Any:
    return pick(text + key, 2) == 1


def _null(schema: Mapping[str, Any], text: str, key: str) -> Any:
    return None


def _date(seed: str) -> str:
    n = _numbers(seed)
    return f"{2000 + n[0] % 30:04d}-{1 + n[1] % 12:02d}-{1 + n[2] % 28:02d}"


def _clock(seed: str) -> str:
    n = _numbers(seed)
    return f"{n[3] % 24:02d}:{n[4] % 60:02d}:{n[5] % 60:02d}"


# In UTC, with the offset JSON Schema's `time` and `date-time` require (RFC 3339 full-time): a
# loader that keeps no offset loses nothing.
def _time(seed: str) -> str:
    return f"{_clock(seed)}Z"


def _date_time(seed: str) -> str:
    return f"{_date(seed)}T{_clock(seed)}Z"


def _duration(seed: str) -> str:
    n = _numbers(seed)
    return f"P{n[0] % 30}DT{n[3] % 24}H{n[4] % 60}M"


def _slug(seed: str) -> str:
    words = _WORD.findall(seed.split("#")[0]) or ["offline"]
    return re.sub(r"[^a-z0-9]", "", words[pick(seed, len(words))].lower())[:20] or "offline"


def _email(seed: str) -> str:
    return f"{_slug(seed)}@example.com"


def _hostname(seed: str) -> str:
    return f"{_slug(seed)}.example.com"


def _ipv4(seed: str) -> str:
    return f"192.0.2.{1 + _numbers(seed)[6] % 254}"  # TEST-NET-1, for documentation


def _ipv6(seed: str) -> str:
    return f"2001:db8::{_digest(seed)[:4]}"  # the documentation prefix


def _uuid(seed: str) -> str:
    return str(uuid.UUID(_digest(seed)[:32], version=4))


_FORMATS: dict[str, Callable[[str], str]] = {
    "date": _date,
    "time": _time,
    "date-time": _date_time,
    "duration": _duration,
    "email": _email,
    "hostname": _hostname,
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "uuid": _uuid,
}
_SCALARS: dict[str, Callable[[Mapping[str, Any], str, str], Any]] = {
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "null": _null,
}


def pick(text: str, count: int) -> int:
    """A number from 0 to `count` - 1, chosen by `text`."""
    return int(_digest(text)[:8], 16) % max(count, 1)


def _numbers(seed: str) -> list[int]:
    digest = _digest(seed)
    return [int(digest[i : i + 2], 16) for i in range(0, 16, 2)]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
