"""Rows → Batch API request lines, in DuckDB: plan, validate, pick what to send, shard, write JSONL.

Everything is set-based SQL over two working tables of the build, so no Python touches a row.
They live in the run's scratch database (:func:`~enrich.warehouse.sql.work_table`), so they
outlive the connection a build closes while its batches are out:

- ``rows``: one row per source row: its key, the request body, the request hash and an
  estimate of its prompt tokens.
- ``sends``: one row per distinct request that needs sending now, with the shard it goes in.

A request's hash is sha256 over the endpoint URL and the exact body sent, so it changes exactly
when something sent changes; it is also the request's ``custom_id`` (64 hex characters).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ProjectError
from ..suggest import did_you_mean
from ..warehouse import sql
from ..warehouse.db import Database
from . import lifecycle, tokens
from .lifecycle import CLAIMABLE, Rules
from .spec import SCHEMA_NAME, EnrichSpec

# A request's hash: the frame's digest, then what varies by row, each part length-prefixed.
HASHED = """sha256({digest} || coalesce(length(_system) || ':' || _system, '') || '|'
                || length(_prompt) || ':' || _prompt || '|'
                || coalesce(to_json(_images)::VARCHAR, ''))"""

_PLAN = (
    """
CREATE OR REPLACE TABLE {rows} AS
SELECT *,
       ? + {row_tokens} AS tokens,
       """
    + HASHED.replace("{digest}", "?")
    + """ AS request_hash
FROM (
    SELECT {keys}, {prompt}::VARCHAR AS _prompt, {system} AS _system, {images} AS _images
    FROM (
{query}
    ) AS model
)
"""
)

# Each check finds the first bad row (its key as JSON) and how many rows are like it.
_CHECKS = (
    (
        "SELECT {row_key}, count(*) OVER () FROM {rows} WHERE {null_key} LIMIT 1",
        "key {key} has a NULL part ({count} row(s) like it); unique_key columns must be set "
        "on every row: filter those rows out or coalesce the key",
    ),
    (
        "SELECT {row_key}, count(*) OVER (), n FROM ("
        " SELECT {keys}, count(*) AS n FROM {rows} GROUP BY ALL HAVING count(*) > 1)"
        " ORDER BY 1 LIMIT 1",
        "unique_key is not unique: key {key} appears {extra} times ({count} key(s) repeat); add "
        "a column to unique_key or deduplicate rows in the model's SELECT",
    ),
    (
        "SELECT {row_key}, count(*) OVER () FROM {rows}"
        " WHERE _prompt IS NULL OR NOT regexp_matches(_prompt, '\\S') LIMIT 1",
        "the prompt of key {key} is NULL or empty ({count} row(s) like it); filter those rows "
        "out or give them text",
    ),
    (
        "SELECT {row_key}, count(*) OVER (), u FROM ("
        " SELECT {keys}, unnest(_images) AS u FROM {rows} WHERE _images IS NOT NULL)"
        " WHERE u IS NULL OR NOT regexp_matches(u, '^(https?://\\S+|data:image/[A-Za-z0-9.+-]+;base64,\\S+)$')"
        " ORDER BY 1 LIMIT 1",
        "the image URL of key {key} is {extra!r} ({count} like it); an image is an http(s) URL "
        "or a data:image/...;base64, URL",
    ),
)

_TOO_MANY_TOKENS = """
SELECT {row_key}, count(*) OVER (), tokens FROM {rows} WHERE tokens > ? ORDER BY 1 LIMIT 1
"""

# What to send: one row per distinct request (when rows repeat a request, the row with the
# smallest key stands for it), less those the ledger says are answered, in a batch or out of
# attempts. An anti join keeps the ledger's columns out of reach of the model's key names.
# Each keeps the ledger row of its request (NULL when the ledger has none yet), so claiming a shard
# updates those rows by rowid: work in proportion to the shard, not to the ledger.
_SENDS = (
    """
