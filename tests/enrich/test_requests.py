"""What is sent, what is reused, and what stops a model before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enrich import load_project
from enrich.errors import ProjectError

from .conftest import NOTES, Env, node, start_env, submitted

BAD_ROWS = [
    pytest.param(
        "select id, body as prompt from {{ ref('notes') }} union all select 1, 'again'",
        'unique_key is not unique: key {"id":1} appears 2 times',
        id="duplicate-key",
    ),
    pytest.param(
        "select id, case when id = 3 then null else body end as prompt from {{ ref('notes') }}",
        'the prompt of key {"id":3} is NULL or empty (1 row(s) like it)',
        id="null-prompt",
    ),
    pytest.param(
        "select id, case when id = 2 then '   ' else body end as prompt from {{ ref('notes') }}",
        'the prompt of key {"id":2} is NULL or empty',
        id="empty-prompt",
    ),
    pytest.param(
        "select nullif(id, 4) as id, body as prompt from {{ ref('notes') }}",
        'key {"id":null} has a NULL part',
        id="null-key",
    ),
    pytest.param(
        "select id, body as prompt, 'ftp://example.com/a.png' as image_url from {{ ref('notes') }}",
        "the image URL of key {\"id\":1} is 'ftp://example.com/a.png' (5 like it)",
        id="image-not-http",
    ),
    pytest.param(
        "select id, repeat(body, 20000) as prompt from {{ ref('notes') }}",
        "is estimated at",
        id="over-token-budget",
    ),
]


@pytest.mark.parametrize(("select", "message"), BAD_ROWS)
def test_a_bad_row_stops_the_model_before_anything_is_uploaded(
    notes: Env, select: str, message: str
) -> None:
    notes.write(
        "pyproject.toml",
        NOTES["pyproject.toml"] + "\n[tool.enrich.batch]\nenqueued_tokens = 50000\n",
    )
    config = "{{ config(materialized='enrich', unique_key='id', system_prompt='Label.') }}\n"
    notes.write("models/note_labels.sql", config + select)

    result = notes.run()

    failure = node(result, "note_labels")
    assert failure.status == "error"
    assert failure.message.startswith("models/note_labels.sql: ")
    assert message in failure.message
    assert notes.files_uploaded() == 0 and notes.received() == []


def test_a_request_over_the_file_size_limit_is_refused_naming_its_key(notes: Env) -> None:
    notes.write(
        "pyproject.toml", NOTES["pyproject.toml"] + "\n[tool.enrich.batch]\nmax_bytes = 2000\n"
    )
    notes.write(
        "models/note_labels.sql",
        "{{ config(materialized='enrich', unique_key='id') }}\n"
        "select id, case when id = 5 then repeat('x', 3000) else body end as prompt"
        " from {{ ref('notes') }}",
    )

    failure = node(notes.run(), "note_labels")

    assert 'the request of key {"id":5} is' in failure.message and "2000-byte" in failure.message
    assert notes.files_uploaded() == 0


CONFIG_ERRORS = [
    (
        "output={'label': 'VARCHR'}",
        "output field 'label': Catalog Error: Type with name VARCHR does not exist",
    ),
    ("output={'label': []}", "output field 'label': the list of allowed values is empty"),
    ("output={'label': 'MAP(VARCHAR, INTEGER)'}", "cannot be answered in JSON"),
    ("outptu={'label': 'VARCHAR'}", "config key 'outptu' is unknown (did you mean 'output'?)"),
    ("response_format='json_object'", "response_format='json_object' needs output="),
    ("endpoint='/v1/completions'", "endpoint '/v1/completions' is not supported"),
    (
        "system_prompt_file='prompts/missing.md'",
        "system_prompt_file 'prompts/missing.md' does not exist",
    ),
    ("max_attempts=0", "max_attempts must be a whole number of at least 1"),
]


@pytest.mark.parametrize(("config", "message"), CONFIG_ERRORS)
def test_config_mistakes_are_caught_when_the_project_loads(
    notes: Env, config: str, message: str
) -> None:
    notes.write(
        "models/note_labels.sql",
        f"{{{{ config(materialized='enrich', unique_key='id', {config}) }}}}\n"
        "select id, body as prompt from {{ ref('notes') }}",
    )

    with pytest.raises(ProjectError) as caught:
        load_project(notes.root)

    assert str(caught.value).startswith("models/note_labels.sql: ")
    assert message in str(caught.value)


def test_a_model_without_a_model_name_asks_the_default_model(notes: Env) -> None:
    notes.write("pyproject.toml", "[tool.enrich]\ndatabase = 'warehouse.duckdb'\n")
    spec = load_project(notes.root).models["note_labels"].enrich
    assert spec is not None and spec.model == "gpt-4o-mini"
    notes.write("pyproject.toml", "[tool.enrich.defaults]\nmodel = ''\n")
    with pytest.raises(ProjectError, match=r"model must name a model, like model='gpt-4o-mini'"):
        load_project(notes.root)


def test_identical_requests_in_different_rows_are_sent_once(notes: Env) -> None:
    result = notes.run()

    assert submitted(result, "note_labels") == 4  # notes 1 and 5 say the same thing
    rows = notes.query("SELECT id, label, _enrich_request_hash FROM note_labels ORDER BY id")
    assert len(rows) == 5 and rows[0][2] == rows[4][2] and rows[0][1] == rows[4][1]


def test_answers_are_typed_and_labels_stay_in_their_list(notes: Env) -> None:
    notes.run()

    types = dict(
        notes.query(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'note_labels'"
        )
    )
    assert types["label"].startswith("ENUM(") and types["score"] == "DOUBLE"
    assert types["id"] == "BIGINT"


def test_rows_gone_from_the_source_leave_the_table(notes: Env) -> None:
    notes.run()
    notes.write(
        "seeds/notes.csv",
        "id,body,topic\n1,The cat sat on the mat.,pets\n2,Rain is expected tomorrow.,weather\n",
    )

    result = notes.run()

    assert submitted(result, "note_labels") == 0
    assert notes.query("SELECT id FROM note_labels ORDER BY id") == [(1,), (2,)]


def test_keep_removed_keeps_rows_gone_from_the_source(notes: Env) -> None:
    model = notes.root / "models" / "note_labels.sql"
    model.write_text(
        model.read_text().replace("unique_key='id',", "unique_key='id', keep_removed=true,")
    )
    notes.run()
    notes.write("seeds/notes.csv", "id,body,topic\n1,The cat sat on the mat.,pets\n")

    notes.run()

    assert [r[0] for r in notes.query("SELECT id FROM note_labels ORDER BY id")] == [1, 2, 3, 4, 5]


def test_changing_a_parameter_resends_and_changing_it_back_reuses(notes: Env) -> None:
    notes.run()
    model = notes.root / "models" / "note_labels.sql"
    original = model.read_text()
    model.write_text(
        original.replace(
            "system_prompt='Label the note.',", "system_prompt='Label the note.', temperature=0.5,"
        )
    )

    assert submitted(notes.run(), "note_labels") == 4
    model.write_text(original)
    assert submitted(notes.run(), "note_labels") == 0  # the first answers are still cached


def test_full_refresh_rebuilds_from_the_ledger_and_resend_sends_everything_once(
    notes: Env,
) -> None:
    notes.run()
    notes.query("DROP TABLE note_labels")

    rebuilt = notes.run(full_refresh=True)

    assert submitted(rebuilt, "note_labels") == 0 and len(notes.received()) == 4
    assert notes.query("SELECT count(*) FROM note_labels") == [(5,)]
    result = notes.run(resend=True)
    assert submitted(result, "note_labels") == 4
    assert "0 cached, 4 sent again" in node(result, "note_labels").message
    assert any("re-sending 4 requests" in e.message for e in notes.events)
    assert len(notes.received()) == 8


def test_per_row_system_prompts_and_image_lists_shape_the_request(notes: Env) -> None:
    notes.write(
        "models/note_labels.sql",
        "{{ config(materialized='enrich', unique_key='id', system_prompt='Default.') }}\n"
        "select id, body as prompt,\n"
        "  case when id = 1 then 'Be brief.' end as system_prompt,\n"
        "  ['https://example.com/' || id || '.png', 'data:image/png;base64,AAAA'] as image_url\n"
        "from {{ ref('notes') }} where id in (1, 2)",
    )
    notes.run(wait=False)

    [uploaded] = notes.server.engine.list_files(None, "desc", 10, None)["data"]
    lines = [
        json.loads(raw)
        for raw in notes.server.engine.file_content(uploaded["id"]).read_text().splitlines()
    ]
    systems = sorted(line["body"]["messages"][0]["content"] for line in lines)
    assert systems == ["Be brief.", "Default."]
    parts = lines[0]["body"]["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url"]


def test_embeddings_land_in_a_float_list_column(tmp_path: Path) -> None:
    files = dict(NOTES)
    files["models/note_labels.sql"] = (
        "{{ config(materialized='enrich', unique_key='id', endpoint='/v1/embeddings',"
        " model='text-embedding-3-small') }}\nselect id, body as prompt from {{ ref('notes') }}"
    )
    for env in start_env(tmp_path, files):
        result = env.run()
        assert node(result, "note_labels").extra["rows_succeeded"] == 5
        [(kind, length)] = env.query(
            "SELECT any_value(typeof(embedding)), min(len(embedding)) FROM note_labels"
        )
        assert kind == "FLOAT[]" and length > 10


def test_the_responses_endpoint_is_one_more_mapping(tmp_path: Path) -> None:
    files = dict(NOTES)
    files["models/note_labels.sql"] = (
        "{{ config(materialized='enrich', unique_key='id', endpoint='/v1/responses',"
        " system_prompt='Label the note.',"
        " output={'label': ['pets', 'weather', 'markets', 'other'], 'score': 'DOUBLE'}) }}\n"
        "select id, body as prompt, 'https://example.com/' || id || '.png' as image_url"
        " from {{ ref('notes') }}"
    )
    for env in start_env(tmp_path, files):
        env.run(wait=False)
        [uploaded] = env.server.engine.list_files(None, "desc", 10, None)["data"]
        body = json.loads(
            env.server.engine.file_content(uploaded["id"]).read_text().splitlines()[0]
        )["body"]
        assert body["text"]["format"]["type"] == "json_schema" and body["text"]["format"]["strict"]
        system, user = body["input"]
        assert system == {"role": "system", "content": "Label the note."}
        assert [p["type"] for p in user["content"]] == ["input_text", "input_image"]

        env.clock.advance(60)
        result = env.run()

        assert node(result, "note_labels").extra["rows_succeeded"] == 5
        rows = env.query("SELECT label::VARCHAR, score FROM note_labels")
        assert all(label in ("pets", "weather", "markets", "other") for label, _ in rows)
