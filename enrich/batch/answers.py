"""Batch output and error files → classified answers → the typed target table.

Files are read by DuckDB's JSON reader with declared types (a line that is not JSON is skipped,
and so counts as absent). Every line is classified in SQL into ``enrich_results``:

==============================================  ==========  ================================
line                                            status      reason (``error_code``)
==============================================  ==========  ================================
200, complete, fits the output schema           succeeded
``batch_expired``/``batch_cancelled``/timeout   retry       the error's code
status 0, 408, 409, 429 or 5xx                  retry       ``http_<status>``
other HTTP status or error                      failed      ``http_<status>`` / the code
``finish_reason`` not ``stop`` (truncated)      failed      ``truncated``
the model refused                               failed      ``refusal``
not JSON, or outside the output schema          failed      ``invalid_json``/``out_of_schema``
absent from both files                          retry       ``missing``
==============================================  ==========  ================================

``retry`` is sent again in the same run while attempts remain; ``failed`` is retried by a later
run, up to ``max_attempts``. :mod:`enrich.batch.lifecycle` applies these to the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..warehouse import sql
from ..warehouse.db import Database
from .outputs import exactly
from .spec import EnrichSpec

_ERROR = "STRUCT(code VARCHAR, message VARCHAR)"
RETRY_CODES = ("batch_expired", "batch_cancelled", "request_timeout")

_LOAD = r"""
CREATE OR REPLACE TEMP TABLE enrich_results AS
WITH lines AS (
    SELECT custom_id AS request_hash, response.status_code AS status_code,
           response.body AS body, error.code AS code, error.message AS message
    FROM read_json(?, format = 'newline_delimited', ignore_errors = true, columns = ?)
    WHERE custom_id IS NOT NULL
), answered AS (
    SELECT *, {answer} FROM lines
), parsed AS (
    SELECT *, {parsed} AS parsed FROM answered
), checked AS (
    SELECT *, coalesce({fits}, false) AS fits,
           answer IS NULL OR NOT regexp_matches(answer, '\S') AS empty
    FROM parsed
)
SELECT request_hash, answer, prompt_tokens, completion_tokens,
    CASE
        WHEN list_contains(?, code) THEN 'retry'
        WHEN code IS NOT NULL THEN 'failed'
        WHEN coalesce(status_code, 0) = 0 OR status_code IN (408, 409, 429)
             OR status_code >= 500 THEN 'retry'
        WHEN status_code <> 200 OR refusal IS NOT NULL OR NOT complete OR empty OR NOT fits
            THEN 'failed'
        ELSE 'succeeded'
    END AS status,
    CASE
        WHEN code IS NOT NULL THEN code
        WHEN coalesce(status_code, 0) <> 200 THEN 'http_' || coalesce(status_code, 0)
        WHEN refusal IS NOT NULL THEN 'refusal'
        WHEN NOT complete THEN 'truncated'
        WHEN empty THEN 'empty_answer'
        WHEN {structured} AND NOT coalesce(json_valid(answer), false) THEN 'invalid_json'
        WHEN NOT fits THEN 'out_of_schema'
    END AS error_code,
    CASE
        WHEN code IS NOT NULL THEN message
        WHEN coalesce(status_code, 0) <> 200
            THEN coalesce(body.error.message, 'no response body')
        WHEN refusal IS NOT NULL THEN refusal
        WHEN NOT complete THEN 'the answer was cut short; raise max_tokens'
        WHEN empty THEN 'the answer is empty'
        WHEN NOT fits THEN 'the answer is not exactly of the declared types: ' || left(answer, 500)
    END AS error_message
FROM checked
"""


# A request in both files, or twice in one, keeps one line: its answer, if it has one. As in
# batch_requests, distinct 64-bit hashes: a collision only takes the exact path.
_REPEATED = "SELECT count(*) > count(DISTINCT hash(request_hash)) FROM enrich_results"

_DEDUPLICATE = """
DELETE FROM enrich_results WHERE rowid NOT IN (
    SELECT arg_max(rowid, status = 'succeeded') FROM enrich_results GROUP BY request_hash)
"""

_TARGET = """
CREATE OR REPLACE TABLE {target} AS
SELECT {keys}, {outputs},
       q.model AS _enrich_model,
       r.request_hash AS _enrich_request_hash,
       q.batch_id AS _enrich_batch_id,
       q.finished_at AS _enrich_finished_at,
       q.prompt_tokens AS _enrich_prompt_tokens,
       q.completion_tokens AS _enrich_completion_tokens,
       q.source AS _enrich_source
FROM {rows} AS r JOIN {ledger}.requests AS q USING (request_hash)
WHERE q.answer IS NOT NULL AND q.source IS NOT DISTINCT FROM ?
{keep}
"""

# Everything the table is made of, in one value: which rows have which answer, and when it came.
_FINGERPRINT = """
SELECT count(*), coalesce(bit_xor(hash(r.request_hash, q.finished_at, {keys})), 0)
FROM {rows} AS r JOIN {ledger}.requests AS q USING (request_hash)
WHERE q.answer IS NOT NULL AND q.source IS NOT DISTINCT FROM ?
"""

_KEEP_REMOVED = """
UNION ALL BY NAME
SELECT * FROM {old} WHERE ({keys}) NOT IN (SELECT ({keys}) FROM {rows})
"""


_PREVIEW = """
SELECT {keys}, r._prompt AS prompt, {outputs},
       coalesce(q.status, 'not sent') AS _enrich_status, q.error_message AS _enrich_error