CREATE OR REPLACE TABLE {sends} AS
SELECT request_hash, tokens, {row_key} AS row_key, {row_part} AS part,
       strlen(part) + $overhead AS line_bytes, _ledger_row AS ledger_row
FROM {rows} AS r
LEFT JOIN (SELECT request_hash, rowid AS _ledger_row, """
    + CLAIMABLE
    + """ AS _claimable
           FROM {ledger}.requests AS q) USING (request_hash)
WHERE _claimable IS NOT FALSE AND {first_of_its_request}
"""
)

# After a batch is collected, what it left to retry joins the end of the model's sends (one row
# per request), so a wave costs time in proportion to the batch, not to the model.
_RESENDS = (
    """
INSERT INTO {sends}
SELECT request_hash, tokens, {row_key} AS row_key, {row_part} AS part,
       strlen(part) + $overhead AS line_bytes, _ledger_row AS ledger_row
FROM {rows}
JOIN (SELECT request_hash, rowid AS _ledger_row FROM {ledger}.requests AS q
      WHERE q.submission_id = $submission AND """
    + CLAIMABLE
    + """) USING (request_hash)
QUALIFY row_number() OVER (PARTITION BY request_hash ORDER BY {row_key}) = 1
"""
)

# Whether a collected submission left anything to send again (usually not: then nothing more).
_LEFT_TO_RESEND = (
    "SELECT count(*) FROM {ledger}.requests AS q WHERE q.submission_id = $submission AND "
    + CLAIMABLE
)

# Where the ledger ends now: a request new at planning that appears later lies beyond it.
_LEDGER_END = "SELECT coalesce(max(rowid) + 1, 0) FROM {ledger}.requests"

# Counting distinct 64-bit hashes is twice as fast as distinct strings, and exact where it matters:
# equal requests always hash alike; a rare collision only takes the slower, exact path.
_REPEATS = "SELECT count(*) > count(DISTINCT hash(request_hash)) FROM {rows}"

_FIRST_OF_ITS_REQUEST = """r.rowid IN (
    SELECT arg_min(rowid, {row_key}) FROM {rows} GROUP BY request_hash)"""

_TOO_LARGE = """
SELECT row_key, count(*) OVER (), line_bytes FROM {sends}
WHERE line_bytes > ? ORDER BY 1 LIMIT 1
"""

# Shards are runs of consecutive rows of enrich_sends (by rowid) under every limit: each limit
# cuts the running count, bytes or tokens into buckets, and rows sharing all three buckets form
# a shard (the buckets only grow, so a shard is a rowid range). A bucket of bytes or tokens is
# one line's worth smaller than the limit, so a shard whose first line straddles it still fits.
_SHARDS = """
SELECT row_number() OVER (ORDER BY first) - 1, *
FROM (
    SELECT min(r) AS first, max(r), count(*), sum(line_bytes), sum(tokens),
           printf('%016x%08x', bit_xor(fingerprint), count(*))
    FROM (
        SELECT r, line_bytes, tokens, fingerprint,
               (row_number() OVER w - 1) // ? AS by_lines,
               (sum(line_bytes) OVER w) // ? AS by_bytes,
               (sum(tokens) OVER w) // ? AS by_tokens
        FROM (
            SELECT rowid AS r, line_bytes, tokens,
                   ('0x' || left(request_hash, 16))::UBIGINT AS fingerprint
            FROM {sends} WHERE rowid >= ?
        )
        WINDOW w AS (ORDER BY r ROWS UNBOUNDED PRECEDING)
    )
    GROUP BY by_lines, by_bytes, by_tokens
)
ORDER BY first
"""

# A line is '{"custom_id":"<hash>","method":"POST","url":"<url>","body":' head part tail '}'.
# DuckDB has no plain-text writer; a one-column CSV with neither quote nor escape character
# writes each value as it is, and a JSON line never holds a raw newline or control character.
_LINES = """
COPY (
    SELECT concat('{{"custom_id":"', request_hash, ?, part, ?)
    FROM {sends} WHERE rowid BETWEEN ? AND ? {claimed}
) TO ? (FORMAT CSV, HEADER false, QUOTE '', ESCAPE '')
"""

# Only the requests a submission claimed: another model or thread may hold some of the shard's.
_CLAIMED_BY = """AND request_hash IN (
    SELECT request_hash FROM {ledger}.requests WHERE submission_id = ?)"""

_COUNTS = """
SELECT count(*),
       count(*) FILTER (WHERE q.answered AND q.run_id IS DISTINCT FROM $run_id),
       count(*) FILTER (WHERE q.answered),
       count(*) FILTER (WHERE NOT q.answered AND q.status = 'failed'),
       coalesce(sum(q.prompt_tokens) FILTER (WHERE fresh), 0),
       coalesce(sum(q.completion_tokens) FILTER (WHERE fresh), 0)
