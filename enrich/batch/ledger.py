"""Run state kept in the project's own DuckDB file, in schema ``_enrich``: its tables and what
enrich reads of them. Requests and batches may instead be kept in a ledger file shared by several
databases (``Database.ledger``); seeds, runs and targets always stay in the database's own.

The schema changes only through :data:`MIGRATIONS`, an ordered list of named steps; each is applied
once and recorded in ``_enrich.migrations``. Statuses change only through
:mod:`enrich.batch.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime

from ..warehouse import sql
from ..warehouse.db import Database
from . import lifecycle
from .lifecycle import Submission

Migration = tuple[str, Callable[[Database], None]]


def _create_schema(db: Database) -> None:
    db.execute(db.in_ledger("CREATE SCHEMA IF NOT EXISTS {ledger}"))
    db.execute(
        db.in_ledger(
            "CREATE TABLE IF NOT EXISTS {ledger}.migrations"
            " (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)"
        )
    )


def _create_seeds(db: Database) -> None:
    db.execute(
        db.in_ledger(
            """
        CREATE TABLE {ledger}.seeds (
            name VARCHAR PRIMARY KEY,  -- the seed's table
            content_hash VARCHAR NOT NULL,  -- sha256 of the CSV bytes and its load settings
            rows BIGINT,
            loaded_at TIMESTAMP
        )
        """
        )
    )


def _create_requests(db: Database) -> None:
    db.execute(
        db.in_ledger(
            """
        CREATE TABLE {ledger}.requests (
            -- sha256 of what is sent; also the custom_id. Unique, but not a PRIMARY KEY: DuckDB
            -- keeps indexes in memory, and a million-row model must not need that.
            request_hash VARCHAR NOT NULL,
            node VARCHAR NOT NULL,  -- the enrich model that last sent it
            endpoint VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            row_key VARCHAR,  -- one source row's key, as JSON, for people reading failures
            status VARCHAR NOT NULL,  -- see enrich.batch.lifecycle
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
    )


