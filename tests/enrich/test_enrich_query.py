"""enrich_query: one query on a connection the caller opened, as dbt-duckdb or a notebook would."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest

from enrich import ProjectError, enrich_query
from enrich.batch.options import EnrichOptions

from .conftest import Env, start_env

CONFIG = {
    "unique_key": "id",
    "output": {"label": ["pets", "weather", "other"]},
    "system_prompt": "Label the note.",
}
QUERY = "SELECT id, body AS prompt FROM notes"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from start_env(tmp_path, {})


def _connection(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "host.duckdb"))
    con.execute("CREATE SCHEMA analytics")
    con.execute(
        "CREATE TABLE notes AS SELECT * FROM (VALUES (1, 'The cat sat.'), (2, 'Rain soon.'))"
        " AS t(id, body)"
    )
    return con


def _options(env: Env) -> EnrichOptions:
    return env.options()


def test_builds_a_typed_table_in_the_schema_asked_and_a_second_call_sends_nothing(
    env: Env, tmp_path: Path
) -> None:
    con = _connection(tmp_path)
    done = enrich_query(
        con, QUERY, "analytics.labels", CONFIG, options=_options(env), folder=tmp_path / "t"
    )
    assert done.status == "success" and done.figures["requests_submitted"] == 2
    types = con.execute(
        "SELECT data_type FROM information_schema.columns WHERE table_schema = 'analytics'"
        " AND table_name = 'labels' AND column_name = 'label'"
    ).fetchall()
    assert types and types[0][0].startswith("ENUM")
    assert con.execute("SELECT count(*) FROM analytics.labels").fetchall() == [(2,)]
    again = enrich_query(
        con, QUERY, "analytics.labels", CONFIG, options=_options(env), folder=tmp_path / "t"
    )
    assert again.figures["requests_submitted"] == 0 and len(env.received()) == 2
    con.execute("SELECT 1")  # the caller's connection is still open


def test_a_hosts_keys_are_ignored_and_unknown_keys_are_named(env: Env, tmp_path: Path) -> None:
    con = _connection(tmp_path)
    hosted = {**CONFIG, "alias": "x", "materialized": "enrich"}
    done = enrich_query(
        con, QUERY, "labels", hosted, host_keys={"alias"}, options=_options(env), where="m.sql"
    )
    assert done.rows == 2
    with pytest.raises(ProjectError, match=r"^m\.sql: config key 'unique_keys' is unknown"):
        enrich_query(con, QUERY, "labels", {"unique_keys": "id"}, where="m.sql")


def test_connections_of_a_new_database_calling_at_once_each_get_their_answer(
    tmp_path: Path,
) -> None:
    # dbt's threads: each model on its own cursor of one database, the ledger not made yet.
    con = _connection(tmp_path)
    cursors = [con.cursor() for _ in range(4)]

    def plan(i: int) -> str:
        options = EnrichOptions(dry_run=True)
        done = enrich_query(cursors[i], QUERY, f"labels_{i}", CONFIG, options=options)
        return done.message

    with ThreadPoolExecutor(max_workers=4) as pool:
        said = list(pool.map(plan, range(4)))
    assert all(m.startswith("dry run: 2 rows, 0 cached, 2 requests to send") for m in said)
