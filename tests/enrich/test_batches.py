"""Following batches: waiting, collecting later, shards and waves, retries, interruptions.

The faults the API injects, one by one, are in tests/reliability/test_fault_matrix.py.
"""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from enrich.batch import answers as batch_results
from enrich.batch.pipeline import STEPS
from enrich.project.loader import load_project
from enrich.project.run_results import RunResult
from enrich.server import Limits
from enrich.warehouse.db import Database

from .conftest import NOTES, Env, node, start_env, submitted


def executed(env: Env) -> Counter[str]:
    """How many times the server ran each request (by custom_id)."""
    return Counter(line["custom_id"] for line in env.received())


def figures(result: RunResult) -> tuple[int, int, int]:
    extra = node(result, "note_labels").extra
    return extra["rows_succeeded"], extra["rows_failed"], extra["rows_pending"]


def test_no_wait_submits_and_a_later_run_collects_without_resending(notes: Env) -> None:
    first = notes.run(wait=False)
    assert figures(first) == (0, 0, 5) and submitted(first, "note_labels") == 4
    assert notes.query("SELECT count(*) FROM note_labels") == [(0,)]

    notes.clock.advance(60)
    second = notes.run()

    assert submitted(second, "note_labels") == 0 and figures(second) == (5, 0, 0)
    assert (
        node(second, "note_labels").extra["batch_ids"]
        == node(first, "note_labels").extra["batch_ids"]
    )
    assert max(executed(notes).values()) == 1 and len(executed(notes)) == 4


def test_a_scheduler_calling_no_wait_repeatedly_never_resubmits(notes: Env) -> None:
    for _ in range(4):
        notes.run(wait=False)
        notes.clock.advance(0.5)
    notes.clock.advance(60)
    final = notes.run(wait=False)

    assert figures(final) == (5, 0, 0)
    assert sum(executed(notes).values()) == 4


def test_shards_respect_the_line_limit_and_waves_the_token_budget(tmp_path: Any) -> None:
    files = dict(NOTES)
    files["pyproject.toml"] += "\n[tool.enrich.batch]\nmax_lines = 1\nenqueued_tokens = 30\n"
    for env in start_env(tmp_path, files):
        result = env.run()
        assert figures(result) == (5, 0, 0)
        assert len(node(result, "note_labels").extra["batch_ids"]) == 4
        created = [b for b in env.server.engine.list_batches(100, None)["data"]]
        spans = sorted((b["in_progress_at"] or b["created_at"], b["completed_at"]) for b in created)
        # One batch's tokens at a time fit the budget of 30: each starts after the last ended.
        assert all(later[0] >= earlier[1] for earlier, later in pairwise(spans))


def test_failed_rows_are_retried_by_later_runs_up_to_max_attempts(notes: Env) -> None:
    notes.faults(truncated_fraction=1.0)
    attempts = [submitted(notes.run(), "note_labels") for _ in range(4)]

    assert attempts == [4, 4, 4, 0]  # max_attempts defaults to 3
    rows = notes.query(
        "SELECT DISTINCT status, attempts, error_code FROM _enrich.requests"
        " WHERE node = 'note_labels'"
    )
    assert rows == [("failed", 3, "truncated")]
    notes.faults(truncated_fraction=0.0)
    assert submitted(notes.run(full_refresh=True), "note_labels") == 0  # rebuilds, never resends
    assert submitted(notes.run(resend=True), "note_labels") == 4  # an explicit resend still can


def test_answers_outside_the_allowed_values_are_failures_not_labels(notes: Env) -> None:
    model = notes.root / "models" / "note_labels.sql"
    model.write_text(
        model.read_text().replace(
            "system_prompt='Label the note.',",
            "system_prompt='Answer in JSON.', response_format='json_object',",
        )
    )

    result = notes.run()

    assert figures(result) == (0, 5, 0)  # the offline json_object answer has no label field
    codes = notes.query("SELECT DISTINCT error_code FROM _enrich.requests")
    assert codes == [("out_of_schema",)]


