"""A refresh in which nothing changed writes nothing: not the ledger, not the model's table."""

from __future__ import annotations

import pytest

from .conftest import Env, node, submitted


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


def _settled(result: object) -> bool:
    return bool(node(result, "note_labels").extra.get("settled"))  # type: ignore[arg-type]


def test_a_settled_model_stops_before_planning_and_says_what_it_has(notes: Env) -> None:
    first = notes.run()
    assert not _settled(first)
    again = notes.run()
    assert _settled(again) and submitted(again, "note_labels") == 0
    said = node(again, "note_labels").message
    assert said.startswith("5 rows: 5 cached, 0 sent, 5 succeeded, 0 failed, 0 pending")
    assert notes.query("SELECT count(*) FROM note_labels") == [(5,)]


def test_any_change_it_depends_on_unsettles_it(notes: Env) -> None:
    notes.run()
    seed = notes.root / "seeds" / "notes.csv"
    seed.write_text(seed.read_text().replace("Rain is expected", "Snow is expected"))
    changed = notes.run()
    assert not _settled(changed) and submitted(changed, "note_labels") == 1
    assert _settled(notes.run())
    # A column that is no part of any request is still a change to the rows: planned again.
    model = notes.root / "models" / "note_labels.sql"
    model.write_text(model.read_text().replace("body as prompt", "body as prompt, 1 AS extra"))
    assert not _settled(notes.run())
    notes.query("DROP TABLE note_labels")
    rebuilt = notes.run()
    assert not _settled(rebuilt) and notes.query("SELECT count(*) FROM note_labels") == [(5,)]
    assert not _settled(notes.run(full_refresh=True))


def test_a_model_with_rows_left_unanswered_is_never_settled(notes: Env) -> None:
    notes.faults(fail_fraction=1.0, fail_status=400)
    failing = notes.run()
    assert submitted(failing, "note_labels") == 4
    notes.faults(fail_fraction=0.0)
    retried = notes.run()
    assert not _settled(retried) and submitted(retried, "note_labels") == 4


def test_another_models_answers_to_shared_requests_reach_a_settled_table(notes: Env) -> None:
    """A twin model asks the same requests; sending them again for it gives new answers, which
    the settled model's table must show: any write to the ledger unsettles every model."""
    twin = (notes.root / "models" / "note_labels.sql").read_text()
    notes.write("models/note_twins.sql", twin)
    notes.run()
    assert _settled(notes.run(select=("note_labels",)))
    notes.clock.advance(60)
    notes.run(select=("note_twins",), resend=True)
    again = notes.run(select=("note_labels",))
    assert not _settled(again)
    label_times = notes.query("SELECT max(_enrich_finished_at) FROM note_labels")
    twin_times = notes.query("SELECT max(_enrich_finished_at) FROM note_twins")
    assert label_times == twin_times


def test_a_model_with_batches_in_flight_is_never_settled(notes: Env) -> None:
    """A resend keeps the answers it replaces until the new ones come: every row is answered, yet
    the next run must collect the batch in flight."""
    notes.run()
    resent = notes.run(resend=True, wait=False)
    assert submitted(resent, "note_labels") == 4 and not _settled(resent)
    notes.clock.advance(60)
    collected = notes.run()
    assert not _settled(collected)
    rows = notes.query("SELECT count(*) FROM _enrich.batches WHERE collected_at IS NULL")
    assert rows == [(0,)]
    assert _settled(notes.run())


def test_the_same_values_under_other_columns_are_not_the_same_rows(notes: Env) -> None:
    """A row's hash is of its values alone: swapping which column is the prompt plans again."""
    model = notes.root / "models" / "note_labels.sql"
    model.write_text(model.read_text().replace("body as prompt", "body as prompt, topic"))
    notes.run()
    swapped = model.read_text().replace("body as prompt, topic", "topic as prompt, body")
    model.write_text(swapped)
    again = notes.run()
    assert not _settled(again) and submitted(again, "note_labels") == 3  # three topics


class _Stop(Exception):
    pass


def _stop_at(step: str) -> object:
    def on_step(name: str) -> None:
        if name == step:
            raise _Stop(name)

    return on_step


def test_a_build_stopped_halfway_leaves_nothing_settled(notes: Env) -> None:
    notes.run()
    seed = notes.root / "seeds" / "notes.csv"
    before = seed.read_text()
    seed.write_text("\n".join(before.splitlines()[:-1]) + "\n")  # one row fewer
    with pytest.raises(_Stop):
        notes.run(on_step=_stop_at("target_built"))
    seed.write_text(before)  # back as it was when the model was last settled
    again = notes.run()
    assert not _settled(again)
    assert notes.query("SELECT count(*) FROM note_labels") == [(5,)]
