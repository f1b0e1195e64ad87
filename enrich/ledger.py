"""Run state kept in the project's own DuckDB file, in schema ``_enrich``.

The schema changes only through :data:`MIGRATIONS`, an ordered list of named steps; each is applied
once and recorded in ``_enrich.migrations``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .db import Database

Migration = tuple[str, Callable[[Database], None]]


def _create_schema(db: Database) -> None:
    db.execute("CREATE SCHEMA IF NOT EXISTS _enrich")
    db.execute(
        "CREATE TABLE IF NOT EXISTS _enrich.migrations"
        " (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)"
    )


def _create_seeds(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE _enrich.seeds (
            name VARCHAR PRIMARY KEY,  -- the seed's table
            content_hash VARCHAR NOT NULL,  -- sha256 of the CSV bytes and its load settings
            rows BIGINT,
            loaded_at TIMESTAMP
        )
        """
    )


def _create_requests(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE _enrich.requests (
            -- sha256 of what is sent; also the custom_id. Unique, but not a PRIMARY KEY: DuckDB
            -- keeps indexes in memory, and a million-row model must not need that.
            request_hash VARCHAR NOT NULL,
            node VARCHAR NOT NULL,  -- the enrich model that last sent it
            endpoint VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            row_key VARCHAR,  -- one source row's key, as JSON, for people reading failures
            status VARCHAR NOT NULL,  -- submitting, submitted, succeeded, retry, failed
            attempts INTEGER NOT NULL DEFAULT 0,  -- batches it was part of
            submission_id VARCHAR,
            batch_id VARCHAR,
            error_code VARCHAR,
            error_message VARCHAR,
            answer VARCHAR,  -- the last successful answer: JSON text, plain text or a vector
            prompt_tokens BIGINT,
            completion_tokens BIGINT,
            estimated_tokens BIGINT,
            run_id VARCHAR,  -- the run that last sent or classified it
            updated_at TIMESTAMP,
            finished_at TIMESTAMP  -- when the answer in `answer` arrived
        )
        """
    )


def _create_batches(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE _enrich.batches (
            submission_id VARCHAR PRIMARY KEY,  -- made before upload; in the batch's metadata
            node VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            endpoint VARCHAR NOT NULL,
            shard_hash VARCHAR NOT NULL,  -- identifies the shard's set of requests
            base_url VARCHAR,  -- where it was sent; never the key
            input_path VARCHAR,
            input_file_id VARCHAR,
            batch_id VARCHAR,
            status VARCHAR NOT NULL,  -- preparing, then the Batch API's status
            lines BIGINT,
            estimated_tokens BIGINT,
            completed BIGINT,
            failed BIGINT,
            output_file_id VARCHAR,
            error_file_id VARCHAR,
            errors VARCHAR,  -- the batch's own errors (validation, token limit), as JSON
            created_at TIMESTAMP,
            updated_at TIMESTAMP,
            collected_at TIMESTAMP  -- answers merged; nothing left to do with this batch
        )
        """
    )


