"""Every status a request and a submission can have, and every move between them, as data.

A request (one row of ``_enrich.requests``, by content hash) moves only through
:data:`TRANSITIONS`::

    (new) ─claim─▶ submitting ─create─▶ submitted ─collect─▶ succeeded | retry | failed
     retry, failed,   │                    ├─lose───▶ retry | failed     absent from both files
     succeeded*       │                    ├─reject─▶ failed             its line failed validation
                      └─release─▶ ◀─refuse─┘  back: succeeded if it has an answer, else retry
    (new), retry, failed ─answer─▶ succeeded | retry | failed           a synchronous call

    * only when ``enrich run --resend`` sends answered requests again

An attempt is counted by one rule, the ``attempt`` column of the table: when the API has judged
the request (collect, lose, reject, answer). A submission that never became a batch (release) or
a batch the API refused whole before running any line (refuse: the enqueued-token limit, a
file-level error) counts for nothing, and no move ever takes an attempt back. So a request runs at
most ``max_attempts`` times, whatever crashes in between.

A request hash is in at most one open submission project-wide: :func:`claim` takes only requests
that are :data:`CLAIMABLE`, under the database's write lock, so two models, threads or waves with
identical requests send them once and share the answer.

A submission (one row of ``_enrich.batches``) is ``preparing`` from the moment it is recorded
(with its requests claimed), then carries the Batch API's status once its batch exists; it is
``unresolved`` when a create failed in a way that may have acted and could not be reconciled (the
next run's recovery settles it); ``collected_at`` closes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ProjectError
from ..warehouse import sql
from ..warehouse.db import Database

SUBMITTING, SUBMITTED = "submitting", "submitted"
SUCCEEDED, RETRY, FAILED = "succeeded", "retry", "failed"
IN_FLIGHT = (SUBMITTING, SUBMITTED)
PREPARING, UNRESOLVED = "preparing", "unresolved"

# Whether a request's ledger row (`q`) may be sent now. Named parameters: $max_attempts, $run_id
# (the run asking), $resend, $source (the API it asks). A failure is retried by a later run,
# not the run that saw it; an answer from another API (the offline server) is no answer here.
CLAIMABLE = """(q.status NOT IN ('submitting', 'submitted') AND (
    ((q.answer IS NULL OR q.source IS DISTINCT FROM $source) AND q.attempts < $max_attempts
     AND (q.status <> 'failed' OR q.run_id IS DISTINCT FROM $run_id))
    OR ($resend AND q.run_id IS DISTINCT FROM $run_id)))"""

_BACK = "CASE WHEN q.answer IS NULL THEN 'retry' ELSE 'succeeded' END"
_RETRY_OR_FAILED = "CASE WHEN q.attempts + 1 >= $max_attempts THEN 'failed' ELSE 'retry' END"


@dataclass(frozen=True)
class Transition:
    """One move of requests from `sources` to `target` (SQL over ``q``, the ledger row, and ``r``,
    the per-request values in `source`), adding `attempt` to their attempts."""

    name: str
    sources: tuple[str, ...]
    target: str
    attempt: int
    scope: str  # SQL: which rows of the submission or source move
    sets: str = ""  # SQL: other columns the move writes
    source: str = ""  # SQL: a FROM clause giving ``r``


TRANSITIONS: Mapping[str, Transition] = {
    t.name: t
    for t in (
        Transition(
            "create",
            (SUBMITTING,),
            "'submitted'",
            0,
            "q.submission_id = $submission",
            sets=", batch_id = $batch_id",
        ),
        Transition("release", (SUBMITTING,), _BACK, 0, "q.submission_id = $submission"),
        Transition("refuse", (SUBMITTED,), _BACK, 0, "q.submission_id = $submission"),
        Transition(
            "reject",
            (SUBMITTED,),
            "'failed'",
            1,
            "q.submission_id = $submission AND q.request_hash = r.request_hash",
            sets=", error_code = r.code, error_message = r.message, run_id = $run_id",
            source="FROM (SELECT unnest($hashes) AS request_hash, unnest($codes) AS code,"
            " unnest($messages) AS message) AS r",
        ),
        Transition(
            "collect",
            (SUBMITTED,),
            "CASE WHEN r.status = 'retry' AND q.attempts + 1 >= $max_attempts THEN 'failed'"
            " ELSE r.status END",
            1,
            "q.rowid = r.ledger_row AND q.submission_id = $submission",
            sets=", "
            + """error_code = r.error_code, error_message = r.error_message,
    answer = CASE WHEN r.status = 'succeeded' THEN r.answer ELSE q.answer END,
    prompt_tokens = CASE WHEN r.status = 'succeeded' THEN r.prompt_tokens ELSE q.prompt_tokens END,
    completion_tokens = CASE WHEN r.status = 'succeeded' THEN r.completion_tokens
                             ELSE q.completion_tokens END,
    finished_at = CASE WHEN r.status = 'succeeded' THEN $now ELSE q.finished_at END,
    batch_id = CASE WHEN r.status = 'succeeded' THEN $batch_id ELSE q.batch_id END,
    source = CASE WHEN r.status = 'succeeded' THEN $source ELSE q.source END,
    run_id = $run_id""",
            source="FROM enrich_staged AS r",
        ),
        Transition(
            "lose",
            (SUBMITTED,),
            _RETRY_OR_FAILED,
            1,
            "q.submission_id = $submission",
            sets=", error_code = 'missing',"
            " error_message = 'absent from the batch output and error files', run_id = $run_id",
        ),
        Transition(
            "answer",
            (RETRY, FAILED),
            "CASE WHEN r.status = 'retry' AND q.attempts + 1 >= $max_attempts THEN 'failed'"
            " ELSE r.status END",
            1,
            "q.request_hash = r.request_hash",
            sets=""", error_code = r.error_code, error_message = r.error_message,
    answer = CASE WHEN r.status = 'succeeded' THEN r.answer ELSE q.answer END,
    prompt_tokens = r.prompt_tokens, completion_tokens = r.completion_tokens,
    finished_at = CASE WHEN r.status = 'succeeded' THEN $now ELSE q.finished_at END,
    source = CASE WHEN r.status = 'succeeded' THEN $source ELSE q.source END,
    batch_id = NULL, submission_id = NULL, run_id = $run_id""",
            source="FROM enrich_results AS r",
        ),
    )
}

_MOVE = """
UPDATE {ledger}.requests AS q SET
    status = {target}, attempts = q.attempts + $attempt, updated_at = $now{sets}
{source}
WHERE list_contains($sources, q.status) AND {scope}
"""


def move(db: Database, name: str, now: datetime, **values: Any) -> int:
    """Apply transition `name` to the requests it scopes; returns how many moved."""
    t = TRANSITIONS[name]
    statement = _MOVE.format(
        ledger=db.ledger.text, target=t.target, sets=t.sets, source=t.source, scope=t.scope
    )
    params = {"sources": list(t.sources), "attempt": t.attempt, "now": now, **values}
    row = db.fetchone(statement, params)
    return int(row[0]) if row else 0


# Claiming: requests of rows first..last of the model's ``sends`` that are still claimable move to
# `submitting` in this submission; hashes the ledger has never seen are inserted as such.
# Requests the ledger had at planning are claimed by their ledger row (in row order: the update
# costs in proportion to the shard); new ones are inserted unless another model has inserted them
# since, which can only be beyond where the ledger ended at planning (this model's own inserts
# since are other requests: leaving them out keeps the check small as a run goes on).
_CLAIM_KNOWN = f"""
UPDATE {{ledger}}.requests AS q SET
    node = $node, row_key = s.row_key, status = 'submitting', submission_id = $submission,
    batch_id = NULL, estimated_tokens = s.tokens, run_id = $run_id, updated_at = $now
