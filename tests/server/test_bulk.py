"""Batches answered in SQL, a whole shape of requests at once: the same answers as the Python
responder gives each request, valid against the official response schemas, each on its own
custom_id, with the line faults applied; unusual lines still answered one by one."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from enrich.server.bodies import BodyCheck
from enrich.server.bulk_replies import vector_sql
from enrich.server.offline import respond, vector
from enrich.server.sampling import sample
from enrich.server.sampling_sql import compile_sample
from enrich.server.schemas import load_schemas
from enrich.server.shapes import shape_sql
from enrich.warehouse.db import Database

from .conftest import Harness, batch_line
from .test_readme_bodies import CAPTION, CATEGORIES, EMBEDDING, MOVIE, RESPONSE
from .test_structured import EVERY, closed

CHAT, RESPONSES, EMBEDDINGS = "/v1/chat/completions", "/v1/responses", "/v1/embeddings"
TEXTS = [
    "Two imprisoned men bond over a number of years.",
    'Ünïcödé — 東京 😀 and a #hash, commas, "quotes" and \\backslashes\\.',
    "  leading\tand\ntrailing   whitespace\u00a0 ",
    "Return JSON please: the word json matters to JSON mode.",
    "x" * 700,
    "a",
]
SCHEMAS = {
    "CreateChatCompletionResponse": CHAT,
    "Response": RESPONSES,
    "CreateEmbeddingResponse": EMBEDDINGS,
}
JSON_OBJECT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": ""}],
    "response_format": {"type": "json_object"},
}
SHORT = {**MOVIE, "max_tokens": 5}
RESPONSES_TEXT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "input": "",
    "instructions": "Be brief.",
    "max_output_tokens": 16,
    "metadata": {"run": "r1"},
}
EMBED_MANY: dict[str, Any] = {
    "model": "text-embedding-3-small",
    "input": ["", "second input"],
    "dimensions": 8,
}
BODIES = [
    (CHAT, MOVIE),
    (CHAT, CAPTION),
    (CHAT, JSON_OBJECT),
    (CHAT, SHORT),
    (CHAT, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": ""}]}),
    (RESPONSES, RESPONSE),
    (RESPONSES, RESPONSES_TEXT),
    (EMBEDDINGS, EMBEDDING),
    (EMBEDDINGS, EMBED_MANY),
]


def with_text(url: str, body: dict[str, Any], text: str) -> dict[str, Any]:
    """`body` with its user text (the last one it has) replaced by `text`."""
    body = copy.deepcopy(body)
    if url == EMBEDDINGS:
        body["input"] = text if isinstance(body["input"], str) else [text, *body["input"][1:]]
        return body
    messages = body["messages"] if url == CHAT else body["input"]
    if isinstance(messages, str):
        body["input"] = text
        return body
    content = messages[-1]["content"]
    if isinstance(content, str):
        messages[-1]["content"] = text
    else:
        next(p for p in content if p["type"] in ("text", "input_text"))["text"] = text
    return body


def run(harness: Harness, url: str, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """Each body in a batch line of its own; the output lines by custom_id."""
    lines = [batch_line(f"row-{i}", url, body) for i, body in enumerate(bodies)]
    batch = harness.settle(harness.submit(lines, endpoint=url).id)
    assert (batch.status, batch.error_file_id) == ("completed", None)
    return {line["custom_id"]: line for line in harness.lines_of(batch.output_file_id)}


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    """An answer without what is random or a clock reading: ids and times."""
    body = copy.deepcopy(body)
    for key in ("id", "created", "created_at"):
        body.pop(key, None)
    for item in body.get("output") or []:
        item.pop("id", None)
    for item in body.get("data") or []:
        item["embedding"] = [round(v, 9) for v in item["embedding"]]
    return body


def _validator(name: str) -> jsonschema.Draft202012Validator:
    root = {"components": {"schemas": load_schemas()}, "$ref": f"#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(root)


@pytest.mark.parametrize(("url", "template"), BODIES)
def test_sql_answers_are_the_python_responders(
    harness: Harness, url: str, template: dict[str, Any]
) -> None:
    bodies = [with_text(url, template, text) for text in TEXTS]
    answered = run(harness, url, bodies)
    schema = _validator(next(name for name, path in SCHEMAS.items() if path == url))
    for i, body in enumerate(bodies):
        line = answered[f"row-{i}"]
        got = line["response"]["body"]
        schema.validate(got)
        assert comparable(got) == comparable(respond(url, body, 0).body)
        assert (
            len(line["id"]) == len("batch_req_") + 32 and len(line["response"]["request_id"]) == 32
        )
    assert harness.engine.bulk.answered == {"in sql": len(TEXTS), "in python": 0}


def test_each_row_gets_its_own_answer_on_its_own_custom_id(harness: Harness) -> None:
    words = ["heist", "ghost", "dragon", "robot", "river"]
    bodies = [with_text(CHAT, MOVIE, f"A film about the {word}.") for word in words]
    answered = run(harness, CHAT, bodies)
    for i, word in enumerate(words):
        content = answered[f"row-{i}"]["response"]["body"]["choices"][0]["message"]["content"]
        value = json.loads(content)
        jsonschema.validate(value, CATEGORIES)
        assert value["summary"] == f"Summary: film about the {word}."
    ran = harness.engine.requests_received()
    assert sorted(r["custom_id"] for r in ran) == sorted(answered)
    assert len({r["body_sha256"] for r in ran}) == len(bodies)


def test_line_faults_apply_to_sql_answers(harness: Harness) -> None:
    harness.engine.set_faults(
        fail_fraction=0.1,
        timeout_fraction=0.1,
        status_zero_fraction=0.1,
        truncated_fraction=0.1,
        refusal_fraction=0.1,
        lost_fraction=0.2,
    )
    lines = [batch_line(f"row-{i}", CHAT, with_text(CHAT, MOVIE, f"film {i}")) for i in range(50)]
    batch = harness.settle(harness.submit(lines).id)
    output, errors = harness.lines_of(batch.output_file_id), harness.lines_of(batch.error_file_id)
    assert harness.engine.bulk.answered == {"in sql": 50, "in python": 0}
    statuses = sorted(str((e["response"] or {}).get("status_code")) for e in errors)
    assert statuses == ["0"] * 5 + ["500"] * 5 + ["None"] * 5
    assert {e["error"]["code"] for e in errors if e["error"]} == {"request_timeout"}
    assert len(output) == 28  # 35 answered, 20% of them lost
    choices = [line["response"]["body"]["choices"][0] for line in output]
    refused = [c for c in choices if c["message"]["refusal"]]
    truncated = [c for c in choices if c["finish_reason"] == "length"]
    assert all(c["message"]["content"] is None for c in refused) and len(refused) <= 5
    assert all(not c["message"]["content"].endswith("}") for c in truncated)
    assert (batch.request_counts.completed, batch.request_counts.failed) == (28, 15)
    validator = _validator("CreateChatCompletionResponse")
    for line in output:
        validator.validate(line["response"]["body"])


def test_unusual_and_refused_lines_are_answered_one_by_one(harness: Harness) -> None:
    refused = {**MOVIE, "temperature": 7}
    odd = {
        "model": "gpt-4o-mini",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
            }
        ],
        "n": 1,
        "seed": 3,
    }
    plain = [with_text(CHAT, MOVIE, f"film {i}") for i in range(3)]
    lines = [batch_line(f"row-{i}", CHAT, b) for i, b in enumerate([*plain, refused])]
    lines.append({"custom_id": 7, "method": "POST", "url": CHAT, "body": odd})
    batch = harness.settle(harness.submit(lines).id)
    errors = harness.lines_of(batch.error_file_id)
    assert [e["custom_id"] for e in errors] == ["row-3"]
    assert errors[0]["response"]["body"]["error"]["param"] == "temperature"
    output = {line["custom_id"]: line for line in harness.lines_of(batch.output_file_id)}
    assert set(output) == {"row-0", "row-1", "row-2", 7}
    assert comparable(output[7]["response"]["body"]) == comparable(respond(CHAT, odd, 0).body)
    assert harness.engine.bulk.answered == {"in sql": 3, "in python": 2}


@pytest.mark.parametrize(
    "schema",
    [
        EVERY,
        closed(
            {
                "categories": {"type": "array", "items": {"type": "string"}},
                "summary": {"type": "string"},
            }
        ),
        closed(
            {
                "padded": {"type": "string", "minLength": 300, "maxLength": 310},
                "cut": {"type": "string", "maxLength": 5},
                "mixed": {"enum": ["é", 1, None, 2.5, {"a": [1]}]},
                "grid": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "string", "format": "email"}},
                },
                'odd "key"_name': {"type": "boolean"},
                "n": {"type": "number", "minimum": -5, "exclusiveMaximum": 1e6},
                "half": {"type": "number", "multipleOf": 0.5},
                "big": {"type": "integer", "minimum": -(10**12), "maximum": 10**12},
            }
        ),
    ],
)
def test_sql_samples_are_the_python_samples(schema: dict[str, Any]) -> None:
    db = Database.connect(":memory:")
    compiled = compile_sample(schema, "text")
    texts = [*TEXTS, "", "1 2 3", "# only"]
    rows = db.fetchall(
        f"SELECT text, {compiled.sql} FROM (SELECT text, {compiled.words} AS words "
        "FROM (SELECT unnest($texts) AS text))",
        {"texts": texts, **compiled.params},
    )
    for text, got in rows:
        assert got == json.dumps(sample(schema, text), ensure_ascii=False)


def test_sql_vectors_are_the_python_vectors() -> None:
    db = Database.connect(":memory:")
    [(got,)] = db.fetchall(f"SELECT {vector_sql('?', 64)}", ["some text"])
    want = vector("some text", 64)
    assert math.isclose(sum(v * v for v in got), 1.0) and len(got) == 64
    assert all(math.isclose(a, b, abs_tol=1e-12) for a, b in zip(got, want, strict=True))


def test_a_line_only_duckdb_would_read_fails_validation_as_before(harness: Harness) -> None:
    good = json.dumps(batch_line("row-0", CHAT, with_text(CHAT, MOVIE, "film")))
    trailing = good[:-1] + ', "extra": 1,}'  # a trailing comma: DuckDB forgives it, JSON does not
    batch = harness.settle(harness.submit([good, trailing]).id)
    assert batch.status == "failed"
    assert [(e.code, e.line) for e in batch.errors.data] == [("invalid_json_line", 2)]


def test_the_record_of_a_batch_says_when_it_was_created_finished_and_seen(
    harness: Harness,
) -> None:
    batch = harness.submit([batch_line("row-0", CHAT, MOVIE)])
    created = harness.clock()
    harness.clock.advance(5)
    assert harness.client.batches.retrieve(batch.id).status == "completed"
    harness.clock.advance(5)
    harness.client.batches.retrieve(batch.id)
    record = json.loads((harness.folder / "server" / "batches" / f"{batch.id}.json").read_text())
    at = record["at"]
    # Done at 1 s (validating and finalizing), written when a retrieve brought it up to date,
    # seen by that first retrieve, not the later one.
    assert at["created"] == created and at["completed"] == created + 1.0
    assert at["written"] == at["seen"] == created + 5


SHAPE_CASES = [
    (CHAT, MOVIE),
    (CHAT, CAPTION),
    (CHAT, JSON_OBJECT),
    (CHAT, {**JSON_OBJECT, "messages": [{"role": "user", "content": "no such word"}]}),
    (CHAT, {**MOVIE, "messages": [{"role": "user", "content": 5}]}),
    (CHAT, {**MOVIE, "messages": ["a string"]}),
    (CHAT, {**MOVIE, "messages": "a string"}),
    (CHAT, {**CAPTION, "temperature": 3}),
    (CHAT, {"model": "o3", "messages": [{"role": "user", "content": "x"}], "temperature": 0.5}),
    (RESPONSES, RESPONSE),
    (RESPONSES, RESPONSES_TEXT),
    (RESPONSES, {**RESPONSES_TEXT, "text": {"format": {"type": "json_object"}}}),
    (
        RESPONSES,
        {**RESPONSES_TEXT, "input": "JSON, please", "text": {"format": {"type": "json_object"}}},
    ),
    (EMBEDDINGS, EMBEDDING),
    (EMBEDDINGS, EMBED_MANY),
    (EMBEDDINGS, {**EMBEDDING, "input": ""}),
    (EMBEDDINGS, {**EMBEDDING, "input": [[1, 2], [3]]}),
]


@pytest.mark.parametrize(("url", "body"), SHAPE_CASES)
def test_a_body_and_its_shape_get_the_same_verdict(url: str, body: dict[str, Any]) -> None:
    db = Database.connect(":memory:")
    [(shape,)] = db.fetchall(
        f"SELECT {shape_sql(url, 'body')} FROM (SELECT ?::JSON AS body)", [json.dumps(body)]
    )
    checks = BodyCheck()
    verdict, shaped = checks.check(url, body), checks.check(url, json.loads(shape))
    assert (verdict is None) == (shaped is None)
    if verdict is not None and shaped is not None:
        assert verdict.body["error"]["param"] == shaped.body["error"]["param"]
    if verdict is None:  # the responder answers only what the API accepts
        assert respond(url, body, 0).status == respond(url, json.loads(shape), 0).status
