"""Bad input is stopped before anything is sent, with the file, the key and what to do; odd but
valid input goes through intact. Row-level checks (duplicate keys, NULL or empty prompts, NULL
keys, image URLs, request size) and config checks are in tests/enrich/test_requests.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enrich import cli

from ..enrich.conftest import API_KEY, NOTES, Env, node, start_env

PROJECT_MISTAKES = [
    pytest.param(
        {
            "models/note_labels.sql": "{{ config(materialized='enrich', unique_key='id') }}\n"
            "select id, body as prompt fro {{ ref('notes') }}"
        },
        "models/note_labels.sql:2:",
        id="sql-syntax-error",
    ),
    pytest.param(
        {
            "models/note_labels.sql": "{{ config(materialized='enrich', unique_key='id') }}\n"
            "select id, body as prompt from {{ ref('note') }}"
        },
        "ref('note') is not a model or seed (did you mean 'notes'?)",
        id="missing-ref",
    ),
    pytest.param(
        {
            "models/a.sql": "select * from {{ ref('b') }}",
            "models/b.sql": "select * from {{ ref('a') }}",
        },
        "a → b → a",
        id="cycle",
    ),
    pytest.param(
        {
            "models/note_labels.sql": (
                "{{ config(materialized='enrich', unique_key='id', temprature=0) }}\n"
                "select id, body as prompt from {{ ref('notes') }}"
            )
        },
        "config key 'temprature' is unknown (did you mean 'temperature'?)",
        id="unknown-config-key",
    ),
    pytest.param(
        {"seeds/notes.csv": "id,body,topic\n1,ok,pets\n2,too,many,fields\n"},
        "seeds/notes.csv:3:",
        id="ragged-seed",
    ),
]


@pytest.mark.parametrize(("files", "message"), PROJECT_MISTAKES)
def test_project_mistakes_stop_the_cli_before_anything_is_uploaded(
    tmp_path: Path,
    files: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for env in start_env(tmp_path, NOTES | files):
        monkeypatch.setenv("OPENAI_BASE_URL", env.server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)

        code = cli.main(["run", "--project-dir", str(env.root)])

        captured = capsys.readouterr()
        assert code == 1
        assert message in captured.err
        assert env.files_uploaded() == 0 and env.received() == []


def test_bad_seed_bytes_name_the_line(tmp_path: Path) -> None:
    for env in start_env(tmp_path, NOTES):
        (env.root / "seeds" / "notes.csv").write_bytes(b"id,body,topic\n1,caf\xe9,x\n")
        result = env.run()
        seed = node(result, "notes")
        assert (
            seed.status == "error"
            and "seeds/notes.csv:2" in seed.message
            and "UTF-8" in seed.message
        )
        assert env.files_uploaded() == 0


@pytest.fixture
def notes(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield from start_env(tmp_path, NOTES)


def test_bytes_that_are_not_utf8_reach_the_prompt_escaped_never_garbled(notes: Env) -> None:
    notes.write(
        "models/note_labels.sql",
        "{{ config(materialized='enrich', unique_key='id') }}\n"
        "select 1 as id, 'caf' || from_hex('e9')::VARCHAR as prompt",  # Latin-1 bytes
    )

    result = notes.run()

    assert node(result, "note_labels").extra["rows_succeeded"] == 1
    [(answer,)] = notes.query("SELECT response FROM note_labels")
    assert "caf\\xE9" in answer  # DuckDB spells the byte out; the JSON stays valid UTF-8


def test_a_model_with_zero_rows_is_fine_and_sends_nothing(notes: Env) -> None:
    notes.write(
        "models/note_labels.sql",
        "{{ config(materialized='enrich', unique_key='id', output={'label': 'VARCHAR'}) }}\n"
        "select id, body as prompt from {{ ref('notes') }} where false",
    )

    result = notes.run()

    assert node(result, "note_labels").status == "success"
    assert node(result, "note_labels").extra["requests_submitted"] == 0
    assert notes.query("SELECT count(*) FROM note_labels") == [(0,)]
    assert notes.files_uploaded() == 0


AWKWARD = [
    '{"already": "json", "n": [1, 2]}',
    "She said \"no\" and 'maybe'; then: DROP TABLE note_labels; --",
    "line one\nline two\ttabbed\r\nline three",
    "emoji 🎬🍿 and accents: café, naïve, 東京",
    "back\\slash and a NUL-free \u2028 separator",
]


def test_prompts_with_json_quotes_newlines_and_emoji_are_sent_exactly(tmp_path: Path) -> None:
    for env in start_env(tmp_path, NOTES | {"seeds/notes.csv": _csv(AWKWARD)}):
        env.write(
            "models/note_labels.sql",
            "{{ config(materialized='enrich', unique_key='id') }}\n"
            "select id, body as prompt from {{ ref('notes') }}",
        )
        env.run(wait=False)

        [uploaded] = env.server.engine.list_files(None, "desc", 10, None)["data"]
        text = env.server.engine.file_content(uploaded["id"]).read_text(encoding="utf-8")
        lines = text.rstrip("\n").split("\n")  # JSONL is split on \n alone (U+2028 is text)
        sent = sorted(json.loads(line)["body"]["messages"][-1]["content"] for line in lines)
        assert sent == sorted(AWKWARD)

        env.clock.advance(60)
        env.run()
        answers = dict(env.query("SELECT id, response FROM note_labels"))
        assert "DROP TABLE note_labels" in answers[2]  # stored as a value, never run
        assert "🎬🍿" in answers[4] and "東京" in answers[4]
        assert env.query("SELECT count(*) FROM note_labels") == [(5,)]


def _csv(texts: list[str]) -> str:
    quoted = ['"' + text.replace('"', '""') + '"' for text in texts]
    return "id,body,topic\n" + "".join(f"{i},{q},misc\n" for i, q in enumerate(quoted, 1))