def _create_runs(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE _enrich.runs (
            run_id VARCHAR,
            node VARCHAR,
            started_at TIMESTAMP,
            finished_at TIMESTAMP,
            rows BIGINT,
            requests_submitted BIGINT,
            rows_cached BIGINT,
            rows_succeeded BIGINT,
            rows_failed BIGINT,
            rows_pending BIGINT,
            prompt_tokens BIGINT,
            completion_tokens BIGINT,
            estimated_cost_usd DOUBLE,
            cost_usd DOUBLE,
            PRIMARY KEY (run_id, node)
        )
        """
    )


MIGRATIONS: tuple[Migration, ...] = (
    ("m001_create_schema", _create_schema),
    ("m002_seeds", _create_seeds),
    ("m003_requests", _create_requests),
    ("m004_batches", _create_batches),
    ("m005_runs", _create_runs),
)


def migrate(db: Database) -> list[str]:
    """Apply the migrations this database has not had yet; return their names."""
    _create_schema(db)
    applied = {row[0] for row in db.fetchall("SELECT name FROM _enrich.migrations")}
    done: list[str] = []
    for name, step in MIGRATIONS:
        if name in applied:
            continue
        with db.transaction():
            step(db)
            db.execute("INSERT INTO _enrich.migrations VALUES (?, ?)", [name, datetime.now()])
        done.append(name)
    return done


def seed_hash(db: Database, name: str) -> str | None:
    """The content hash a seed was last loaded with, if it was."""
    row = db.fetchone("SELECT content_hash FROM _enrich.seeds WHERE name = ?", [name])
    return None if row is None else str(row[0])


def record_seed(db: Database, name: str, content_hash: str, rows: int, now: datetime) -> None:
    """Remember that seed `name` was loaded from content `content_hash`."""
    db.execute(
        "INSERT OR REPLACE INTO _enrich.seeds VALUES (?, ?, ?, ?)", [name, content_hash, rows, now]
    )


@dataclass(frozen=True)
class Submission:
    """One shard on its way through the Batch API, as the ledger knows it."""

    submission_id: str
    node: str
    model: str
    endpoint: str
    shard_hash: str
    input_path: str
    input_file_id: str | None
    batch_id: str | None
    status: str
    lines: int
    estimated_tokens: int
    created_at: datetime


_SUBMISSION_COLUMNS = """submission_id, node, model, endpoint, shard_hash, input_path,
    input_file_id, batch_id, status, lines, estimated_tokens, created_at"""

_SHARD_ROWS = "(SELECT request_hash, tokens, row_key FROM enrich_sends WHERE rowid BETWEEN ? AND ?)"

_CLAIM_KNOWN = (
    """
UPDATE _enrich.requests AS q SET
    node = ?, row_key = s.row_key, status = 'submitting', submission_id = ?, batch_id = NULL,
    estimated_tokens = s.tokens, run_id = ?, updated_at = ?
FROM """
    + _SHARD_ROWS
    + """ AS s
WHERE q.request_hash = s.request_hash
"""
)

_CLAIM_NEW = (
    """
INSERT INTO _enrich.requests (request_hash, node, endpoint, model, row_key, status, attempts,
                              submission_id, estimated_tokens, run_id, updated_at)
SELECT s.request_hash, ?, ?, ?, s.row_key, 'submitting', 0, ?, s.tokens, ?, ?
FROM """
    + _SHARD_ROWS
    + """ AS s
WHERE NOT EXISTS (SELECT 1 FROM _enrich.requests AS q WHERE q.request_hash = s.request_hash)
"""
)

_RELEASE = """
UPDATE _enrich.requests SET
    status = CASE WHEN answer IS NULL THEN 'retry' ELSE 'succeeded' END,
    attempts = greatest(attempts - ?, 0), updated_at = ?
WHERE submission_id = ? AND status IN ('submitting', 'submitted')
"""


def start_submission(
    db: Database, submission: Submission, rows: tuple[int, int], run_id: str
) -> None:
    """Record a shard and claim its requests (rows of ``enrich_sends``) before anything is
    uploaded."""
    s = submission
    with db.transaction():
        db.execute(
            "INSERT INTO _enrich.batches (" + _SUBMISSION_COLUMNS + ", updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                s.submission_id,
                s.node,
                s.model,
                s.endpoint,
                s.shard_hash,
                s.input_path,
                s.input_file_id,
                s.batch_id,
                s.status,
                s.lines,
                s.estimated_tokens,
                s.created_at,
                s.created_at,
            ],
        )
        db.execute(_CLAIM_KNOWN, [s.node, s.submission_id, run_id, s.created_at, *rows])
        params = [s.node, s.endpoint, s.model, s.submission_id, run_id, s.created_at, *rows]
        db.execute(_CLAIM_NEW, params)


def record_upload(db: Database, submission_id: str, file_id: str, base_url: str) -> None:
    """The shard's file is uploaded."""
    db.execute(
        "UPDATE _enrich.batches SET input_file_id = ?, base_url = ? WHERE submission_id = ?",
        [file_id, base_url, submission_id],
    )


def record_created(
    db: Database, submission_id: str, batch_id: str, status: str, now: datetime
) -> None:
    """The batch exists: its requests are in flight and this counts as an attempt."""
    with db.transaction():
        db.execute(
            "UPDATE _enrich.batches SET batch_id = ?, status = ?, updated_at = ?"
            " WHERE submission_id = ?",
            [batch_id, status, now, submission_id],
        )
        db.execute(
            "UPDATE _enrich.requests SET status = 'submitted', batch_id = ?,"
            " attempts = attempts + 1, updated_at = ?"
            " WHERE submission_id = ? AND status = 'submitting'",
            [batch_id, now, submission_id],
        )


def record_state(
    db: Database,
    submission_id: str,
    state: tuple[str, int, int, str | None, str | None, str | None],
    now: datetime,
) -> None:
    """The batch's status, counts, file ids and errors as last seen."""
    db.execute(
        "UPDATE _enrich.batches SET status = ?, completed = ?, failed = ?, output_file_id = ?,"
        " error_file_id = ?, errors = ?, updated_at = ? WHERE submission_id = ?",
        [*state, now, submission_id],
    )


def release(db: Database, submission_id: str, now: datetime, ran: bool) -> None:
    """Give a submission's requests back to be sent again; `ran` says whether that was an attempt.

    The submission is closed: a batch that was never created, or that the API refused whole.
    """
    with db.transaction():
        db.execute(_RELEASE, [0 if ran else 1, now, submission_id])
        close(db, submission_id, now)


def fail_lines(
    db: Database, submission_id: str, failures: list[tuple[str, str, str]], run_id: str
) -> None:
    """Mark requests the API rejected at validation: (request_hash, code, message) each."""
    for request_hash, code, message in failures:
        db.execute(
            "UPDATE _enrich.requests SET status = 'failed', error_code = ?, error_message = ?,"
            " run_id = ? WHERE request_hash = ? AND submission_id = ?",
            [code, message, run_id, request_hash, submission_id],
        )


def close(db: Database, submission_id: str, now: datetime) -> None:
    """Nothing is left to do with this submission."""
    db.execute(
        "UPDATE _enrich.batches SET collected_at = ? WHERE submission_id = ?", [now, submission_id]
    )


def open_submissions(db: Database, node: str) -> list[Submission]:
    """A model's submissions not yet closed, oldest first."""
    rows = db.fetchall(
        "SELECT " + _SUBMISSION_COLUMNS + " FROM _enrich.batches"
        " WHERE node = ? AND collected_at IS NULL ORDER BY created_at, submission_id",
        [node],
    )
    return [Submission(*row) for row in rows]


def tokens_in_flight(db: Database, model: str) -> int:
    """Estimated prompt tokens of a model's batches that are created and not finished."""
    row = db.fetchone(
        "SELECT coalesce(sum(estimated_tokens), 0) FROM _enrich.batches WHERE model = ?"
        " AND collected_at IS NULL AND batch_id IS NOT NULL"
        " AND status NOT IN ('completed', 'failed', 'expired', 'cancelled')",
        [model],
    )
    return int(row[0]) if row else 0


def record_run(db: Database, run_id: str, node: str, values: list[Any]) -> None:
    """One model's figures for one run."""
    db.execute(
        "INSERT OR REPLACE INTO _enrich.runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, node, *values],
    )