FROM (
    SELECT *, answered AND run_id = $run_id AS fresh
    FROM (SELECT *, answer IS NOT NULL AND source IS NOT DISTINCT FROM $source AS answered
          FROM {ledger}.requests)
) AS q RIGHT JOIN {rows} AS r USING (request_hash)
"""


# When a model's requests do not all fit its enqueued-token budget at once, the budget is filled
# by this many shards, not one: when a batch ends, the next goes out at once into the room it left,
# so the budget stays nearly full while work remains (one shard the size of the budget would leave
# it empty from each batch's end to the next's). More would fill it a little better and cost a
# round of calls and ledger statements each: at 200k rows, 10 made 225 batches and 1.3x the CPU
# of 4's 92, for 95% instead of 91% of the budget in flight (tests/enrich/test_scheduling.py).
SHARDS_PER_BUDGET = 4


@dataclass(frozen=True)
class BatchSettings:
    """How requests are split into batches and followed (``[tool.enrich.batch]``)."""

    max_lines: int = 50_000  # the Batch API's limit per input file
    max_bytes: int = 200 * 1024 * 1024  # the Files API's limit per batch input file
    # Estimated prompt tokens in flight at once, per model ("default" for the others).
    enqueued_tokens: Mapping[str, int] = field(default_factory=lambda: {"default": 2_000_000})
    poll_min_seconds: float = 1.0
    poll_max_seconds: float = 60.0
    # How long the enqueued-token limit may keep refusing us, with nothing of ours in flight,
    # before the model stops and says so.
    token_limit_wait_seconds: float = 3600.0
    batches_in_flight: int | None = None  # at most this many of a model's batches out at once

    def token_limit(self, model: str) -> int:
        """The enqueued-token budget of one model."""
        return self.enqueued_tokens.get(model, self.enqueued_tokens.get("default", 2_000_000))


@dataclass(frozen=True)
class Shard:
    """One batch input file's worth of requests: rows `first`..`last` of ``enrich_sends``."""

    index: int
    first: int
    last: int
    lines: int
    bytes: int
    tokens: int
    shard_hash: str  # the XOR of its requests' first 64 bits and its line count, in hex
    ledger_end: int = 0  # the ledger's rows when it was planned (new requests come after)


@dataclass(frozen=True)
class Counts:
    """Where a model's rows stand."""

    rows: int
    cached: int  # answered by an earlier run
    succeeded: int
    failed: int
    prompt_tokens: int  # of the answers this run received
    completion_tokens: int

    @property
    def pending(self) -> int:
        """Rows still without an answer or a final failure."""
        return self.rows - self.succeeded - self.failed


