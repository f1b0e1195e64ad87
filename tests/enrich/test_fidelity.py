"""Requests the real API accepts, and answers typed exactly: what enrich puts in a body for each
endpoint and model family, what it refuses before sending, and which answers it will not take."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enrich import ProjectError
from enrich.batch import answers
from enrich.batch.outputs import parse_output
from enrich.project.loader import load_project
from enrich.server.bodies import BodyCheck
from enrich.warehouse.db import Database

from .conftest import Env, node, start_env

SEED = "id,body\n1,A cat on a mat.\n2,Rain tomorrow.\n"


def _body(tmp_path: Path, config: str, defaults: str = "") -> dict[str, Any]:
    """The constant part of the body enrich would send for a model with `config`."""
    root = tmp_path / "p"
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(f"[tool.enrich.defaults]\n{defaults}\n")
    (root / "models" / "m.sql").write_text(
        "{{ config(materialized='enrich', unique_key='id', " + config + ") }}\nselect 1 as id, "
        "'x' as prompt\n"
    )
    spec = load_project(root).models["m"].enrich
    assert spec is not None
    return spec.constant_body()


DEFAULTS = 'model = "gpt-4o-mini"\ntemperature = 0\nmax_tokens = 200\nseed = 7'

PLACED = {
    "chat": ("", {"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 200, "seed": 7}),
    "embeddings take none of the defaults": (
        "endpoint='/v1/embeddings', model='text-embedding-3-small', dimensions=256",
        {"model": "text-embedding-3-small", "dimensions": 256, "encoding_format": "float"},
    ),
    "a reasoning model on chat: max_completion_tokens, no sampling": (
        "model='o4-mini', reasoning_effort='low'",
        {"model": "o4-mini", "max_completion_tokens": 200, "seed": 7, "reasoning_effort": "low"},
    ),
    "the Responses API: max_output_tokens, reasoning.effort, text.verbosity": (
        "endpoint='/v1/responses', model='gpt-5-mini', reasoning_effort='minimal', "
        "verbosity='low', output={'label': ['a', 'b']}",
        {
            "model": "gpt-5-mini",
            "max_output_tokens": 200,
            "reasoning": {"effort": "minimal"},
            "text": {
                "verbosity": "low",
                "format": {
                    "type": "json_schema",
                    "name": "answer",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "properties": {"label": {"type": "string", "enum": ["a", "b"]}},
                        "required": ["label"],
                        "additionalProperties": False,
                    },
                },
            },
        },
    ),
}


@pytest.mark.parametrize("case", PLACED.values(), ids=PLACED.keys())
def test_parameters_go_where_each_endpoint_and_model_takes_them(
    tmp_path: Path, case: tuple[str, dict[str, Any]]
) -> None:
    config, body = case
    assert _body(tmp_path, config or "model='gpt-4o-mini'", DEFAULTS) == body


REFUSED = {
    "temperature on a reasoning model": (
        "model='o3', temperature=0.2",
        "temperature cannot be sent to o3 on /v1/chat/completions",
    ),
    "max_tokens on embeddings": (
        "endpoint='/v1/embeddings', model='text-embedding-3-small', max_tokens=5",
        "max_tokens cannot be sent to text-embedding-3-small on /v1/embeddings",
    ),
    "reasoning_effort on an ordinary model": (
        "model='gpt-4o-mini', reasoning_effort='low'",
        "only reasoning models take it",
    ),
    "a seed on the Responses API": (
        "endpoint='/v1/responses', model='gpt-4o-mini', seed=1",
        "Responses API does not take it",
    ),
    "a key named like an internal column": ("unique_key='request_hash'", "'request_hash'"),
    "an output differing from a key only in case": (
        "output={'ID': 'VARCHAR'}",
        "differ only in case",
    ),
    "an output named like an internal column": ("output={'Tokens': 'BIGINT'}", "'Tokens'"),
    "too many allowed values": (
        "output={'x': range(1200) | map('string') | list}",
        "1200 allowed values in all",
    ),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_what_the_api_would_refuse_stops_when_the_project_loads(
    tmp_path: Path, case: tuple[str, str]
) -> None:
    config, message = case
    if "unique_key" in config:
        config = config + ", model='gpt-4o-mini'"
        with pytest.raises(ProjectError, match=message):
            _body_with_key(tmp_path, config)
        return
    with pytest.raises(ProjectError, match=message) as raised:
        _body(tmp_path, config if "model=" in config else config + ", model='gpt-4o-mini'")
    assert str(raised.value).startswith("models/m.sql: ")


def _body_with_key(tmp_path: Path, config: str) -> None:
    root = tmp_path / "k"
    (root / "models").mkdir(parents=True)
    (root / "models" / "m.sql").write_text(
        "{{ config(materialized='enrich', "
        + config
        + ") }}\nselect 1 as request_hash, 'x' as prompt\n"
    )
    load_project(root)


def test_inherited_parameters_an_endpoint_does_not_take_are_not_sent(tmp_path: Path) -> None:
    body = _body(tmp_path, "model='o3'", "temperature = 0\ntop_p = 0.5\nmax_tokens = 50")
    assert body == {"model": "o3", "max_completion_tokens": 50}


def test_dates_times_and_uuids_carry_their_format() -> None:
    output = parse_output(
        {"d": "DATE", "ts": "TIMESTAMP", "tz": "TIMESTAMPTZ", "t": "TIME", "u": "UUID"}, "m.sql"
    )
    formats = {k: v["format"] for k, v in output.json_schema()["properties"].items()}
    assert formats == {"d": "date", "ts": "date-time", "tz": "date-time", "t": "time", "u": "uuid"}


def test_json_object_without_the_word_json_is_refused_before_sending(tmp_path: Path) -> None:
    files = {
        "pyproject.toml": '[tool.enrich]\ndatabase = "warehouse.duckdb"\n',
        "seeds/notes.csv": SEED,
        "models/labels.sql": "{{ config(materialized='enrich', unique_key='id', "
        "model='gpt-4o-mini', response_format='json_object', system_prompt='Label it.', "
        "output={'answer': 'VARCHAR'}) }}\nselect id, body as prompt from {{ ref('notes') }}\n",
    }
    for env in start_env(tmp_path, files):
        result = env.run()
        message = node(result, "labels").message
        assert "needs the word JSON" in message and message.startswith("models/labels.sql: ")
        assert env.files_uploaded() == 0
        env.write(
            "models/labels.sql", files["models/labels.sql"].replace("Label it.", "Answer in JSON.")
        )
        assert env.run().ok


# Answers typed exactly: DuckDB's JSON parse would coerce every one of these.

HOSTILE = {
    "1.5 for BIGINT": ('{"n": 1.5, "s": "x"}', "out_of_schema"),
    '"42" for BIGINT': ('{"n": "42", "s": "x"}', "out_of_schema"),
    "true for VARCHAR": ('{"n": 1, "s": true}', "out_of_schema"),
    "an extra field": ('{"n": 1, "s": "x", "extra": 1}', "out_of_schema"),
    "a missing field": ('{"n": 1}', "out_of_schema"),
    "null for a field": ('{"n": null, "s": "x"}', "out_of_schema"),
    "content null": (None, "empty_answer"),
    "content empty": ("", "empty_answer"),
    "content blank": ("  \n", "empty_answer"),
    "not JSON": ("n is 1", "invalid_json"),
    "a timestamp whose offset would be dropped": (
        '{"n": 1, "s": "x", "ts": "2024-01-02T03:04:05+02:00"}',
        "out_of_schema",
    ),
}


def _line(custom_id: str, content: str | None) -> str:
    message = {"role": "assistant", "content": content, "refusal": None}
    body = {
        "choices": [{"finish_reason": "stop", "message": message}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 5},
    }
    return json.dumps({"custom_id": custom_id, "response": {"status_code": 200, "body": body}})


def _classify(tmp_path: Path, output: str, lines: list[str]) -> list[tuple[Any, ...]]:
    root = tmp_path / "h"
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "models" / "m.sql").write_text(
        "{{ config(materialized='enrich', unique_key='id', model='gpt-4o-mini', output="
        + output
        + ") }}\nselect 1 as id, 'x' as prompt\n"
    )
    spec = load_project(root).models["m"].enrich
    assert spec is not None
    (tmp_path / "out.jsonl").write_text("\n".join(lines) + "\n")
    db = Database.connect(":memory:")
    answers.load_results(db, spec, [tmp_path / "out.jsonl"])
    return db.fetchall("SELECT request_hash, status, error_code FROM enrich_results ORDER BY 1")


@pytest.mark.parametrize("case", HOSTILE.values(), ids=HOSTILE.keys())
def test_an_answer_outside_the_declared_types_fails_with_a_reason(
    tmp_path: Path, case: tuple[str | None, str]
) -> None:
    content, reason = case
    output = "{'n': 'BIGINT', 's': 'VARCHAR'}"
    if content is not None and '"ts"' in content:
        output = "{'n': 'BIGINT', 's': 'VARCHAR', 'ts': 'TIMESTAMP'}"
    good = (
        '{"n": 7, "s": "ok"}'
        if '"ts"' not in (content or "")
        else ('{"n": 7, "s": "ok", "ts": "2024-01-02T03:04:05Z"}')
    )
    rows = _classify(tmp_path, output, [_line("bad", content), _line("good", good)])
    assert rows == [("bad", "failed", reason), ("good", "succeeded", None)]


def test_a_text_answer_that_is_empty_is_never_succeeded(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "models").mkdir(parents=True)
    (root / "models" / "m.sql").write_text(
        "{{ config(materialized='enrich', unique_key='id', model='gpt-4o-mini') }}\n"
        "select 1 as id, 'x' as prompt\n"
    )
    spec = load_project(root).models["m"].enrich
    assert spec is not None
    (tmp_path / "out.jsonl").write_text(_line("a", None) + "\n" + _line("b", "fine") + "\n")
    db = Database.connect(":memory:")
    answers.load_results(db, spec, [tmp_path / "out.jsonl"])
    assert db.fetchall(
        "SELECT request_hash, status, error_code FROM enrich_results ORDER BY 1"
    ) == [("a", "failed", "empty_answer"), ("b", "succeeded", None)]


# Done when: a project using every endpoint, a reasoning model, the Responses API, json_object,
# DATE/TIMESTAMP outputs and project-wide defaults puts only lines OpenAI accepts on the wire.

EVERYTHING = {
    "pyproject.toml": """
        [tool.enrich]
        database = "warehouse.duckdb"

        [tool.enrich.defaults]
        model = "gpt-4o-mini"
        temperature = 0
        max_tokens = 300
        seed = 7
    """,
    "seeds/notes.csv": SEED,
    "models/dated.sql": """
        {{ config(materialized='enrich', unique_key='id', system_prompt='When was it?',
                  output={'day': 'DATE', 'at': 'TIMESTAMP', 'tags': 'VARCHAR[]', 'n': 'BIGINT',
                          'ok': 'BOOLEAN', 'score': 'DOUBLE', 'mood': ['good', 'bad'],
                          'parts': 'STRUCT(a VARCHAR, b DOUBLE[])', 'clock': 'TIME',
                          'ref': 'UUID'}) }}
        select id, body as prompt from {{ ref('notes') }}
    """,
    "models/reasoned.sql": """
        {{ config(materialized='enrich', unique_key='id', model='o4-mini', reasoning_effort='low',
                  output={'label': ['cat', 'weather']}) }}
        select id, body as prompt from {{ ref('notes') }}
    """,
    "models/responded.sql": """
        {{ config(materialized='enrich', unique_key='id', endpoint='/v1/responses',
                  model='gpt-5-mini', verbosity='low', output={'summary': 'VARCHAR'}) }}
        select id, body as prompt from {{ ref('notes') }}
    """,
    "models/jsoned.sql": """
        {{ config(materialized='enrich', unique_key='id', response_format='json_object',
                  system_prompt='Answer in JSON.', output={'answer': 'VARCHAR'}) }}
        select id, body as prompt from {{ ref('notes') }}
    """,
    "models/embedded.sql": """
        {{ config(materialized='enrich', unique_key='id', endpoint='/v1/embeddings',
                  model='text-embedding-3-small', dimensions=8) }}
        select id, body as prompt from {{ ref('notes') }}
    """,
}


def test_every_feature_puts_only_accepted_lines_on_the_wire(tmp_path: Path) -> None:
    for env in start_env(tmp_path, EVERYTHING, wire=True):
        result = env.run()
        assert result.ok, [r.message for r in result.results]
        assert all(r.extra.get("rows_succeeded") == 2 for r in result.results if r.extra)
        lines = _lines_on_the_wire(env)
        assert len(lines) == 10
        check = BodyCheck()  # OpenAI's official schemas and the rules they leave out
        assert [(u, check.check(u, b)) for u, b in lines if check.check(u, b)] == []
        typed = env.query('SELECT typeof(day), typeof("at"), typeof(clock), typeof(ref) FROM dated')
        assert typed[0] == ("DATE", "TIMESTAMP", "TIME", "UUID")


def _lines_on_the_wire(env: Env) -> list[tuple[str, dict[str, Any]]]:
    """Every request line of every upload that crossed the wire."""
    assert env.wire is not None
    uploads = [
        e for e in env.wire._snapshot() if e.call.path == "/v1/files" and e.call.method == "POST"
    ]
    lines = []
    for upload in uploads:
        for raw in upload.request_body.split(b"\n"):
            if raw.startswith(b'{"custom_id"'):
                line = json.loads(raw)
                lines.append((line["url"], line["body"]))
    return lines