FROM (SELECT ledger_row, tokens, row_key FROM {{sends}}
      WHERE rowid BETWEEN $first AND $last AND ledger_row IS NOT NULL ORDER BY ledger_row) AS s
WHERE q.rowid = s.ledger_row AND {CLAIMABLE}
"""

_CLAIM_NEW = """
INSERT INTO {ledger}.requests (request_hash, node, endpoint, model, row_key, status, attempts,
                              submission_id, estimated_tokens, run_id, updated_at)
SELECT s.request_hash, $node, $endpoint, $model, s.row_key, 'submitting', 0, $submission,
       s.tokens, $run_id, $now
FROM (SELECT request_hash, tokens, row_key FROM {sends}
      WHERE rowid BETWEEN $first AND $last AND ledger_row IS NULL) AS s
ANTI JOIN (SELECT request_hash FROM {ledger}.requests WHERE rowid >= $ledger_end AND node <> $node)
    USING (request_hash)
"""

_CLAIMED = """
SELECT count(*), coalesce(sum(estimated_tokens), 0) FROM {ledger}.requests
WHERE submission_id = $submission AND status = 'submitting'
"""

_NEW_ANSWERS = """
INSERT INTO {ledger}.requests (request_hash, node, endpoint, model, row_key, status, attempts,
    error_code, error_message, answer, prompt_tokens, completion_tokens, run_id, updated_at,
    finished_at, source)