@dataclass(frozen=True)
class Frame:
    """What every line of a model's request files shares: all but the custom_id and row part."""

    before_part: str  # from the end of the custom_id to the row's part of the body
    after_part: str  # from the row's part to the end of the line, newline excluded
    digest: str  # sha256 of the URL and everything above; starts each request's hash
    system_tokens: int  # estimated tokens of a model-wide system prompt
    node: str  # the model, whose working tables hold its rows and sends

    @property
    def rows(self) -> sql.Raw:
        """The working table of the model's rows (see the module docstring)."""
        return sql.work_table(self.node, "rows")

    @property
    def sends(self) -> sql.Raw:
        """The working table of the requests to send now."""
        return sql.work_table(self.node, "sends")

    @property
    def overhead(self) -> int:
        """Bytes a line has besides its row part."""
        opening = len('{"custom_id":"') + 64
        newline = 1
        return opening + len(self.before_part.encode()) + len(self.after_part.encode()) + newline

    def body(self, part: str) -> dict[str, Any]:
        """One request body, from a row's part (for synchronous previews)."""
        text = self.before_part.split('"body":', 1)[1] + part + self.after_part
        body: dict[str, Any] = json.loads(text[:-1])
        return body


def frame(
    spec: EnrichSpec, row_system: bool, schema_name: str = SCHEMA_NAME, salt: str = ""
) -> Frame:
    """The shared part of every line; `row_system` says rows bring their own system prompt;
    `salt` (see :func:`client.hash_salt`) goes into every request's hash, not on the wire."""
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    constant = json.dumps(spec.constant_body(schema_name), **compact)  # type: ignore[arg-type]
    head = constant[:-1] + "," + json.dumps(spec.endpoint.container) + ":"
    tail = "}"
    system = spec.system_prompt if not row_system else None
    if spec.endpoint.listed:
        head, tail = head + "[", "]" + tail
        if system is not None:
            head += json.dumps({"role": "system", "content": system}, **compact) + ","  # type: ignore[arg-type]
    shell = json.dumps({"method": "POST", "url": spec.endpoint.url}, **compact)  # type: ignore[arg-type]
    before = '",' + shell[1:-1] + ',"body":' + head
    after = tail + "}"
    salted = f"\0{salt}" if salt else ""
    digest = hashlib.sha256(f"{spec.endpoint.url}\n{head}\0{tail}{salted}".encode()).hexdigest()
    system_tokens = (
        0 if system is None else tokens.TOKENS_PER_MESSAGE + tokens.estimate_text(system)
    )
    return Frame(before, after, digest, system_tokens, spec.name)


def plan_rows(
    db: Database, query: str, spec: EnrichSpec, limit: int | None = None, salt: str = ""
) -> Frame:
    """Run the model's query (its first `limit` rows) into its ``rows``: key, prompt parts,
    request hash, estimated tokens. Returns the frame every line of this model shares."""
    columns = dict(db.describe(query))
    _require_columns(spec, columns)
    row_system = spec.system_prompt_column in columns
    shared = frame(spec, row_system, salt=salt)
    statement = sql.fill(
        _PLAN,
        rows=shared.rows,
        keys=spec.unique_key,
        prompt=spec.prompt_column,
        system=_system(spec, row_system),
        images=_images(spec, columns),
        row_tokens=sql.Raw(spec.endpoint.row_tokens),
        query=sql.Raw(query if limit is None else sql.limited(query)),
    )
    system = [spec.system_prompt] if row_system else []
    limits = [] if limit is None else [limit]
    db.execute(statement, [shared.system_tokens, shared.digest, *system, *limits])
    if spec.output is not None and not spec.json_object:
        _adopt_legacy_hashes(db, spec, row_system, salt)
    return shared


# Before the structured-output schema name was a constant it was the model's name, sanitized:
# requests a model answered then are found under the hash they had, once, and kept.
_LEGACY_NAME = re.compile(r"[^A-Za-z0-9_-]")


def _adopt_legacy_hashes(db: Database, spec: EnrichSpec, row_system: bool, salt: str) -> None:
    if not lifecycle.has_legacy_hashes(db, spec.name):
        return
    legacy = frame(spec, row_system, _LEGACY_NAME.sub("_", spec.name)[:64], salt)
    hashed = HASHED.replace("{digest}", "$digest")
    lifecycle.adopt_hashes(db, spec.name, sql.Raw(hashed), legacy.digest)


