"""The values of :mod:`.sampling` as one DuckDB SQL expression, for a whole column of texts at once.

:func:`compile_sample` turns a schema into SQL that gives, for each row's text, the JSON text
``json.dumps(sample(schema, text), ensure_ascii=False)`` would: the same value, chosen by the same
sha256 picks, written the same way (only a control character in a string may be escaped in
capitals). Integers the compiler works out are written into the SQL; every string and list from
the schema is a named parameter. A schema it does not cover raises :class:`Unsupported`, and
those requests are answered by the Python sampler one at a time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .sampling import _DEEP, _DEEPEST, _bounds, _option, _Sampler, integer_range

WORD = "[A-Za-z][A-Za-z'-]+"  # sampling._WORD, as RE2 reads it
MAX_SQL = 200_000  # characters: a recursive schema past this is sampled in Python
_LARGEST = 2**62  # integers beyond stay in Python (DuckDB's BIGINT)
_NUMBER_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


class Unsupported(Exception):
    """The schema needs the Python sampler."""


@dataclass
class Compiled:
    """SQL giving a JSON text per row, over the text and a column of its words (found by the
    SQL `words`), and the named parameters both use."""

    sql: str
    words: str
    params: dict[str, Any] = field(default_factory=dict)


def compile_sample(
    schema: Mapping[str, Any], text: str, words: str = "words", prefix: str = "s"
) -> Compiled:
    """SQL for ``json.dumps(sample(schema, <text>), ensure_ascii=False)``, where `text` is an SQL
    expression of type VARCHAR and `words` names a column holding :attr:`Compiled.words` (the
    text's words: an array item's text, the text and ``#`` and its index, has the same ones);
    parameters are named `prefix` and a number."""
    compiler = _Compiler(schema, prefix, text, words)
    value = compiler.value(schema, text, "", 0)
    return Compiled(value, compiler.words(text), compiler.params)


def pick(seed: str, count: str) -> str:
    """SQL for :func:`.sampling.pick`: the first 8 hex digits of sha256, modulo the count."""
    return f"((('0x' || left(sha256({seed}), 8))::UBIGINT % greatest({count}, 1))::BIGINT)"


class _Compiler:
    def __init__(self, root: Mapping[str, Any], prefix: str, text: str, words: str) -> None:
        self.sampler = _Sampler(root)
        self.prefix, self.text, self.root_words = prefix, text, words
        self.params: dict[str, Any] = {}
        self.size = 0

    def param(self, value: Any) -> str:
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def var(self) -> str:
        """A fresh lambda variable."""
        self.size += 1
        return f"{self.prefix}v{self.size}"

    def seed(self, text: str, key: str) -> str:
        return f"({text} || {self.param(key)})" if key else text

    def value(self, schema: Mapping[str, Any], text: str, key: str, depth: int) -> str:
        sql = self._value(self.sampler._resolve(schema), text, key, depth)
        self.size += len(sql)
        if self.size > MAX_SQL:
            raise Unsupported("the schema's SQL is too long")
        return sql

    def _value(self, schema: Mapping[str, Any], text: str, key: str, depth: int) -> str:
        if "const" in schema:
            return self.param(_dumps(schema["const"]))
        if "enum" in schema:
            return self._choice(list(schema["enum"]), self.seed(text, key))
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            return self.value(_option(options, depth), text, key, depth)
        kind = schema.get("type", "object")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if depth > _DEEPEST:
            return "'null'"
        if kind == "object":
            return self._object(schema, text, depth)
        if kind == "array":
            return self._array(schema, text, key, depth)
        scalar = _SCALARS.get(kind)
        return scalar(self, schema, text, key) if scalar else "'null'"

    def _choice(self, values: list[Any], seed: str) -> str:
        if not values:
            raise Unsupported("an empty list to choose from")
        listed = self.param([_dumps(v) for v in values])
        return f"({listed}::VARCHAR[])[{pick(seed, str(len(values)))} + 1]"

    def _object(self, schema: Mapping[str, Any], text: str, depth: int) -> str:
        properties = schema.get("properties", {})
        parts = [
            f"{self.param(_dumps(name) + ': ')} || {self.value(sub, text, name, depth + 1)}"
            for name, sub in properties.items()
        ]
        return "('{' || " + " || ', ' || ".join(parts) + " || '}')" if parts else "'{}'"

    def _array(self, schema: Mapping[str, Any], text: str, key: str, depth: int) -> str:
        low = int(schema.get("minItems", 1 if depth <= _DEEP else 0))
        high = int(schema.get("maxItems", max(low, 3 if depth <= _DEEP else 0)))
        if high - low + 1 > 1:
            count = f"({low} + {pick(self.seed(text, key), str(high - low + 1))})"
        elif low <= 0:
            return "'[]'"
        else:
            count = str(low)
        i = self.var()
        item = self.value(
            schema.get("items", {}), f"({text} || '#' || {i}::VARCHAR)", key, depth + 1
        )
        items = f"list_transform(range({count}), lambda {i}: {item})"
        return f"('[' || array_to_string({items}, ', ') || ']')"

    def string(self, schema: Mapping[str, Any], text: str, key: str) -> str:
        fmt = _FORMATS.get(str(schema.get("format")))
        if fmt is not None:
            return f"to_json({fmt(self, self.seed(text, key))})::VARCHAR"
        words, label = self.root_words, key.replace("_", " ").capitalize() or "Answer"
        value = f"lower({words}[{pick(text, f'len({words})')} + 1])"
        if text == self.text:  # not an array item's text, which has a '#'
            named = f"{self.param(label + ': ')} || array_to_string({words}[1:24], ' ') || '.'"
            value = f"CASE WHEN contains({text}, '#') THEN {value} ELSE {named} END"
        shortest, longest = int(schema.get("minLength", 0)), schema.get("maxLength")
        if shortest > 0:
            short = self.var()
            padded = f"rpad({short}, greatest({shortest}, length({short}))::INTEGER, '.')"
            value = _let(value, short, padded)
        if longest is not None:
            value = f"left({value}, {int(longest)})"
        return f"to_json({value})::VARCHAR"

    def words(self, text: str) -> str:
        """SQL for ``_WORD.findall(text) or ["offline"]``."""
        found = self.var()
        listed = f"regexp_extract_all({text}, {self.param(WORD)})"
        return _let(listed, found, f"CASE WHEN len({found}) = 0 THEN ['offline'] ELSE {found} END")

    def integer(self, schema: Mapping[str, Any], text: str, key: str) -> str:
        first, last, step = integer_range(schema)
        if max(abs(first), abs(last)) * step >= _LARGEST:
            raise Unsupported("integers beyond BIGINT")
        chosen = pick(self.seed(text, key), str(last - first + 1))
        return f"(({first} + {chosen}) * {step})::VARCHAR"

    def number(self, schema: Mapping[str, Any], text: str, key: str) -> str:
        """Every value the Python sampler could give, listed, and one picked the same way."""
        if not any(k in schema for k in _NUMBER_BOUNDS):
            first, last, step = integer_range(schema)
            if last - first > 4096:
                raise Unsupported("too many numbers to list")
            counted = range(first, first + max(last - first + 1, 1))
            return self._choice([float(n * step) + 0.5 for n in counted], self.seed(text, key))
        low, high = _bounds(schema)
        shares = [(k + 1) / 1000 for k in range(999)]
        values = [round(low + (high - low) * s, 6) if high > low else float(low) for s in shares]
        return self._choice(values, self.seed(text, key))

    def boolean(self, schema: Mapping[str, Any], text: str, key: str) -> str:
        return f"CASE WHEN {pick(self.seed(text, key), '2')} = 1 THEN 'true' ELSE 'false' END"

    def null(self, schema: Mapping[str, Any], text: str, key: str) -> str:
        return "'null'"

    def slug(self, seed: str) -> str:
        words = self.var()
        chosen = f"lower({words}[{pick(seed, f'len({words})')} + 1])"
        cleaned = f"left(regexp_replace({chosen}, '[^a-z0-9]', '', 'g'), 20)"
        slug = _let(self.words(f"split_part({seed}, '#', 1)"), words, cleaned)
        return f"coalesce(nullif({slug}, ''), 'offline')"


def _let(value: str, name: str, body: str) -> str:
    """`body` with `name` bound to `value`, which is computed once."""
    return f"list_transform([{value}], lambda {name}: {body})[1]"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _hexes(seed: str, body: str, c: _Compiler) -> str:
    """`body` with ``n0`` … ``n7`` as sampling._numbers(seed) and ``d`` its sha256 digest."""
    d = c.var()
    numbers = {f"n{k}": f"('0x' || substr({d}, {2 * k + 1}, 2))::INTEGER" for k in range(8)}
    return _let(f"sha256({seed})", d, body.format(d=d, **numbers))


def _date(c: _Compiler, seed: str) -> str:
    return _hexes(
        seed, "printf('%04d-%02d-%02d', 2000 + {n0} % 30, 1 + {n1} % 12, 1 + {n2} % 28)", c
    )


def _clock(c: _Compiler, seed: str) -> str:
    return _hexes(seed, "printf('%02d:%02d:%02d', {n3} % 24, {n4} % 60, {n5} % 60)", c)


def _time(c: _Compiler, seed: str) -> str:
    return f"({_clock(c, seed)} || 'Z')"


def _date_time(c: _Compiler, seed: str) -> str:
    return f"({_date(c, seed)} || 'T' || {_clock(c, seed)} || 'Z')"


def _duration(c: _Compiler, seed: str) -> str:
    return _hexes(seed, "printf('P%dDT%dH%dM', {n0} % 30, {n3} % 24, {n4} % 60)", c)


def _email(c: _Compiler, seed: str) -> str:
    return f"({c.slug(seed)} || '@example.com')"


def _hostname(c: _Compiler, seed: str) -> str:
    return f"({c.slug(seed)} || '.example.com')"


def _ipv4(c: _Compiler, seed: str) -> str:
    return _hexes(seed, "'192.0.2.' || (1 + {n6} % 254)::VARCHAR", c)


def _ipv6(c: _Compiler, seed: str) -> str:
    return f"('2001:db8::' || left(sha256({seed}), 4))"


def _uuid(c: _Compiler, seed: str) -> str:
    """``uuid.UUID(digest[:32], version=4)``: the version nibble 4, the variant bits 10."""
    variant = "lower(printf('%x', ((('0x' || substr({d}, 17, 1))::INTEGER) & 3) | 8))"
    body = (
        "substr({d}, 1, 8) || '-' || substr({d}, 9, 4) || '-4' || substr({d}, 14, 3) || '-' || "
        + variant
        + " || substr({d}, 18, 3) || '-' || substr({d}, 21, 12)"
    )
    return _hexes(seed, body, c)


_FORMATS = {
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
_SCALARS = {
    "string": _Compiler.string,
    "integer": _Compiler.integer,
    "number": _Compiler.number,
    "boolean": _Compiler.boolean,
    "null": _Compiler.null,
}