SELECT r.request_hash, $node, $endpoint, $model, e.row_key, r.status, 1, r.error_code,
       r.error_message, CASE WHEN r.status = 'succeeded' THEN r.answer END, r.prompt_tokens,
       r.completion_tokens, $run_id, $now, CASE WHEN r.status = 'succeeded' THEN $now END,
       CASE WHEN r.status = 'succeeded' THEN $source END
FROM enrich_results AS r JOIN {sends} AS e USING (request_hash)
ANTI JOIN {ledger}.requests AS q USING (request_hash)
"""


@dataclass(frozen=True)
class Submission:
    """One shard on its way through the Batch API, as the ledger records it."""

    submission_id: str
    node: str
    model: str
    endpoint: str
    shard_hash: str
    input_path: str
    status: str
    lines: int
    estimated_tokens: int
    created_at: datetime
    run_id: str
    input_file_id: str | None = None
    batch_id: str | None = None

    @classmethod
    def columns(cls) -> list[str]:
        """Its fields, which are also the ledger's column names."""
        return [f.name for f in fields(cls)]

    def discard_input(self) -> None:
        """Delete its input file if it is still there: the run that wrote it may have been
        another checkout's, whose folder is gone or not a folder now (a shared ledger)."""
        with suppress(OSError):
            Path(self.input_path).unlink(missing_ok=True)


@dataclass(frozen=True)
class Rules:
    """What makes a request claimable for one run (see :data:`CLAIMABLE`)."""

    max_attempts: int
    run_id: str
    resend: bool = False  # answered requests too, once this run
    source: str = ""  # the API answers come from (see client.ApiConfig.source)

    def params(self) -> dict[str, Any]:
        """As the named parameters of :data:`CLAIMABLE`."""
        return {
            "max_attempts": self.max_attempts,
            "run_id": self.run_id,
            "resend": self.resend,
            "source": self.source,
        }


@dataclass(frozen=True)
class Claim:
    """What a submission holds once its requests are claimed."""

    lines: int
    tokens: int


def record(db: Database, submission: Submission, rows: tuple[int, int, int], rules: Rules) -> Claim:
    """Record a submission and claim its requests (rows of its model's ``sends``), atomically and
    under the write lock, before anything is written or uploaded. `rows`: the first and last
    row of the shard, and where the ledger ended when it was planned."""
    s = submission
    values = {
        "node": s.node,
        "submission": s.submission_id,
        "run_id": rules.run_id,
        "now": s.created_at,
        "first": rows[0],
        "last": rows[1],
    }
    with db.exclusive():
        db.execute(_insert(db, Submission.columns()), asdict(s))
        sends = sql.work_table(s.node, "sends")
        db.execute(db.in_ledger(_CLAIM_KNOWN, sends=sends), values | rules.params())
        new = values | {"endpoint": s.endpoint, "model": s.model, "ledger_end": rows[2]}
        db.execute(db.in_ledger(_CLAIM_NEW, sends=sends), new)
        row = db.fetchone(db.in_ledger(_CLAIMED), {"submission": s.submission_id})
        claim = Claim(int(row[0]), int(row[1])) if row else Claim(0, 0)
        db.execute(
            db.in_ledger(
                "UPDATE {ledger}.batches SET lines = ?, estimated_tokens = ?"
                " WHERE submission_id = ?"
            ),
            [claim.lines, claim.tokens, s.submission_id],
        )
    return claim