# Every row of a model's query in one value, from one scan: no request is built. Three figures
# (count, XOR and sum of the rows' 64-bit hashes) so that no simple edit cancels out.
_INPUTS = """
SELECT count(*), coalesce(bit_xor(hash(t)), 0), coalesce(sum(hash(t)::HUGEINT), 0)
FROM ({query}) AS t
"""


@dataclass(frozen=True)
class Inputs:
    """A model's query result in one value (see :func:`inputs`)."""

    rows: int
    digest: str


def inputs(db: Database, query: str, spec: EnrichSpec, salt: str = "") -> Inputs:
    """What the model's requests would be made of: the frame they share (endpoint, model, prompt,
    schema, the API's salt) and every row of its query. Equal digests plan equal requests."""
    described = db.describe(query)
    shared = frame(spec, spec.system_prompt_column in dict(described), salt=salt)
    row = db.fetchone(sql.fill(_INPUTS, query=sql.Raw(query)))
    count, mixed, total = row if row else (0, 0, 0)
    # A row's hash is of its values alone: the columns' names and types, the whole config (which
    # column is the prompt, the image, the output) and the time zone timestamps are shown in
    # all change what the same values send.
    zone = db.fetchone("SELECT current_setting('TimeZone')")
    around = hashlib.sha256(repr((described, _config(spec), zone)).encode()).hexdigest()
    return Inputs(int(count), f"{shared.digest}:{around}:{count}:{mixed}:{total}")


def _config(spec: EnrichSpec) -> dict[str, Any]:
    """The model's config as plain values, the same in every process (an endpoint's repr holds
    its functions' addresses)."""
    values = {f.name: getattr(spec, f.name) for f in fields(spec) if f.name != "endpoint"}
    return values | {"endpoint": spec.endpoint.url}


def _require_columns(spec: EnrichSpec, columns: dict[str, str]) -> None:
    for column in (*spec.unique_key, spec.prompt_column):
        if column not in columns:
            role = "prompt" if column == spec.prompt_column else "unique_key"
            raise ProjectError(
                f"{spec.path}: the model's SELECT has no {role} column {column!r}"
                f"{did_you_mean(column, columns)}; it returns: {', '.join(columns)}"
            )
    if spec.image_column in columns and not spec.endpoint.images:
        raise ProjectError(
            f"{spec.path}: {spec.endpoint.url} takes no images; drop column {spec.image_column!r}"
        )


def _system(spec: EnrichSpec, row_system: bool) -> sql.Raw:
    if row_system:  # a row's own system prompt, else the model's
        return sql.Raw(sql.fill("coalesce({c}::VARCHAR, ?::VARCHAR)", c=spec.system_prompt_column))
    return sql.Raw("NULL::VARCHAR")  # the model's system prompt is in the frame


def _images(spec: EnrichSpec, columns: dict[str, str]) -> sql.Raw:
    kind = columns.get(spec.image_column)
    if kind is None:
        return sql.Raw("NULL::VARCHAR[]")
    if kind.endswith("[]"):
        return sql.Raw(sql.fill("{column}::VARCHAR[]", column=spec.image_column))
    template = "CASE WHEN {column} IS NULL THEN NULL ELSE [{column}::VARCHAR] END"
    return sql.Raw(sql.fill(template, column=spec.image_column))