def test_the_token_limit_on_a_wave_waits_and_resubmits(notes: Env) -> None:
    notes.faults(token_limit_batches=1)

    result = notes.run()

    assert figures(result) == (5, 0, 0)
    assert len(node(result, "note_labels").extra["batch_ids"]) == 2
    assert any("enqueued-token limit" in e.message for e in notes.events)
    assert sum(executed(notes).values()) == 4


# Every step from the first that records anything: the list follows pipeline.STEPS.
@pytest.mark.parametrize("step", [s for s in STEPS if s not in ("planned", "shard_written")])
def test_an_interruption_at_any_step_never_sends_a_request_twice(notes: Env, step: str) -> None:
    def crash(name: str) -> None:
        if name == step:
            raise KeyboardInterrupt(step)

    with pytest.raises(KeyboardInterrupt):
        notes.run(on_step=crash)
    notes.clock.advance(60)
    final = notes.run()

    assert figures(final) == (5, 0, 0)
    assert sum(executed(notes).values()) == 4 and max(executed(notes).values()) == 1
    leftover = notes.query("SELECT count(*) FROM _enrich.batches WHERE collected_at IS NULL")
    assert leftover == [(0,)]


def test_a_batch_refused_at_validation_names_the_keys_of_its_lines(tmp_path: Any) -> None:
    for env in start_env(tmp_path, NOTES, limits=Limits(models=("gpt-4o",))):
        result = env.run()

        assert figures(result) == (0, 5, 0)
        failures = env.query(
            "SELECT row_key, error_code, attempts FROM _enrich.requests ORDER BY row_key"
        )
        assert [f[1] for f in failures] == ["model_not_found"] * 4
        assert failures[0][0] == '{"id":1}' and {f[2] for f in failures} == {1}
        assert env.received() == []
        assert any("failed validation: model_not_found" in e.message for e in env.events)


def test_uploaded_request_files_are_deleted_once_collected(notes: Env) -> None:
    notes.run()

    left = notes.server.engine.list_files(None, "desc", 100, None)["data"]
    assert [f["purpose"] for f in left] == ["batch_output"]
    assert not list((notes.root / "target" / "enrich").rglob("*.jsonl"))


def _answer_line(custom_id: str, status: int, content: str = "") -> str:
    body: dict[str, Any] = {"error": {"message": "server error"}}
    if status == 200:
        message = {"role": "assistant", "content": content, "refusal": None}
        body = {
            "choices": [{"finish_reason": "stop", "message": message}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 5},
        }
    return json.dumps({"custom_id": custom_id, "response": {"status_code": status, "body": body}})


def test_a_request_in_both_files_or_twice_keeps_its_answer(notes: Env, tmp_path: Path) -> None:
    spec = load_project(notes.root).models["note_labels"].enrich
    assert spec is not None
    answer = '{"label": "pets", "score": 0.5}'
    expired = json.dumps(
        {
            "custom_id": "a",
            "response": None,
            "error": {"code": "batch_expired", "message": "expired"},
        }
    )
    (tmp_path / "output.jsonl").write_text(
        "\n".join(
            [
                _answer_line("a", 200, answer),
                _answer_line("b", 200, answer),
                _answer_line("b", 200, answer),
                _answer_line("c", 500),
            ]
        )
        + "\n"
    )
    (tmp_path / "error.jsonl").write_text(expired + "\n" + _answer_line("b", 500) + "\n")
    db = Database.connect(":memory:")

    loaded = batch_results.load_results(
        db, spec, [tmp_path / "output.jsonl", tmp_path / "error.jsonl"]
    )

    assert loaded == 3
    assert db.fetchall("SELECT request_hash, status FROM enrich_results ORDER BY 1") == [
        ("a", "succeeded"),
        ("b", "succeeded"),
        ("c", "retry"),
    ]
