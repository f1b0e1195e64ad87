"""enrich_query: one query on a connection the caller opened, as dbt-duckdb or a notebook would."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest

from enrich import ProjectError, enrich_query
from enrich.batch.options import EnrichOptions

from .conftest import NOTES, Env, start_env

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


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[Env]:
    yield from start_env(tmp_path, {}, wire=True)


def _database(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE IF NOT EXISTS notes AS"
        " SELECT * FROM (VALUES (1, 'The cat sat.'), (2, 'Rain soon.')) AS t(id, body)"
    )
    return con


def test_databases_sharing_a_ledger_pay_once_for_the_same_requests(
    wired: Env, tmp_path: Path
) -> None:
    # dbt's dev and prod targets: two database files, one ledger file named by both.
    ledger = tmp_path / "shared" / "ledger.duckdb"
    dev = _database(tmp_path / "dev.duckdb")
    first = enrich_query(dev, QUERY, "labels", CONFIG, options=wired.options(), ledger=ledger)
    dev.close()
    prod = _database(tmp_path / "prod.duckdb")
    prod.execute("INSERT INTO notes VALUES (3, 'Snow tonight.')")
    second = enrich_query(prod, QUERY, "labels", CONFIG, options=wired.options(), ledger=ledger)
    assert (first.figures["requests_submitted"], second.figures["requests_submitted"]) == (2, 1)
    assert second.figures["rows_cached"] == 2
    assert wired.wire is not None and sum(wired.wire.sent_for_execution().values()) == 3
    assert len(wired.received()) == 3
    labels = prod.execute("SELECT id, label IS NOT NULL FROM labels ORDER BY id").fetchall()
    assert labels == [(1, True), (2, True), (3, True)]
    # What was paid for is in the ledger; what each table was built from, in its own database.
    own = prod.execute("SELECT count(*) FROM _enrich.requests").fetchall()
    built = prod.execute("SELECT node FROM _enrich.targets").fetchall()
    assert own == [(0,)] and built == [("labels",)]
    prod.close()
    with duckdb.connect(str(ledger), read_only=True) as kept:
        assert kept.execute("SELECT count(*) FROM _enrich.requests").fetchall() == [(3,)]


def test_a_second_ledger_on_one_connection_is_refused(env: Env, tmp_path: Path) -> None:
    con = _database(tmp_path / "dev.duckdb")
    options = EnrichOptions(dry_run=True)
    enrich_query(con, QUERY, "labels", CONFIG, options=options, ledger=tmp_path / "a.duckdb")
    with pytest.raises(ProjectError, match=r"already keeps its ledger in .*a\.duckdb, not "):
        enrich_query(con, QUERY, "labels", CONFIG, options=options, ledger=tmp_path / "b.duckdb")


def test_a_database_that_takes_a_shared_ledger_brings_its_answers_along(
    wired: Env, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.duckdb"
    dev = _database(tmp_path / "dev.duckdb")
    enrich_query(dev, QUERY, "labels", CONFIG, options=wired.options())  # its own ledger
    again = enrich_query(dev, QUERY, "labels", CONFIG, options=wired.options(), ledger=ledger)
    dev.close()
    prod = _database(tmp_path / "prod.duckdb")
    third = enrich_query(prod, QUERY, "labels", CONFIG, options=wired.options(), ledger=ledger)
    assert again.figures["requests_submitted"] == third.figures["requests_submitted"] == 0
    assert wired.wire is not None and sum(wired.wire.sent_for_execution().values()) == 2
    assert prod.execute("SELECT count(label) FROM labels").fetchall() == [(2,)]


def test_a_database_with_batches_out_keeps_its_own_ledger_until_they_are_collected(
    wired: Env, tmp_path: Path
) -> None:
    dev = _database(tmp_path / "dev.duckdb")
    out = enrich_query(dev, QUERY, "labels", CONFIG, options=wired.options(wait=False))
    assert out.figures["rows_pending"] == 2
    with pytest.raises(ProjectError, match=r"^database dev has 2 requests in batches of its own"):
        enrich_query(dev, QUERY, "labels", CONFIG, ledger=tmp_path / "ledger.duckdb")
    assert wired.wire is not None and sum(wired.wire.sent_for_execution().values()) == 2


def test_answers_a_database_paid_for_replace_the_shared_ledgers_failures(
    wired: Env, tmp_path: Path
) -> None:
    once = {**CONFIG, "max_attempts": 1}
    ledger = tmp_path / "ledger.duckdb"
    dev = _database(tmp_path / "dev.duckdb")
    enrich_query(dev, QUERY, "labels", once, options=wired.options())  # answered, its own ledger
    dev.close()
    wired.faults(fail_fraction=1.0)  # prod, on the shared ledger, fails the same requests
    prod = _database(tmp_path / "prod.duckdb")
    failed = enrich_query(prod, QUERY, "labels", once, options=wired.options(), ledger=ledger)
    assert failed.figures["rows_failed"] == 2
    prod.close()
    dev = _database(tmp_path / "dev.duckdb")
    shared = enrich_query(dev, QUERY, "labels", once, options=wired.options(), ledger=ledger)
    assert shared.figures["rows_succeeded"] == 2 and shared.figures["requests_submitted"] == 0
    assert dev.execute("SELECT count(label) FROM labels").fetchall() == [(2,)]
    assert wired.wire is not None and sum(wired.wire.sent_for_execution().values()) == 4


def test_a_dry_run_with_a_ledger_moves_nothing(env: Env, tmp_path: Path) -> None:
    dev = _database(tmp_path / "dev.duckdb")
    enrich_query(dev, QUERY, "labels", CONFIG, options=env.options())
    dry = env.options(dry_run=True)
    said = enrich_query(dev, QUERY, "labels", CONFIG, options=dry, ledger=tmp_path / "l.duckdb")
    assert said.message.startswith("dry run: 2 rows, 2 cached, 0 requests to send"), said.message
    assert dev.execute("SELECT count(*) FROM _enrich.requests").fetchall() == [(2,)]


def test_a_database_whose_answers_moved_refuses_a_run_that_would_pay_again(
    env: Env, tmp_path: Path
) -> None:
    dev = _database(tmp_path / "dev.duckdb")
    enrich_query(dev, QUERY, "labels", CONFIG, options=env.options())
    enrich_query(dev, QUERY, "labels", CONFIG, options=env.options(), ledger=tmp_path / "l.duckdb")
    dev.close()
    dev = _database(tmp_path / "dev.duckdb")
    for other in (None, tmp_path / "m.duckdb"):
        with pytest.raises(ProjectError, match=r"^database dev keeps its answers in the shared "):
            enrich_query(dev, QUERY, "labels", CONFIG, options=env.options(), ledger=other)
        dev.close()
        dev = _database(tmp_path / "dev.duckdb")
    done = enrich_query(
        dev, QUERY, "labels", CONFIG, options=env.options(), ledger=tmp_path / "l.duckdb"
    )
    assert done.figures["requests_submitted"] == 0 and len(env.received()) == 2


def test_a_batch_another_database_sent_is_collected_into_this_runs_own_folder(
    env: Env, tmp_path: Path
) -> None:
    ledger, theirs, mine = tmp_path / "ledger.duckdb", tmp_path / "a", tmp_path / "b"
    dev = _database(tmp_path / "dev.duckdb")
    out = enrich_query(
        dev, QUERY, "labels", CONFIG, options=env.options(wait=False), ledger=ledger, folder=theirs
    )
    assert out.figures["rows_pending"] == 2
    dev.close()
    shutil.rmtree(theirs)
    theirs.write_text("another checkout's folder, not ours to write\n")
    prod = _database(tmp_path / "prod.duckdb")
    done = enrich_query(
        prod, QUERY, "labels", CONFIG, options=env.options(), ledger=ledger, folder=mine
    )
    assert done.figures["rows_succeeded"] == 2 and done.figures["requests_submitted"] == 0
    assert len(env.received()) == 2


def test_a_database_built_on_a_shared_ledger_refuses_a_run_without_it_or_a_new_file(
    env: Env, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.duckdb"
    prod = _database(tmp_path / "prod.duckdb")
    enrich_query(prod, QUERY, "labels", CONFIG, options=env.options(), ledger=ledger)
    prod.close()
    ledger.unlink()  # the ledger deleted: a new, empty file in its place would pay again
    for named in (None, ledger):
        prod = _database(tmp_path / "prod.duckdb")
        with pytest.raises(ProjectError, match=r"restore it if it was deleted"):
            enrich_query(prod, QUERY, "labels", CONFIG, options=env.options(), ledger=named)
        prod.close()
    assert len(env.received()) == 2


def test_an_answer_whose_shared_request_is_in_a_batch_stays_until_that_batch_is_collected(
    wired: Env, tmp_path: Path
) -> None:
    once, ledger = {**CONFIG, "max_attempts": 1}, tmp_path / "ledger.duckdb"
    dev = _database(tmp_path / "dev.duckdb")
    enrich_query(dev, QUERY, "labels", once, options=wired.options())  # answered, its own ledger
    dev.close()
    wired.faults(fail_fraction=1.0)  # prod sends the same requests; they will fail
    prod = _database(tmp_path / "prod.duckdb")
    out = enrich_query(
        prod, QUERY, "labels", once, options=wired.options(wait=False), ledger=ledger
    )
    assert out.figures["rows_pending"] == 2
    prod.close()
    dev = _database(tmp_path / "dev.duckdb")
    enrich_query(dev, QUERY, "labels", once, options=wired.options(), ledger=ledger)
    # prod's batch failed both; dev's answers were kept back, and the next run moves them in.
    again = enrich_query(dev, QUERY, "labels", once, options=wired.options(), ledger=ledger)
    assert again.figures["rows_succeeded"] == 2 and again.figures["requests_submitted"] == 0
    assert dev.execute("SELECT count(label) FROM labels").fetchall() == [(2,)]
    assert dev.execute("SELECT count(*) FROM _enrich.requests").fetchall() == [(0,)]
    assert wired.wire is not None and sum(wired.wire.sent_for_execution().values()) == 4


def test_an_enrich_project_whose_database_moved_its_answers_is_refused(tmp_path: Path) -> None:
    for env in start_env(tmp_path, NOTES):
        assert env.run().ok and len(env.received()) == 4
        con = duckdb.connect(str(env.root / "warehouse.duckdb"))
        side = "SELECT id, body AS prompt FROM notes"
        options = env.options()
        enrich_query(con, side, "side", CONFIG, options=options, ledger=tmp_path / "l.duckdb")
        con.close()
        again = env.run()
        [result] = [r for r in again.results if r.name == "note_labels"]
        assert result.status == "error" and "keeps its answers in the shared ledger" in (
            result.message
        ), result.message
        assert len(env.received()) == 4 + 4