def validate_rows(db: Database, spec: EnrichSpec, batch: BatchSettings) -> None:
    """Stop before anything is sent if a row is bad, naming the model file, the key and the fix."""
    null_key = sql.Raw(" OR ".join(sql.fill("{k} IS NULL", k=k) for k in spec.unique_key))
    names: dict[str, sql.Part] = {
        "row_key": _row_key(spec),
        "keys": spec.unique_key,
        "null_key": null_key,
        "rows": sql.work_table(spec.name, "rows"),
    }
    for template, problem in _CHECKS:
        found = db.fetchone(sql.fill(template, **names))
        if found is not None:
            raise ProjectError(f"{spec.path}: " + _problem(problem, found))
    limit = batch.token_limit(spec.model)
    statement = sql.fill(_TOO_MANY_TOKENS, row_key=_row_key(spec), rows=names["rows"])
    found = db.fetchone(statement, [limit])
    if found is not None:
        raise ProjectError(
            f"{spec.path}: the request of key {found[0]} is estimated at {found[2]} prompt "
            f"tokens, over the enqueued-token limit of {limit} for {spec.model} ({found[1]} like "
            "it); shorten it or raise [tool.enrich.batch] enqueued_tokens"
        )
    if spec.json_object:
        _require_json_word(db, spec)


# The API answers 400 to response_format json_object unless the messages say "JSON" somewhere.
_NO_JSON_WORD = """
SELECT {row_key}, count(*) OVER () FROM {rows}
WHERE NOT (coalesce(_system, ?) ILIKE '%json%' OR _prompt ILIKE '%json%') LIMIT 1
"""


def _require_json_word(db: Database, spec: EnrichSpec) -> None:
    statement = sql.fill(
        _NO_JSON_WORD, row_key=_row_key(spec), rows=sql.work_table(spec.name, "rows")
    )
    found = db.fetchone(statement, [spec.system_prompt or ""])
    if found is not None:
        raise ProjectError(
            f"{spec.path}: response_format='json_object' needs the word JSON in the messages (the "
            f"API refuses it otherwise), and the request of key {found[0]} has none ({found[1]} "
            "like it); say it in the system prompt, e.g. 'Answer in JSON.'"
        )


def _row_key(spec: EnrichSpec) -> sql.Raw:
    """A row's key as JSON text, for messages and the ledger: ``{"title":"Heat","year":1995}``."""
    return sql.Raw(sql.fill("to_json(struct_pack({keys}))::VARCHAR", keys=spec.unique_key))


def _problem(template: str, found: tuple[Any, ...]) -> str:
    extra = found[2] if len(found) > 2 else None
    return template.format(key=found[0], count=found[1], extra=extra)


def plan_sends(
    db: Database, spec: EnrichSpec, shared: Frame, batch: BatchSettings, rules: Rules
) -> list[Shard]:
    """Fill the model's ``sends`` with the distinct requests to send now, split into shards.

    Sent: the requests :data:`~enrich.batch.lifecycle.CLAIMABLE` under `rules`: never seen;
    retried after a transient error, while attempts remain; failed in an earlier run; with a full
    refresh, everything this run has not sent yet. Never: requests already in a batch.
    A request too large for a batch file stops the model here, before anything is sent.
    """
    tables: dict[str, sql.Part] = {"rows": shared.rows, "sends": shared.sends}
    end = db.fetchone(db.in_ledger(_LEDGER_END))
    first = sql.Raw("true")
    if db.fetchone(sql.fill(_REPEATS, **tables)) == (True,):
        first = sql.Raw(sql.fill(_FIRST_OF_ITS_REQUEST, row_key=_row_key(spec), **tables))
    statement = db.in_ledger(
        _SENDS,
        **tables,
        row_part=sql.Raw(spec.endpoint.row_part),
        row_key=_row_key(spec),
        first_of_its_request=first,
    )
    db.execute(statement, {"overhead": shared.overhead, **rules.params()})
    found = db.fetchone(sql.fill(_TOO_LARGE, **tables), [batch.max_bytes])
    if found is not None:
        raise ProjectError(
            f"{spec.path}: the request of key {found[0]} is {found[2]} bytes, over the "
            f"{batch.max_bytes}-byte batch file limit ({found[1]} like it); shorten its prompt "
            "or images"
        )
    return _shards(db, spec, shared, batch, 0, int(end[0]) if end else 0)


