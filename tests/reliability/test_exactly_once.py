"""Exactly once under real failures: each way the promise once broke, replayed.

Every test counts executions twice, independently of enrich's ledger: from the server's own
record and from what crossed HTTP (a logging proxy between the SDK and the server, ``tests/wire``).
A request "sent" on the wire is one named in a batch create that crossed it, whatever the answer.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from enrich import ApiError
from enrich.batch import request_lines
from enrich.batch.client import ApiConfig
from enrich.project import runner
from enrich.project.loader import load_project
from enrich.warehouse.db import Database

from ..enrich.conftest import API_KEY, NOTES, Env, node, start_env, submitted

DISTINCT = 4  # the five notes hold two identical ones


class Crash(BaseException):
    """Stands for the process dying at a named step (no handler of enrich's catches it)."""


def crash_at(step: str, nth: int = 1) -> Any:
    seen = Counter[str]()

    def on_step(name: str) -> None:
        seen[name] += 1
        if name == step and seen[name] == nth:
            raise Crash(step)

    return on_step


def batch_executions(env: Env) -> Counter[str]:
    """Requests the server ran in batches, by custom_id (its own record)."""
    ran = (r["custom_id"] for r in env.received() if r["batch_id"] is not None)
    return Counter(c for c in ran if c != "other")


def on_the_wire(env: Env) -> Counter[str]:
    assert env.wire is not None
    return env.wire.sent_for_execution()


def assert_each_sent_once(env: Env, requests: int = DISTINCT) -> None:
    wire, server = on_the_wire(env), batch_executions(env)
    assert len(wire) == requests and set(wire.values()) == {1}, wire
    assert server == Counter({k: 1 for k in wire if not k.startswith("sync:")})


def open_submissions(env: Env) -> int:
    return int(env.query("SELECT count(*) FROM _enrich.batches WHERE collected_at IS NULL")[0][0])


def files_left(env: Env) -> list[str]:
    """Batch input files still on the server (uploads nothing needs any more)."""
    listed = env.server.engine.list_files("batch", "desc", 10_000, None)["data"]
    return [f["filename"] for f in listed]


@pytest.fixture
def wired(tmp_path: Path) -> Any:
    yield from start_env(tmp_path, NOTES, wire=True)


# 1. The SDK's automatic retry of a create made a second batch.


@pytest.mark.parametrize("dropped", ["upload", "batch create"])
def test_a_create_whose_answer_is_lost_is_reconciled_not_sent_again(
    wired: Env, dropped: str
) -> None:
    env = wired

    def drop_next_create(name: str) -> None:
        if (name, dropped) in (("submission_recorded", "upload"), ("uploaded", "batch create")):
            env.faults(drop_after_create=1)

    # The SDK's default retries are on: enrich must not let them re-send a create.
    api = ApiConfig(env.base_url, API_KEY, max_retries=2, strict=True)
    result = env.run(api=api, on_step=drop_next_create)
    assert result.ok and submitted(result, "note_labels") == DISTINCT
    assert_each_sent_once(env)
    assert env.wire is not None and env.wire.batch_creates() == 1 and env.wire.uploads() == 1
    assert files_left(env) == [] and open_submissions(env) == 0
    assert submitted(env.run(), "note_labels") == 0


def test_a_create_that_failed_before_acting_is_sent_again_by_the_next_run(wired: Env) -> None:
    env = wired
    env.faults(http_error_calls=1, http_error_status=400)  # the upload: refused, nothing made
    first = env.run()
    assert not first.ok and "400" in node(first, "note_labels").message
    assert open_submissions(env) == 0 and files_left(env) == []
    assert submitted(env.run(), "note_labels") == DISTINCT
    assert_each_sent_once(env)


# 2. Two models with identical requests, built at once, both sent them.


def test_identical_requests_of_two_models_built_at_once_are_sent_once(tmp_path: Path) -> None:
    twin = NOTES["models/note_labels.sql"]
    files = NOTES | {"models/note_labels_twin.sql": twin}
    for env in start_env(tmp_path, files, wire=True):
        result = env.run(threads=2)
        assert result.ok
        assert submitted(result, "note_labels") + submitted(result, "note_labels_twin") == DISTINCT
        assert_each_sent_once(env)
        assert env.query("SELECT count(*), count(DISTINCT request_hash) FROM _enrich.requests") == [
            (DISTINCT, DISTINCT)
        ]
        for table in ("note_labels", "note_labels_twin"):
            assert env.query(f"SELECT count(*), count(DISTINCT id) FROM {table}") == [(5, 5)]
        again = env.run(threads=2)
        assert submitted(again, "note_labels") + submitted(again, "note_labels_twin") == 0


# 3. An interrupted preview left a pseudo-batch open that broke every later run.


def test_an_interrupted_preview_leaves_nothing_open_and_the_run_sends_the_rest(
    wired: Env,
) -> None:
    env = wired
    runner.seed(env.root)
    with pytest.raises(Crash):
        runner.preview(
            env.root,
            "note_labels",
            3,
            options=env.options(on_step=crash_at("answered")),
            clock=env.now,
        )
    assert open_submissions(env) == 0
    result = env.run()
    assert result.ok and submitted(result, "note_labels") == DISTINCT - 1
    sent = on_the_wire(env)
    assert sum(1 for k in sent if k.startswith("sync:")) == 1 and set(sent.values()) == {1}
    assert env.query("SELECT count(*) FROM note_labels") == [(5,)]
    assert submitted(env.run(), "note_labels") == 0


def test_a_preview_that_cannot_reach_the_api_leaves_nothing_open(wired: Env) -> None:
    env = wired
    runner.seed(env.root)
    unreachable = ApiConfig("http://127.0.0.1:9/v1", API_KEY, max_retries=0)
    with pytest.raises(ApiError, match="cannot reach"):
        runner.preview(env.root, "note_labels", 3, options=env.options(api=unreachable))
    assert open_submissions(env) == 0
    assert submitted(env.run(), "note_labels") == DISTINCT
    assert_each_sent_once(env)


# 4. Renaming a model while its batch is out: pending forever, or sent again.

TEXT_MODEL = """
{{ config(materialized='enrich', unique_key='id', system_prompt='Summarize the note.') }}
select id, body as prompt from {{ ref('notes') }}
"""


@pytest.mark.parametrize("kind", ["json_schema", "text"])
def test_a_model_renamed_while_its_batch_is_out_collects_it(tmp_path: Path, kind: str) -> None:
    files = NOTES if kind == "json_schema" else NOTES | {"models/note_labels.sql": TEXT_MODEL}
    for env in start_env(tmp_path, files, wire=True):
        assert submitted(env.run(wait=False), "note_labels") == DISTINCT
        models = env.root / "models"
        (models / "note_labels.sql").rename(models / "renamed.sql")
        result = env.run()
        assert result.ok and submitted(result, "renamed") == 0
        assert env.query("SELECT count(*) FROM renamed") == [(5,)]
        assert open_submissions(env) == 0 and files_left(env) == []
        assert_each_sent_once(env)


# 5. Attempts refunded for submissions never counted: 11 executions with max_attempts = 3.


def test_a_crash_after_each_retry_is_recorded_never_runs_a_request_more_than_max_attempts(
    wired: Env,
) -> None:
    env = wired
    env.faults(fail_fraction=1.0)  # every line a 500: retried while attempts remain
    for _ in range(12):
        try:
            result = env.run(on_step=crash_at("submission_recorded", 2))
        except Crash:
            continue
        break
    else:
        pytest.fail("the runs never ended")
    assert node(result, "note_labels").extra["rows_failed"] == 5
    wire, server = on_the_wire(env), batch_executions(env)
    assert set(server.values()) == {3} and server == wire
    assert open_submissions(env) == 0


# 7. Recovery looked back only 2000 batches.


def test_a_batch_created_before_a_crash_is_found_behind_2010_newer_ones(wired: Env) -> None:
    env = wired
    with pytest.raises(Crash):
        env.run(on_step=crash_at("created"))
    engine = env.server.engine
    line = b'{"custom_id": "other", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    source = engine.upload("other.jsonl", "batch", io.BytesIO(line), len(line), None)["id"]
    for _ in range(2010):
        engine.create_batch(
            {
                "input_file_id": source,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            }
        )
    result = env.run()
    assert result.ok and submitted(result, "note_labels") == 0
    assert env.query("SELECT count(*) FROM note_labels") == [(5,)]
    assert_each_sent_once(env)


# Upgrading: answers hashed when the schema name was the model's name are not paid again.


def test_answers_under_legacy_hashes_are_found_again(wired: Env) -> None:
    env = wired
    assert submitted(env.run(), "note_labels") == DISTINCT
    _rewrite_to_legacy_hashes(env)
    result = env.run()
    assert result.ok and submitted(result, "note_labels") == 0
    assert env.query("SELECT count(*) FROM note_labels") == [(5,)]
    assert env.query("SELECT count(*) FROM _enrich.legacy_hashes") == [(0,)]


def _rewrite_to_legacy_hashes(env: Env) -> None:
    """The ledger as an earlier enrich left it: hashes over the schema named after the model."""
    model = load_project(env.root).model("note_labels")
    assert model.enrich is not None
    db = Database.connect(env.root / "warehouse.duckdb", scratch=env.root / "scratch.duckdb")
    try:
        shared = request_lines.plan_rows(db, model.sql, model.enrich)
        legacy = request_lines.frame(model.enrich, False, "note_labels").digest
        db.execute(
            "UPDATE _enrich.requests AS q SET request_hash = "
            + request_lines.HASHED.replace("{digest}", "?")
            + f" FROM {shared.rows.text} AS r WHERE q.request_hash = r.request_hash",
            [legacy],
        )
        db.execute("INSERT INTO _enrich.legacy_hashes VALUES ('note_labels')")
    finally:
        db.close()


# 6. Loops that never ended: a file-level validation failure, a token limit that stays.


def test_a_batch_refused_for_its_whole_file_stops_the_model_with_the_apis_words(
    wired: Env,
) -> None:
    env = wired
    env.faults(invalid_file_batches=-1)  # every batch, for good
    result = env.run()
    message = node(result, "note_labels").message
    assert not result.ok and "refused at validation" in message and "invalid_request" in message
    kept = message.split("input file is kept at ")[1].split(":")[0]
    assert Path(kept).is_file()
    assert env.wire is not None and env.wire.batch_creates() == 1
    assert open_submissions(env) == 0 and files_left(env) == []
    assert env.query("SELECT max(attempts) FROM _enrich.requests") == [(0,)]
    env.faults(invalid_file_batches=0)
    assert submitted(env.run(), "note_labels") == DISTINCT
    assert not Path(kept).exists()


def test_a_token_limit_that_stays_waits_with_backoff_then_stops(tmp_path: Path) -> None:
    settings = "\n[tool.enrich.batch]\ntoken_limit_wait_seconds = 600\n"
    files = NOTES | {"pyproject.toml": NOTES["pyproject.toml"] + settings}
    for env in start_env(tmp_path, files, wire=True):
        env.faults(token_limit_batches=-1)
        started = env.clock()
        result = env.run()
        message = node(result, "note_labels").message
        assert not result.ok and "enqueued-token limit" in message and "600" in message
        waited = env.clock() - started
        assert 600 < waited < 600 + 2 * 30  # the deadline, then one more poll at most
        assert env.wire is not None
        # Capped backoff (1 s doubling to 30 s): a dozen tries in ten minutes, not hundreds.
        assert 5 <= env.wire.batch_creates() <= 30
        assert open_submissions(env) == 0 and files_left(env) == []
        assert not list((env.root / "target" / "enrich" / "note_labels").glob("*.jsonl"))
        assert env.query("SELECT max(attempts) FROM _enrich.requests") == [(0,)]
        env.faults(token_limit_batches=0)
        assert submitted(env.run(), "note_labels") == DISTINCT
        assert set(batch_executions(env).values()) == {1}


# 8. Uploaded files were left behind by abandoned submissions.


@pytest.mark.parametrize("step", ["shard_written", "uploaded", "upload_recorded"])
def test_a_submission_abandoned_before_its_batch_existed_leaves_no_file(
    wired: Env, step: str
) -> None:
    env = wired
    with pytest.raises(Crash):
        env.run(on_step=crash_at(step))
    result = env.run()
    assert result.ok and submitted(result, "note_labels") == DISTINCT
    assert files_left(env) == [] and open_submissions(env) == 0
    folder = env.root / "target" / "enrich" / "note_labels"
    assert not folder.exists() or list(folder.iterdir()) == []
    assert set(batch_executions(env).values()) == {1}
    assert env.query("SELECT max(attempts) FROM _enrich.requests") == [(1,)]


# Found by review: threads polling one batch, previews and their keys, a changed base URL.


@pytest.mark.parametrize("attempt", range(4))
def test_twin_models_built_at_once_never_conflict(tmp_path: Path, attempt: int) -> None:
    files = NOTES | {"models/note_labels_twin.sql": NOTES["models/note_labels.sql"]}
    for env in start_env(tmp_path, files):
        result = env.run(threads=2, poll_seconds=(1.0, 1.0))
        assert result.ok, [r.message for r in result.results]
        assert set(batch_executions(env).values()) == {1}


def test_a_preview_refused_for_its_key_counts_nothing(wired: Env) -> None:
    env = wired
    runner.seed(env.root)
    wrong = ApiConfig(env.base_url, "sk-wrong", max_retries=0)
    with pytest.raises(ApiError, match="401"):
        runner.preview(env.root, "note_labels", 3, options=env.options(api=wrong))
    assert env.query("SELECT count(*) FROM _enrich.requests WHERE attempts > 0") == [(0,)]
    assert submitted(env.run(), "note_labels") == DISTINCT


def test_an_interrupted_submission_is_settled_only_where_it_was_sent(wired: Env) -> None:
    env = wired
    with pytest.raises(Crash):
        env.run(on_step=crash_at("created"))
    elsewhere = ApiConfig(env.server.base_url, API_KEY, max_retries=0)  # not through the wire
    moved = env.run(api=elsewhere)
    assert "was uploaded to" in node(moved, "note_labels").message
    assert submitted(env.run(), "note_labels") == 0
    assert_each_sent_once(env)


def test_a_completed_batch_whose_output_file_never_comes_is_not_waited_for_forever(
    wired: Env,
) -> None:
    env = wired
    env.faults(null_output_polls=10**9)
    result = env.run(poll_seconds=(60.0, 600.0))
    labels = node(result, "note_labels")
    assert "no output file after" in " ".join(e.message for e in env.events)
    assert (
        labels.extra["rows_pending"] == 0 and labels.extra["rows_failed"] == 5
    )  # missing, 3 times
    assert set(batch_executions(env).values()) == {3}