def _insert(db: Database, columns: Sequence[str]) -> str:
    placeholders = sql.Raw(", ".join("$" + c for c in columns))
    template = "INSERT INTO {ledger}.batches ({columns}, updated_at) VALUES ({values}, $created_at)"
    return db.in_ledger(template, columns=columns, values=placeholders)


# Submissions


def uploaded(db: Database, submission_id: str, file_id: str, base_url: str) -> None:
    """The shard's file is uploaded (`base_url` says where; never the key)."""
    with db.exclusive():
        db.execute(
            db.in_ledger(
                "UPDATE {ledger}.batches SET input_file_id = ?, base_url = ?"
                " WHERE submission_id = ?"
            ),
            [file_id, base_url, submission_id],
        )


def created(db: Database, submission_id: str, batch_id: str, status: str, now: datetime) -> None:
    """The batch exists: its requests are in flight."""
    with db.exclusive():
        db.execute(
            db.in_ledger(
                "UPDATE {ledger}.batches SET batch_id = ?, status = ?, updated_at = ?"
                " WHERE submission_id = ?"
            ),
            [batch_id, status, now, submission_id],
        )
        move(db, "create", now, submission=submission_id, batch_id=batch_id)


@dataclass(frozen=True)
class Seen:
    """A batch's state as last read from the API."""

    status: str
    completed: int
    failed: int
    output_file_id: str | None
    error_file_id: str | None
    errors: str | None  # the batch's own errors, as JSON


_SEEN = """
UPDATE {ledger}.batches SET status = $status, completed = $completed, failed = $failed,
    output_file_id = $output_file_id, error_file_id = $error_file_id, errors = $errors,
    updated_at = $now
WHERE submission_id = $submission
"""


def seen(db: Database, submission_id: str, state: Seen, now: datetime) -> None:
    """Mirror the batch's status, counts, file ids and errors."""
    with db.exclusive():
        db.execute(
            db.in_ledger(_SEEN),
            asdict(state) | {"now": now, "submission": submission_id},
        )


def unresolved(db: Database, submission_id: str, now: datetime) -> None:
    """A create failed after it may have acted, and the API could not be asked: the next run's
    recovery looks for it before anything else."""
    with db.exclusive():
        db.execute(
            db.in_ledger(
                "UPDATE {ledger}.batches SET status = ?, updated_at = ? WHERE submission_id = ?"
            ),
            [UNRESOLVED, now, submission_id],
        )


def release(db: Database, submission_id: str, now: datetime) -> None:
    """A submission that never became a batch: its requests go back, uncounted, and it closes."""
    with db.exclusive():
        move(db, "release", now, submission=submission_id)
        close(db, submission_id, now)


def refuse(
    db: Database,
    submission_id: str,
    now: datetime,
    run_id: str,
    rejected: Sequence[tuple[str, str, str]] = (),
) -> None:
    """The API refused a batch at validation: lines it blamed (hash, code, message) fail and
    count; the others go back uncounted; the submission closes."""
    with db.exclusive():
        if rejected:
            hashes, codes, messages = (list(c) for c in zip(*rejected, strict=True))
            move(
                db,
                "reject",
                now,
                submission=submission_id,
                run_id=run_id,
                hashes=hashes,
                codes=codes,
                messages=messages,
            )
        move(db, "refuse", now, submission=submission_id)
        close(db, submission_id, now)


# A batch's lines in the ledger's row order, with the row each updates: an update that walks the
# ledger in order costs time in proportion to the batch, where one in the output file's order
# (shuffled) costs time in proportion to the whole ledger.
_STAGE = """
CREATE OR REPLACE TEMP TABLE enrich_staged AS
SELECT q.rowid AS ledger_row, r.* FROM enrich_results AS r
JOIN {ledger}.requests AS q USING (request_hash)
WHERE q.submission_id = ?
ORDER BY ledger_row
"""


