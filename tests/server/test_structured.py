"""Structured outputs: strict schemas the API cannot compile are refused; every schema it accepts
gets an offline answer that validates against it, formats included."""

from __future__ import annotations

import copy
import datetime
import json
import re
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import openai
import pytest

from enrich.server.sampling import sample

from .conftest import Harness, batch_line

CHAT, RESPONSES = "/v1/chat/completions", "/v1/responses"
HI = [{"role": "user", "content": "Describe the lighthouse keeper Ada Lovelace."}]
FORMATS = ("date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid")


def closed(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A strict object schema: every property required, nothing else allowed."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        **extra,
    }


def nested(levels: int) -> dict[str, Any]:
    """An object `levels` properties deep."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = closed({"a": schema})
    return schema


def chat_body(schema: dict[str, Any], name: str = "answer", strict: bool = True) -> dict[str, Any]:
    spec = {"name": name, "strict": strict, "schema": schema}
    return {
        "model": "gpt-4o-mini",
        "messages": HI,
        "response_format": {"type": "json_schema", "json_schema": spec},
    }


def responses_body(schema: dict[str, Any], name: str = "answer") -> dict[str, Any]:
    spec = {"type": "json_schema", "name": name, "strict": True, "schema": schema}
    return {"model": "gpt-4o-mini", "input": HI, "text": {"format": spec}}


EVERY = closed(
    {
        "text": {"type": "string"},
        "count": {"type": "integer", "minimum": 3, "maximum": 7},
        "below": {"type": "integer", "maximum": -20},
        "even": {"type": "integer", "multipleOf": 2, "minimum": 1, "maximum": 9},
        "ratio": {"type": "number", "minimum": 0, "maximum": 1},
        "open": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.5},
        "score": {"type": "number"},
        "flag": {"type": "boolean"},
        "nothing": {"type": "null"},
        "label": {"type": "string", "enum": ["low", "high"]},
        "fixed": {"const": "v1"},
        "maybe": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
        "either": {"type": ["integer", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4},
        "point": {"$ref": "#/$defs/point"},
        "points": {"type": "array", "items": {"$ref": "#/$defs/point"}},
        "tree": {"$ref": "#/$defs/node"},
        **{f"f_{name}": {"type": "string", "format": name} for name in FORMATS},
    },
    **{
        "$defs": {
            "point": closed({"x": {"type": "number"}, "y": {"type": "number"}}),
            "node": closed(
                {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                }
            ),
        }
    },
)


def _format_checker() -> jsonschema.FormatChecker:
    """jsonschema's format checks, with strict stand-ins for those whose optional packages
    (rfc3339-validator, isoduration, fqdn) are not installed."""
    checker = copy.deepcopy(jsonschema.Draft202012Validator.FORMAT_CHECKER)
    own = {
        "date-time": lambda v: (
            bool(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", v))
            and bool(datetime.datetime.fromisoformat(v.replace("Z", "+00:00")))
        ),
        "time": lambda v: bool(
            re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(Z|[+-]\d\d:\d\d)", v)
        ),
        "duration": lambda v: bool(
            re.fullmatch(r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?", v)
        ),
        "hostname": lambda v: bool(
            re.fullmatch(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}", v)
        ),
    }
    for name, check in own.items():
        if name not in checker.checkers:
            checker.checks(name)(check)
    assert set(FORMATS) <= set(checker.checkers)
    return checker


def _validate(answer: object, schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schema, format_checker=_format_checker())
    validator.validate(answer)


def test_an_answer_to_every_type_and_format_validates_against_its_schema(harness: Harness) -> None:
    answer = harness.client.chat.completions.create(**chat_body(EVERY))
    value = json.loads(answer.choices[0].message.content)
    _validate(value, EVERY)
    assert value["f_date-time"].endswith("Z") and re.fullmatch(r"\d\d:\d\d:\d\dZ", value["f_time"])
    assert value["tree"]["children"] and value["fixed"] == "v1" and value["nothing"] is None
    again = harness.client.chat.completions.create(**chat_body(EVERY))
    assert again.choices[0].message.content == answer.choices[0].message.content
    response = harness.client.responses.create(**responses_body(EVERY))
    _validate(json.loads(response.output_text), EVERY)


@pytest.mark.parametrize("seed", ["", "a", "x" * 500, "Ünïcödé #3", "1 2 3"])
def test_samples_validate_whatever_the_input(seed: str) -> None:
    _validate(sample(EVERY, seed), EVERY)


def test_samples_of_deep_recursive_schemas_end() -> None:
    schema = closed({"head": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}})
    value = sample(schema, "x")
    depth = 0
    while value is not None:
        value, depth = value["head"], depth + 1
    assert 1 < depth < 20
    _validate(sample(schema, "x"), schema)


def _refused(client: openai.OpenAI, url: str, body: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as raised:
        client.post(url.removeprefix("/v1"), body=body, cast_to=object)
    error = raised.value.body
    assert isinstance(error, dict)
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_value")
    return error


def _many(count: int, width: int = 2) -> dict[str, Any]:
    return closed({f"p{i:0{width}d}": {"type": "string"} for i in range(count)})


# (schema, name, words in the message)
REFUSED = [
    ({"type": "array", "items": {"type": "string"}}, "answer", "got 'type: \"array\"'"),
    ({"anyOf": [closed({}), {"type": "null"}]}, "answer", "JSON Schema of 'type: \"object\"'"),
    ({"type": "object", "properties": {}, "required": []}, "answer", "'additionalProperties'"),
    (closed({"a": {"type": "object", "properties": {}}}), "answer", "('properties', 'a')"),
    (
        {"type": "object", "properties": {"a": {}, "b": {}}, "required": ["a"]}
        | {"additionalProperties": False},
        "answer",
        "Missing 'b'",
    ),
    (closed({"a": {"type": "string", "format": "uri"}}), "answer", "'format' value 'uri'"),
    (
        closed({"p": {"$ref": "#/$defs/x"}}, **{"$defs": {"x": {"type": "object"}}}),
        "answer",
        "$defs",
    ),
    (closed({}), "my answer", "name"),
    (closed({}), "a" * 65, "name"),
    (_many(5001, 4), "answer", "5001 object properties"),
    (nested(11), "answer", "11 levels of nesting"),
    (closed({"e": {"type": "string", "enum": [f"v{i}" for i in range(1001)]}}), "answer", "1001"),
    (_many(1000, 121), "answer", "characters of property names"),
    (
        closed({"e": {"type": "string", "enum": [f"{i:060d}" for i in range(251)]}}),
        "answer",
        "an enum of 251 string values has 15060 characters",
    ),
]


@pytest.mark.parametrize(("schema", "name", "words"), REFUSED)
def test_strict_schemas_the_api_cannot_compile_are_refused(
    harness: Harness, schema: dict[str, Any], name: str, words: str
) -> None:
    error = _refused(harness.client, CHAT, chat_body(schema, name))
    assert error["param"] == "response_format" and words in error["message"]
    error = _refused(harness.client, RESPONSES, responses_body(schema, name))
    assert error["param"] == "text.format" and words in error["message"]


def test_a_non_strict_schema_is_not_checked_but_its_name_is(harness: Harness) -> None:
    body = chat_body({"type": "array"}, strict=False)
    assert harness.client.post("/chat/completions", body=body, cast_to=object)
    assert _refused(harness.client, CHAT, chat_body(closed({}), "a b", strict=False))


def test_schemas_at_the_limits_are_accepted_and_answered(harness: Harness) -> None:
    schema = closed(
        {
            "deep": nested(9),
            "many": _many(4000, 4),
            "labels": {"type": "string", "enum": [f"{i:060d}" for i in range(250)]},
            "more": {"type": "string", "enum": [f"m{i}" for i in range(750)]},
        }
    )
    answer = harness.client.chat.completions.create(**chat_body(schema))
    _validate(json.loads(answer.choices[0].message.content), schema)


def test_strict_schema_lines_of_a_batch(harness: Harness) -> None:
    lines = [
        batch_line("good", CHAT, chat_body(EVERY)),
        batch_line("open", CHAT, chat_body({"type": "object"})),
        batch_line("badly-named", CHAT, chat_body(closed({}), "what?")),
    ]
    batch = harness.settle(harness.submit(lines).id)
    assert (batch.status, batch.request_counts.completed, batch.request_counts.failed) == (
        "completed",
        1,
        2,
    )
    [good] = harness.lines_of(batch.output_file_id)
    _validate(json.loads(good["response"]["body"]["choices"][0]["message"]["content"]), EVERY)
    refused = {x["custom_id"]: x["response"] for x in harness.lines_of(batch.error_file_id)}
    assert {k: r["status_code"] for k, r in refused.items()} == {"open": 400, "badly-named": 400}
    assert "'additionalProperties'" in refused["open"]["body"]["error"]["message"]


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("date-time", "2026-01-01 10:00"),
        ("time", "10:00"),
        ("date", "2026-13-01"),
        ("duration", "3 days"),
        ("email", "nobody"),
        ("hostname", "-bad-.example"),
        ("ipv4", "300.1.1.1"),
        ("ipv6", "2001:db8::g"),
        ("uuid", "not-a-uuid"),
    ],
)
def test_the_format_checks_refuse_what_is_not_that_format(name: str, bad: str) -> None:
    assert not _format_checker().conforms(bad, name)