FROM {rows} AS r LEFT JOIN {ledger}.requests AS q USING (request_hash)
"""


def load_results(db: Database, spec: EnrichSpec, files: Sequence[Path]) -> int:
    """Read and classify output and error files into ``enrich_results``; returns lines read."""
    parsed, fits, params = _checks(spec)
    structured = sql.Raw("true" if spec.output is not None else "false")
    statement = sql.fill(
        _LOAD, answer=sql.Raw(spec.endpoint.answer), parsed=parsed, fits=fits, structured=structured
    )
    paths = [str(f) for f in files]
    db.execute(statement, [paths, _line_columns(spec), *params, list(RETRY_CODES)])
    if db.fetchone(_REPEATED) == (True,):
        db.execute(_DEDUPLICATE)
    row = db.fetchone("SELECT count(*) FROM enrich_results")
    return int(row[0]) if row else 0


def _line_columns(spec: EnrichSpec) -> dict[str, str]:
    """The type of every line of output and error files, as the JSON reader is told."""
    response = "STRUCT(status_code INTEGER, body " + spec.endpoint.body + ")"
    return {"custom_id": "VARCHAR", "response": response, "error": _ERROR}


def _checks(spec: EnrichSpec) -> tuple[sql.Raw, sql.Raw, list[Any]]:
    """The parsed answer, and whether it fits what the model declared."""
    if spec.output is not None:
        not_null = [
            sql.fill("parsed.{field} IS NOT NULL", field=f.name) for f in spec.output.fields
        ]
        exact = f"CASE WHEN json_valid(answer) THEN try({exactly(spec.output, 'answer')}) END"
        fits = " AND ".join(["parsed IS NOT NULL", *not_null, exact])
        return (
            sql.Raw("try(from_json_strict(answer, ?))"),
            sql.Raw(fits),
            [json.dumps(spec.output.structure())],
        )
    if spec.endpoint.answer_type != "VARCHAR":
        cast = "try(answer::JSON::" + spec.endpoint.answer_type + ")"
        return sql.Raw(cast), sql.Raw("parsed IS NOT NULL"), []
    return sql.Raw("NULL"), sql.Raw("true"), []


def build_target(
    db: Database, spec: EnrichSpec, existed: bool, source: str, target: Sequence[str]
) -> int:
    """Replace the model's table (`target`'s parts): one row per source row with an answer from
    `source` (the API this run asks), typed, with provenance."""
    keep, rows, table = "", sql.work_table(spec.name, "rows"), sql.relation(target)
    if spec.keep_removed and existed:
        db.execute(sql.fill("CREATE OR REPLACE TEMP TABLE enrich_old AS FROM {t}", t=table))
        keep = sql.fill(_KEEP_REMOVED, old="enrich_old", keys=spec.unique_key, rows=rows)
    outputs, params = _outputs(spec)
    statement = db.in_ledger(
        _TARGET,
        target=table,
        rows=rows,
        keys=sql.columns(spec.unique_key, "r"),
        outputs=outputs,
        keep=sql.Raw(keep),
    )
    db.execute(statement, [*params, source])
    row = db.fetchone(sql.fill("SELECT count(*) FROM {t}", t=table))
    return int(row[0]) if row else 0


def fingerprint(db: Database, spec: EnrichSpec, digest: str, source: str) -> str:
    """What the model's table would be built from now: its requests' shared part (`digest`), the
    API its answers come from, and each row's key, request and answer time. Equal fingerprints
    build equal tables."""
    statement = db.in_ledger(
        _FINGERPRINT,
        rows=sql.work_table(spec.name, "rows"),
        keys=sql.columns(spec.unique_key, "r"),
    )
    row = db.fetchone(statement, [source])
    count, mixed = row if row else (0, 0)
    return f"{digest}:{source}:{spec.keep_removed}:{count}:{mixed}"


def preview_query(db: Database, spec: EnrichSpec) -> tuple[str, list[Any]]:
    """Inputs and parsed answers of the model's ``rows`` side by side, with status and error."""
    outputs, params = _outputs(spec)
    statement = db.in_ledger(
        _PREVIEW,
        keys=sql.columns(spec.unique_key, "r"),
        outputs=outputs,
        rows=sql.work_table(spec.name, "rows"),
    )
    return statement, params


def _outputs(spec: EnrichSpec) -> tuple[sql.Raw, list[Any]]:
    if spec.output is not None:
        # unnest() spreads the parsed struct into one column per field, parsing each answer once.
        parsed = "unnest(try(from_json_strict(q.answer, ?)))"
        return sql.Raw(parsed), [json.dumps(spec.output.structure())]
    if spec.endpoint.answer_type == "VARCHAR":
        return sql.Raw(sql.fill("q.answer AS {column}", column=spec.output_column)), []
    template = "q.answer::JSON::" + spec.endpoint.answer_type + " AS {column}"
    return sql.Raw(sql.fill(template, column=spec.output_column)), []
