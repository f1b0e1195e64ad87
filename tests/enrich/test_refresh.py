"""A refresh in which nothing changed writes nothing: not the ledger, not the model's table."""

from __future__ import annotations

from .conftest import Env, submitted


def _mark(env: Env) -> None:
    """A comment on the table: building it again (CREATE OR REPLACE) drops it."""
    env.query("COMMENT ON TABLE note_labels IS 'marked'")


def _marked(env: Env) -> bool:
    rows = env.query("SELECT comment FROM duckdb_tables() WHERE table_name = 'note_labels'")
    return rows == [("marked",)]


def _ledger_written(env: Env) -> object:
    return env.query("SELECT max(updated_at), count(*) FROM _enrich.requests")[0]


def test_a_refresh_that_changed_nothing_leaves_the_table_and_ledger_alone(notes: Env) -> None:
    notes.run()
    _mark(notes)
    ledger = _ledger_written(notes)
    again = notes.run()
    assert submitted(again, "note_labels") == 0
    assert _marked(notes) and _ledger_written(notes) == ledger
    assert notes.query("SELECT count(*) FROM note_labels") == [(5,)]


def test_a_changed_row_or_a_full_refresh_rebuilds_the_table(notes: Env) -> None:
    notes.run()
    _mark(notes)
    notes.run(full_refresh=True)
    assert not _marked(notes)
    _mark(notes)
    seed = notes.root / "seeds" / "notes.csv"
    seed.write_text(seed.read_text().replace("Rain is expected", "Snow is expected"))
    changed = notes.run()
    assert submitted(changed, "note_labels") == 1 and not _marked(notes)


def test_a_dropped_table_is_built_again(notes: Env) -> None:
    notes.run()
    db_rows = notes.query("DROP TABLE note_labels")
    assert db_rows == []
    notes.run()
    assert notes.query("SELECT count(*) FROM note_labels") == [(5,)]