def plan_resends(
    db: Database,
    spec: EnrichSpec,
    shared: Frame,
    batch: BatchSettings,
    rules: Rules,
    submission: str,
) -> list[Shard]:
    """Add to the model's ``sends`` what a collected submission left to send again (claimable
    under `rules`), and shard just those."""
    params = {"submission": submission, **rules.params()}
    left = db.fetchone(db.in_ledger(_LEFT_TO_RESEND), params)
    if not left or not left[0]:
        return []
    start = db.fetchone(sql.fill("SELECT count(*) FROM {sends}", sends=shared.sends))
    statement = db.in_ledger(
        _RESENDS,
        rows=shared.rows,
        sends=shared.sends,
        row_part=sql.Raw(spec.endpoint.row_part),
        row_key=_row_key(spec),
    )
    db.execute(statement, {"overhead": shared.overhead, **params})
    return _shards(db, spec, shared, batch, int(start[0]) if start else 0, 0)


def _shards(
    db: Database,
    spec: EnrichSpec,
    shared: Frame,
    batch: BatchSettings,
    first: int,
    ledger_end: int,
) -> list[Shard]:
    """Shards of the model's ``sends`` from row `first` on."""
    stats = db.fetchone(
        sql.fill(
            "SELECT max(line_bytes), max(tokens), sum(tokens) FROM {sends} WHERE rowid >= ?",
            sends=shared.sends,
        ),
        [first],
    )
    if stats is None or stats[0] is None:
        return []
    by_bytes = max(batch.max_bytes - int(stats[0]), 1)
    limit = batch.token_limit(spec.model)
    # A shard holds at most a bucket and a line: so that a whole shard fits the budget, or a
    # SHARDS_PER_BUDGET-th of it when it cannot all be in flight at once.
    share = limit if int(stats[2]) <= limit else limit // SHARDS_PER_BUDGET
    by_tokens = max(share - int(stats[1]), 1)
    statement = sql.fill(_SHARDS, sends=shared.sends)
    rows = db.fetchall(statement, [batch.max_lines, by_bytes, by_tokens, first])
    return [
        Shard(
            int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), str(r[6]), ledger_end
        )
        for r in rows
    ]


def write_shard(
    db: Database, shared: Frame, shard: Shard, path: Path, claimed_by: str | None = None
) -> Path:
    """Write one shard as a Batch API input file (JSONL), streamed from DuckDB to disk; with
    `claimed_by`, only the requests that submission holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    claimed = sql.Raw(db.in_ledger(_CLAIMED_BY) if claimed_by else "")
    statement = sql.fill(_LINES, claimed=claimed, sends=shared.sends)
    only = [claimed_by] if claimed_by else []
    try:
        db.execute(
            statement,
            [shared.before_part, shared.after_part, shard.first, shard.last, *only, str(tmp)],
        )
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def shard_bodies(db: Database, shared: Frame, shard: Shard) -> list[tuple[str, dict[str, Any]]]:
    """(custom_id, body) of each request in a shard, for sending one by one (previews)."""
    rows = db.fetchall(
        sql.fill(
            "SELECT request_hash, part FROM {sends} WHERE rowid BETWEEN ? AND ?", sends=shared.sends
        ),
        [shard.first, shard.last],
    )
    return [(str(request_hash), shared.body(str(part))) for request_hash, part in rows]


def counts(db: Database, shared: Frame, run_id: str, source: str) -> Counts:
    """The model's ``rows`` by where their request stands with `source`; tokens of this run's
    answers."""
    statement = db.in_ledger(_COUNTS, rows=shared.rows)
    row = db.fetchone(statement, {"run_id": run_id, "source": source})
    values = [int(v or 0) for v in row] if row else [0] * 6
    return Counts(*values)


def drop_work(db: Database, shared: Frame) -> None:
    """Drop the model's working tables: its build is over."""
    for table in (shared.rows, shared.sends):
        db.execute(sql.fill("DROP TABLE IF EXISTS {table}", table=table))
