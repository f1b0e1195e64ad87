"""What dbt's materialization runs, called in this process as the macro calls it (dbt itself is
exercised in test_dbt.py): the enrich_* vars, and messages that name dbt's knobs."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pytest

from enrich.hosts import dbt_materialization
from enrich.hosts.dbt_materialization import OUTCOME_VARIABLE

CONFIG: dict[str, Any] = {
    "materialized": "enrich",
    "unique_key": "id",
    "system_prompt": "Label the note.",
    "output": {"label": ["pets", "weather", "other"]},
    # dbt's own keys, as every dbt model's config has them: enrich leaves them alone.
    "alias": None,
    "persist_docs": {},
    "post-hook": [],
    "on_schema_change": "ignore",
}


@pytest.fixture
def notes(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path / "dev.duckdb"))
    connection.execute(
        "CREATE TABLE notes AS SELECT * FROM (VALUES (1, 'The cat sat.'), (2, 'Rain soon.'))"
        " AS t(id, body)"
    )
    return connection


def _build(
    con: duckdb.DuckDBPyConnection, root: Path, vars: dict[str, Any], **changes: Any
) -> dict[str, Any]:
    request = {
        "query": "SELECT id, body AS prompt FROM notes",
        "target": '"dev"."main"."note_labels"',
        "name": "note_labels",
        "where": "models/note_labels.sql",
        "config": CONFIG,
        "project_dir": str(root),
        "target_path": "target",
        "full_refresh": False,
        "empty": False,
        "vars": vars,
        "vars_given": list(vars),
        **changes,
    }
    dbt_materialization.build(con, request)
    row = con.execute(f"SELECT getvariable('{OUTCOME_VARIABLE}')").fetchone()
    assert row is not None
    outcome: dict[str, Any] = json.loads(row[0])
    return outcome


def test_offline_builds_the_table_and_a_second_build_sends_nothing(
    notes: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    first = _build(notes, tmp_path, {"enrich_offline": True})
    assert first["status"] == "success" and first["summary"] == "OK 2 rows, 2 sent", first
    assert first["message"].startswith("note_labels: 2 rows: 0 cached, 2 sent")
    again = _build(notes, tmp_path, {"enrich_offline": "true"})
    assert again["summary"] == "OK 2 rows, 0 sent" and again["code"] == "OK"
    assert notes.execute("SELECT count(*) FROM main.note_labels").fetchall() == [(2,)]
    assert (tmp_path / "target" / "local-batch-api").is_dir()  # like enrich run --offline


def test_a_dry_run_says_what_it_would_send_and_builds_nothing(
    notes: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    outcome = _build(notes, tmp_path, {"enrich_dry_run": True})
    assert outcome["summary"] == "DRY RUN 2 to send" and not outcome["built"]
    assert "2 requests to send" in outcome["message"]
    tables = notes.execute("SELECT table_name FROM information_schema.tables").fetchall()
    assert ("note_labels",) not in tables


@pytest.mark.parametrize(
    ("vars", "said"),
    [
        ({}, "OPENAI_API_KEY is not set; export it, or add --vars '{enrich_offline: true}'"),
        (
            {"enrich_ofline": True},
            "'enrich_ofline' is not one of enrich's (did you mean 'enrich_offline'?)",
        ),
        ({"enrich_offline": "maybe"}, "the enrich_offline var is true or false, not 'maybe'"),
        (
            {"enrich_offline": True, "enrich_max_cost": 0.0000001},
            "nothing was sent. Raise the enrich_max_cost var or select fewer rows",
        ),
        ({"enrich_prices": {"gpt-4o-mini": 3}}, "the enrich_prices var maps models to prices"),
    ],
)
def test_mistakes_are_one_line_that_names_dbts_knobs(
    notes: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    vars: dict[str, Any],
    said: str,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    outcome = _build(notes, tmp_path, vars)
    assert outcome["status"] == "error" and said in outcome["message"], outcome
    assert "\n" not in outcome["message"] and "--offline " not in outcome["message"]


def test_an_unknown_config_key_is_named_and_dbts_own_keys_are_not(
    notes: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    config = {**CONFIG, "unique_keys": "id"}
    outcome = _build(notes, tmp_path, {"enrich_offline": True}, config=config)
    assert outcome["message"].startswith(
        "models/note_labels.sql: config key 'unique_keys' is unknown (did you mean 'unique_key'?)"
    )
    keys = dbt_materialization.dbt_config_keys()
    assert {"alias", "schema", "post-hook", "persist_docs"} <= keys


def test_empty_builds_the_typed_table_without_rows_even_from_a_table_named_directly(
    notes: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    outcome = _build(notes, tmp_path, {}, empty=True)  # no key needed: nothing is sent
    assert outcome["summary"] == "OK 0 rows, 0 sent", outcome
    kind = notes.execute(
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'note_labels'"
        " AND column_name = 'label'"
    ).fetchall()
    assert kind == [("ENUM('pets', 'weather', 'other')",)]


def test_offline_models_built_at_once_share_one_local_server(
    notes: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # dbt --threads 3 on a new database: each model on its own cursor, enrich_offline on.
    def build(i: int) -> dict[str, Any]:
        cursor = notes.cursor()
        return _build(
            cursor,
            tmp_path,
            {"enrich_offline": True},
            name=f"labels_{i}",
            target=f'"dev"."main"."labels_{i}"',
            config={**CONFIG, "system_prompt": f"Label the note, {i}."},
        )

    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(build, range(3)))
    assert [o["summary"] for o in outcomes] == ["OK 2 rows, 2 sent"] * 3, outcomes


def test_the_order_dbt_hands_a_configs_dicts_over_in_sends_nothing_again(
    notes: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # dbt gives dicts in the order written after one parse and sorted after a partial parse.
    written = {"topics": "VARCHAR[]", "summary": "VARCHAR"}
    params = {"temperature": 0.2, "max_tokens": 50}
    config = {**CONFIG, "output": written, "params": params}
    first = _build(notes, tmp_path, {"enrich_offline": True}, config=config)
    flipped = {
        **config,
        "output": dict(reversed(written.items())),
        "params": dict(sorted(params.items())),
    }
    again = _build(notes, tmp_path, {"enrich_offline": True}, config=flipped)
    assert (first["summary"], again["summary"]) == ("OK 2 rows, 2 sent", "OK 2 rows, 0 sent")
    columns = notes.execute("SELECT * FROM main.note_labels LIMIT 0").description
    assert [c[0] for c in columns][1:3] == ["summary", "topics"]


def test_the_enrich_ledger_var_keeps_requests_in_that_file_under_the_project(
    notes: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    outcome = _build(
        notes, tmp_path, {"enrich_offline": True, "enrich_ledger": "state/ledger.duckdb"}
    )
    assert outcome["summary"] == "OK 2 rows, 2 sent", outcome
    assert notes.execute("SELECT count(*) FROM _enrich.requests").fetchall() == [(0,)]
    kept = notes.execute("SELECT count(*) FROM enrich_ledger._enrich.requests").fetchall()
    assert kept == [(2,)] and (tmp_path / "state" / "ledger.duckdb").is_file()


def test_an_output_written_as_a_list_keeps_its_fields_in_that_order(
    notes: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # The order a model fills its fields in matters ("reasoning" before "answer"): a list keeps it.
    config = {**CONFIG, "output": [{"reasoning": "VARCHAR"}, {"answer": "VARCHAR"}]}
    outcome = _build(notes, tmp_path, {"enrich_offline": True}, config=config)
    assert outcome["summary"] == "OK 2 rows, 2 sent", outcome
    columns = notes.execute("SELECT * FROM main.note_labels LIMIT 0").description
    assert [c[0] for c in columns][1:3] == ["reasoning", "answer"]


@pytest.mark.parametrize(
    ("value", "used"), [(False, False), ("", False), ("false", False), (True, None), ("yes", None)]
)
def test_the_enrich_ledger_var_is_a_path_or_off(
    notes: duckdb.DuckDBPyConnection, tmp_path: Path, value: Any, used: bool | None
) -> None:
    outcome = _build(notes, tmp_path, {"enrich_offline": True, "enrich_ledger": value})
    if used is None:
        assert outcome["message"] == (
            "models/note_labels.sql: the enrich_ledger var is the path of a DuckDB file "
            f"(relative to the dbt project), not {value!r}"
        )
    else:
        assert outcome["summary"] == "OK 2 rows, 2 sent", outcome
        assert notes.execute("SELECT count(*) FROM _enrich.requests").fetchall() == [(2,)]