def collect(
    db: Database,
    submission: Submission,
    now: datetime,
    rules: Rules,
    loaded: bool,
    midway: Callable[[], None] = lambda: None,
) -> bool:
    """Apply a finished batch's classified lines (``enrich_results``, if `loaded`) to its
    requests; those absent from both files are lost. False when another thread or an earlier
    run already collected it."""
    with db.exclusive():
        row = db.fetchone(
            db.in_ledger(
                "SELECT collected_at IS NULL FROM {ledger}.batches WHERE submission_id = ?"
            ),
            [submission.submission_id],
        )
        if row is None or not row[0]:
            return False
        values = {
            "submission": submission.submission_id,
            "run_id": rules.run_id,
            "max_attempts": rules.max_attempts,
        }
        merged = 0
        if loaded:
            db.execute(db.in_ledger(_STAGE), [submission.submission_id])
            merged = move(
                db, "collect", now, batch_id=submission.batch_id, source=rules.source, **values
            )
        if merged < submission.lines:  # looking for the missing scans them all: only if needed
            move(db, "lose", now, **values)
        midway()
        close(db, submission.submission_id, now)
    return True


def answer(db: Database, now: datetime, rules: Rules, node: str, endpoint: str, model: str) -> None:
    """Apply synchronous answers (``enrich_results``) to their requests: a preview."""
    with db.exclusive():
        values = {"run_id": rules.run_id, "source": rules.source}
        move(db, "answer", now, max_attempts=rules.max_attempts, **values)
        db.execute(
            db.in_ledger(_NEW_ANSWERS, sends=sql.work_table(node, "sends")),
            {"node": node, "endpoint": endpoint, "model": model, "now": now, **values},
        )


def close(db: Database, submission_id: str, now: datetime) -> None:
    """Nothing is left to do with this submission."""
    db.execute(
        db.in_ledger(
            "UPDATE {ledger}.batches SET collected_at = ?, updated_at = ? WHERE submission_id = ?"
        ),
        [now, now, submission_id],
    )


# Hashes from before the schema name was a constant (see request_lines): rows answered then are
# moved to their new hash when nothing holds them, once per model; in-flight ones wait for a
# later run. Not a status change, but a write of the ledger's key, so it lives here too.
_ADOPT = """
UPDATE {ledger}.requests AS q SET request_hash = r.request_hash
FROM (SELECT request_hash, {hashed} AS old FROM {rows}) AS r
WHERE q.request_hash = r.old AND q.status NOT IN ('submitting', 'submitted')
  AND r.request_hash NOT IN (SELECT request_hash FROM {ledger}.requests)
"""


def has_legacy_hashes(db: Database, node: str) -> bool:
    """Whether `node` may still have requests under hashes of an earlier enrich."""
    statement = db.in_ledger("SELECT count(*) FROM {ledger}.legacy_hashes WHERE node = ?")
    row = db.fetchone(statement, [node])
    return bool(row and row[0])


def adopt_hashes(db: Database, node: str, hashed: sql.Raw, digest: str) -> None:
    """Move `node`'s requests from their legacy hash (SQL `hashed` over its ``rows`` with
    `$digest`) to the hash its ``rows`` have now."""
    with db.exclusive():
        statement = db.in_ledger(_ADOPT, hashed=hashed, rows=sql.work_table(node, "rows"))
        db.execute(statement, {"digest": digest})
        row = db.fetchone(
            db.in_ledger(
                "SELECT count(*) FROM {ledger}.requests WHERE node = ? AND status IN (?, ?)"
            ),
            [node, SUBMITTING, SUBMITTED],
        )
        if row is not None and row[0] == 0:
            db.execute(db.in_ledger("DELETE FROM {ledger}.legacy_hashes WHERE node = ?"), [node])


def backfill_sources(db: Database) -> None:
    """Answers recorded before sources were: from the base URL their batch was sent to."""
    db.execute(
        db.in_ledger(
            "UPDATE {ledger}.requests AS q SET source = b.base_url FROM {ledger}.batches AS b"
            " WHERE q.batch_id = b.batch_id AND q.answer IS NOT NULL"
        )
    )


_IN_FLIGHT_HERE = """
SELECT count(*) FILTER (WHERE status IN ('submitting', 'submitted')), count(*)
FROM _enrich.requests
"""

# The database's own requests join the shared ledger: new ones as they are; for known ones, its
# answer replaces none (or one from the offline server) when the shared row is not in a batch.
_SHARE_NEW = """
INSERT INTO {ledger}.requests BY NAME
SELECT * FROM _enrich.requests ANTI JOIN {ledger}.requests USING (request_hash)
"""