def _create_batches(db: Database) -> None:
    db.execute(
        db.in_ledger(
            """
        CREATE TABLE {ledger}.batches (
            submission_id VARCHAR PRIMARY KEY,  -- made before upload; in the batch's metadata
            node VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            endpoint VARCHAR NOT NULL,
            shard_hash VARCHAR NOT NULL,  -- identifies the shard's set of requests
            base_url VARCHAR,  -- where it was sent; never the key
            input_path VARCHAR,
            input_file_id VARCHAR,
            batch_id VARCHAR,
            status VARCHAR NOT NULL,  -- see enrich.batch.lifecycle
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
    )


def _create_runs(db: Database) -> None:
    db.execute(
        db.in_ledger(
            """
        CREATE TABLE {ledger}.runs (
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
    )


def _batches_run_id(db: Database) -> None:
    # Recovery settles only submissions of earlier runs: one of this run may be mid-create.
    db.execute(db.in_ledger("ALTER TABLE {ledger}.batches ADD COLUMN run_id VARCHAR"))


def _legacy_hashes(db: Database) -> None:
    # Models that sent structured-output requests while the schema name was the model's name:
    # their answers are found again under the new hash (lifecycle.adopt_hashes), not paid again.
    db.execute(db.in_ledger("CREATE TABLE {ledger}.legacy_hashes (node VARCHAR PRIMARY KEY)"))
    db.execute(
        db.in_ledger(
            "INSERT INTO {ledger}.legacy_hashes SELECT DISTINCT node FROM {ledger}.requests"
            " WHERE endpoint IN ('/v1/chat/completions', '/v1/responses')"
        )
    )


def _answer_sources(db: Database) -> None:
    # The API each answer came from: the offline server's answers are never reused as real ones.
    db.execute(db.in_ledger("ALTER TABLE {ledger}.requests ADD COLUMN source VARCHAR"))
    lifecycle.backfill_sources(db)


def _targets(db: Database) -> None:
    # What each enrich model's table was last built from, so a refresh that changed nothing
    # leaves the table alone.
    db.execute(
        db.in_ledger(
            "CREATE TABLE {ledger}.targets (node VARCHAR PRIMARY KEY, fingerprint VARCHAR NOT NULL,"
            " built_at TIMESTAMP)"
        )
    )


def _settled(db: Database) -> None:
    # What a model's last build that left every row answered started from (see
    # pipeline._skip_if_settled): the same again needs no planning at all.
    db.execute(db.in_ledger("ALTER TABLE {ledger}.targets ADD COLUMN settled VARCHAR"))


def _shared_ledger(db: Database) -> None:
    # Each ledger's identity, and, in a database, which shared ledger its answers went to: a run
    # naming no ledger, another one, or a new file in its place would pay for them again (see
    # lifecycle.share_own).
    db.execute(db.in_ledger("CREATE TABLE {ledger}.identity (id VARCHAR NOT NULL)"))
    db.execute(db.in_ledger("INSERT INTO {ledger}.identity VALUES (uuid()::VARCHAR)"))
    db.execute(
        db.in_ledger(
            "CREATE TABLE {ledger}.shared_into"
            " (ledger VARCHAR, ledger_id VARCHAR, moved_at TIMESTAMP, requests BIGINT)"
        )
    )


MIGRATIONS: tuple[Migration, ...] = (
    ("m001_create_schema", _create_schema),
    ("m002_seeds", _create_seeds),
    ("m003_requests", _create_requests),
    ("m004_batches", _create_batches),
    ("m005_runs", _create_runs),
    ("m006_batches_run_id", _batches_run_id),
    ("m007_legacy_hashes", _legacy_hashes),
    ("m008_answer_sources", _answer_sources),
    ("m009_targets", _targets),
    ("m010_settled", _settled),
    ("m011_shared_ledger", _shared_ledger),
)


def migrate(db: Database) -> list[str]:
    """Apply the migrations this database has not had yet; return their names.

    With a shared ledger both it and the database's own ``_enrich`` are migrated (each has every
    table; requests and batches are used in the ledger, what the database's tables were built
    from in its own). Several connections of one process may migrate a new database at once
    (dbt's threads): each step is applied under the database's write lock, and skipped when
    another applied it first.
    """
    done = _migrate(db.own_state()) if db.ledger_catalog is not None else []
    return done + _migrate(db)


def _migrate(db: Database) -> list[str]:
    if _applied(db) >= {name for name, _ in MIGRATIONS}:
        return []
    with db.exclusive():
        _create_schema(db)
    done: list[str] = []
    for name, step in MIGRATIONS:
        with db.exclusive():
            if name in _applied(db):
                continue
            step(db)
            record = db.in_ledger("INSERT INTO {ledger}.migrations VALUES (?, ?)")
            db.execute(record, [name, datetime.now()])
        done.append(name)
    return done


def _applied(db: Database) -> set[str]:
    """The migrations this database has had (none when it has no ``_enrich`` schema yet)."""
    if db.fetchone(_HAS_MIGRATIONS, [db.ledger_catalog, sql.STATE]) is None:
        return set()
    return {
        str(row[0]) for row in db.fetchall(db.in_ledger("SELECT name FROM {ledger}.migrations"))
    }


_HAS_MIGRATIONS = """
SELECT 1 FROM information_schema.tables
WHERE table_catalog = coalesce(?, current_database()) AND table_schema = ?
  AND table_name = 'migrations'
"""


def seed_hash(db: Database, name: str) -> str | None:
    """The content hash a seed was last loaded with, if it was."""
    row = db.fetchone("SELECT content_hash FROM _enrich.seeds WHERE name = ?", [name])
    return None if row is None else str(row[0])


def record_seed(db: Database, name: str, content_hash: str, rows: int, now: datetime) -> None:
    """Remember that seed `name` was loaded from content `content_hash`."""
    db.execute(
        "INSERT OR REPLACE INTO _enrich.seeds VALUES (?, ?, ?, ?)", [name, content_hash, rows, now]
    )


_OPEN = """
SELECT {columns} FROM {ledger}.batches AS b
WHERE collected_at IS NULL AND (node = $node OR submission_id IN (
    -- Requests in flight for other models (rarely any: then this costs nothing) that are ours.
    SELECT q.submission_id FROM (
        SELECT request_hash, submission_id FROM {ledger}.requests
        WHERE status IN ('submitting', 'submitted') AND node <> $node
    ) AS q JOIN {rows} USING (request_hash)))
ORDER BY created_at, submission_id
"""


def sent_and_open(db: Database, node: str) -> bool:
    """Whether `node` sent a batch not yet collected (needs no working tables)."""
    statement = db.in_ledger(
        "SELECT 1 FROM {ledger}.batches WHERE node = ? AND collected_at IS NULL LIMIT 1"
    )
    return db.fetchone(statement, [node]) is not None


def open_submissions(db: Database, node: str) -> list[Submission]:
    """Submissions not yet closed that hold requests of the model being built (whichever model
    or run sent them: the ledger goes by request hash, not model name), or that it sent; oldest
    first. Reads the model's ``rows``."""
    statement = db.in_ledger(_OPEN, columns=Submission.columns(), rows=sql.work_table(node, "rows"))
    rows = db.fetchall(statement, {"node": node})
    return [Submission(*row) for row in rows]


def submission(db: Database, submission_id: str) -> Submission | None:
    """One submission as recorded."""
    statement = db.in_ledger(
        "SELECT {columns} FROM {ledger}.batches WHERE submission_id = ?",
        columns=Submission.columns(),
    )
    row = db.fetchone(statement, [submission_id])
    return None if row is None else Submission(*row)


def base_url(db: Database, submission_id: str) -> str | None:
    """Where a submission's file was uploaded, if it was."""
    statement = db.in_ledger("SELECT base_url FROM {ledger}.batches WHERE submission_id = ?")
    row = db.fetchone(statement, [submission_id])
    return None if row is None or row[0] is None else str(row[0])


def tokens_in_flight(db: Database, model: str) -> int:
    """Estimated prompt tokens of a model's batches that are created and not finished."""
    statement = db.in_ledger(
        "SELECT coalesce(sum(estimated_tokens), 0) FROM {ledger}.batches WHERE model = ?"
        " AND collected_at IS NULL AND batch_id IS NOT NULL"
        " AND status NOT IN ('completed', 'failed', 'expired', 'cancelled')"
    )
    row = db.fetchone(statement, [model])
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class RunFigures:
    """One model's figures for one run, as ``_enrich.runs`` keeps them."""

    run_id: str
    node: str
    started_at: datetime
    finished_at: datetime
    rows: int
    requests_submitted: int
    rows_cached: int
    rows_succeeded: int
    rows_failed: int
    rows_pending: int
    prompt_tokens: int
    completion_tokens: int
    estimated_cost_usd: float | None
    cost_usd: float | None


def record_run(db: Database, figures: RunFigures) -> None:
    """Keep one model's figures for one run."""
    columns = [f.name for f in fields(RunFigures)]
    statement = sql.fill(
        "INSERT OR REPLACE INTO _enrich.runs ({columns}) VALUES ({values})",
        columns=columns,
        values=sql.Raw(", ".join("$" + c for c in columns)),
    )
    db.execute(statement, asdict(figures))


def target_fingerprint(db: Database, node: str) -> str | None:
    """What `node`'s table was last built from (see :func:`answers.fingerprint`)."""
    row = db.fetchone("SELECT fingerprint FROM _enrich.targets WHERE node = ?", [node])
    return None if row is None else str(row[0])


def record_target(db: Database, node: str, fingerprint: str, now: datetime) -> None:
    """Remember what `node`'s table was built from."""
    db.execute(
        "INSERT OR REPLACE INTO _enrich.targets (node, fingerprint, built_at) VALUES (?, ?, ?)",
        [node, fingerprint, now],
    )


def settled(db: Database, node: str) -> str | None:
    """What `node`'s last build that left every row answered started from, if it did."""
    row = db.fetchone("SELECT settled FROM _enrich.targets WHERE node = ?", [node])
    return None if row is None or row[0] is None else str(row[0])


def record_settled(db: Database, node: str, made_of: str | None) -> None:
    """Remember what `node`'s build started from (None: it left rows unanswered)."""
    db.execute("UPDATE _enrich.targets SET settled = ? WHERE node = ?", [made_of, node])


# Every request's state in one value: any claim, answer or failure of any model moves it, even
# one made when the clock had gone back. A scan of four columns: ~10 ms at 200k requests.
_MARK = """
SELECT count(*), coalesce(bit_xor(hash(request_hash, status, attempts, updated_at)), 0)
FROM {ledger}.requests
"""


def ledger_mark(db: Database) -> str:
    """Where the ledger's requests stand, in one value."""
    row = db.fetchone(db.in_ledger(_MARK))
    return f"{row[0]}:{row[1]}" if row else ""