_SHARE_ANSWERS = """
UPDATE {ledger}.requests AS s SET
    status = o.status, attempts = o.attempts, error_code = o.error_code,
    error_message = o.error_message, answer = o.answer, prompt_tokens = o.prompt_tokens,
    completion_tokens = o.completion_tokens, batch_id = o.batch_id, run_id = o.run_id,
    updated_at = o.updated_at, finished_at = o.finished_at, source = o.source
FROM _enrich.requests AS o
WHERE s.request_hash = o.request_hash AND o.answer IS NOT NULL
  AND s.status NOT IN ('submitting', 'submitted')
  AND (s.answer IS NULL OR (s.source = ? AND o.source IS DISTINCT FROM ?))
"""

_SHARE_LEGACY = """
INSERT INTO {ledger}.legacy_hashes
SELECT * FROM _enrich.legacy_hashes ANTI JOIN {ledger}.legacy_hashes USING (node)
"""

_SHARED_INTO = "SELECT ledger, ledger_id, moved_at, requests FROM _enrich.shared_into LIMIT 1"

# Only what the shared ledger now holds as well leaves the database: an answer whose request is
# in a batch there stays until that batch is collected (the next run finishes the move).
_MOVED = """
DELETE FROM _enrich.requests WHERE request_hash IN (
    SELECT o.request_hash
    FROM _enrich.requests AS o JOIN {ledger}.requests AS s USING (request_hash)
    WHERE o.answer IS NULL OR s.answer IS NOT NULL)
"""

_RECORD = """
INSERT INTO _enrich.shared_into SELECT ?, (SELECT id FROM {ledger}.identity), ?, ?
WHERE NOT EXISTS (SELECT 1 FROM _enrich.shared_into)
"""


def share_own(db: Database, ledger: Path | None, now: datetime, offline: str, move: bool) -> int:
    """Move what the database's own ledger holds into the shared `ledger` (the first run after
    one is set), and remember which ledger it uses: its answers are then found there, not paid
    for again, and a run that names no ledger, or another, is refused rather than paying again.
    With `move` false (a dry run), only check. Returns how many requests it held. Not a status
    change, but a write of requests, so it lives here too."""
    recorded = check_shared_into(db, ledger)
    if ledger is None or db.ledger_catalog is None:
        return 0
    row = db.fetchone(_IN_FLIGHT_HERE)
    in_flight, held = (int(row[0]), int(row[1])) if row else (0, 0)
    if not move:
        if held and not recorded:
            # A dry run moves nothing: it plans from the database's own answers, as the run
            # that moves them would find them (answers only the shared ledger has count as to
            # send).
            db.ledger_catalog = None
        return 0
    if in_flight:
        raise ProjectError(
            f"database {db.path} has {in_flight} requests in batches of its own ledger: collect "
            "them without the shared ledger first (run again without it), then set it"
        )
    if held:
        with db.exclusive():
            db.execute(db.in_ledger(_SHARE_NEW))
            db.execute(db.in_ledger(_SHARE_ANSWERS), [offline, offline])
            db.execute(db.in_ledger(_SHARE_LEGACY))
    with db.exclusive():  # a crash between the two moves nothing twice: the copy skips known
        if held:
            db.execute(db.in_ledger(_MOVED))
            db.execute("DELETE FROM _enrich.legacy_hashes")
        db.execute(db.in_ledger(_RECORD), [str(ledger.resolve()), now, held])
    return held


def check_shared_into(db: Database, ledger: Path | None) -> bool:
    """Refuse a run that would pay again for answers this database moved to a shared ledger: one
    naming no ledger, another file, or a new file in that one's place. Whether it moved any."""
    row = db.fetchone(_SHARED_INTO)
    if row is None:
        return False
    path, ledger_id, moved_at, requests = row
    if ledger is not None and db.ledger_catalog is not None:
        found = db.fetchone(db.in_ledger("SELECT id FROM {ledger}.identity"))
        if found is not None and found[0] == ledger_id:
            return True
    named = "names no shared ledger" if ledger is None else f"names {ledger}, not that file"
    raise ProjectError(
        f"database {db.path} keeps its answers in the shared ledger {path} (since "
        f"{moved_at:%Y-%m-%d}, {requests} requests moved), but this run {named}: name that file "
        "(dbt: the enrich_ledger var; enrich_query: ledger=), restore it if it was deleted, or, "
        "to start anew and pay again for its requests, DELETE FROM _enrich.shared_into in it"
    )
