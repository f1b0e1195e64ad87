"""A DataFrame enriched in one call, for notebooks: :func:`frame`.

The frame's key and prompt columns are copied into a DuckDB cache file through Arrow and sent
through :func:`enrich.enrich_query`, whose ledger in that file remembers every answer by request
hash: a second call sends only rows that are new or changed, and a call with ``wait=False``
leaves its batches for a later call to collect. The only module that imports polars.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from .batch import request_lines
from .batch.client import OFFLINE_SOURCE, ApiConfig, hash_salt
from .batch.options import EnrichOptions, Wording
from .batch.spec import EnrichSpec, resolve
from .errors import ProjectError
from .project.enrich_query import enrich_query, own_keys
from .suggest import did_you_mean
from .warehouse import sql
from .warehouse.db import Database, describe_type

F = TypeVar("F")

WHERE = "enrich.frame"  # what error messages name first
# The call's tables live in an in-memory database attached to the cache's connection, so they are
# gone when the call ends: the frame's columns, its answers, and the status of rows without one.
WORK = "enrich_frame"
INPUT = "input"
STATUSES = "statuses"
STATUS_TYPE = "ENUM('answered', 'pending', 'failed')"
# How messages name what a notebook user can change.
WORDING = Wording(
    offline="pass offline=True to enrich.frame to use the local Batch API server",
    failures="see the frame's _enrich_status and _enrich_error columns",
)
# Config keys frame() takes as its own arguments instead.
ARGUMENTS = {"unique_key": "key", "prompt_column": "prompt", "image_column": "image"}

# Each check finds the first bad row (its key as JSON) and how many rows are like it.
_CHECKS = (
    (
        "SELECT {row_key}, count(*) OVER () FROM {input} WHERE {null_key} LIMIT 1",
        "key {key} has a NULL part ({count} row(s) like it); key columns must be set on every "
        "row: drop those rows or fill them in",
    ),
    (
        "SELECT {row_key}, count(*) OVER (), n FROM ("
        " SELECT {keys}, count(*) AS n FROM {input} GROUP BY ALL HAVING count(*) > 1)"
        " ORDER BY 1 LIMIT 1",
        "key {key} appears {extra} times ({count} key(s) repeat); keys must be unique: pass "
        "key=[...] with more columns, or drop the duplicate rows",
    ),
    (
        "SELECT {row_key}, count(*) OVER () FROM {input}"
        " WHERE {prompt} IS NULL OR NOT regexp_matches({prompt}::VARCHAR, '\\S') LIMIT 1",
        "prompt column {column!r} is NULL or empty at key {key} ({count} row(s) like it); drop "
        "those rows or give them text",
    ),
)

# What the ledger says of each row without an answer; its failures are retried by a later call.
_STATUSES = """
CREATE OR REPLACE TABLE {statuses} AS
SELECT {keys},
       CASE WHEN q.status = 'failed' THEN 'failed' ELSE 'pending' END AS _enrich_status,
       CASE WHEN q.status = 'failed' THEN q.error_code || ': ' || q.error_message END
           AS _enrich_error
FROM {rows} AS r LEFT JOIN {ledger}.requests AS q USING (request_hash)
"""

# One row per input row, in the frame's order: its key, its answer, where the answer came from.
_RESULT = """
SELECT {keys}, t.* EXCLUDE ({key_names}),
       CAST(CASE WHEN t._enrich_request_hash IS NOT NULL THEN 'answered'
                 ELSE coalesce({status}, 'pending') END AS {status_type}) AS _enrich_status,
       {error} AS _enrich_error
FROM {input} AS i LEFT JOIN {target} AS t USING ({key_names}) {join_statuses}
ORDER BY i.rowid
"""

_COUNTS = "SELECT (SELECT count(*) FROM {input}) - (SELECT count(*) FROM {target})"


def frame(
    df: F,
    *,
    key: str | Sequence[str],
    prompt: str,
    output: Any = None,
    model: str | None = None,
    system_prompt: str | None = None,
    image: str | None = None,
    cache: str | Path | None = None,
    offline: bool = False,
    api: ApiConfig | None = None,
    wait: bool = True,
    options: EnrichOptions | None = None,
    **config: Any,
) -> F:
    """Enrich the rows of a Polars or pandas DataFrame through the Batch API and return a frame
    of the same kind: the `key` columns, the typed `output` columns and provenance (``_enrich_*``),
    one row per input row in its order. ``_enrich_status`` says ``answered``, ``pending`` (in a
    batch, with ``wait=False``; a later call collects it) or ``failed`` (``_enrich_error`` says
    why; a later call retries it up to ``max_attempts``).

    `prompt` and `image` name columns; `output`, `model`, `system_prompt` and the other keywords
    are an enrich model's config (``temperature=0``, ``max_attempts=2``, …). Answers are kept in
    the DuckDB file `cache` (default :func:`default_cache`), so calling again sends only rows that
    are new or changed. `offline` answers from the local server in this process (no key, no
    network); otherwise `api`, or `options.api`, or ``OPENAI_API_KEY``/``OPENAI_BASE_URL``.
    Bad arguments and bad rows raise :class:`~enrich.errors.ProjectError` before anything is sent.
    """
    kind = _kind(df)
    keys = (key,) if isinstance(key, str) else tuple(key)
    task = _task(keys, prompt, image, output, model, system_prompt, config)
    spec = resolve(_name(task), WHERE, own_keys(task, (), WHERE), {}, Path.cwd())
    columns = _columns(df, spec, task)
    path = Path(cache) if cache is not None else default_cache()
    db = Database.connect(path)
    try:
        db.execute(sql.fill("ATTACH IF NOT EXISTS ':memory:' AS {work}", work=WORK))
        db.copy_frame((WORK, "main", INPUT), _source(df, kind, columns), columns)
        _check_rows(db, spec)
        query = sql.fill("SELECT {c} FROM {t}", c=columns, t=sql.Raw(_work(INPUT)))
        base = path.parent / path.stem  # like a project folder: its target/ holds the files
        with _reaching(base, offline, api, options, wait) as chosen:
            folder = base / "target" / "enrich"
            enrich_query(
                db.connection, query, spec.name, task, where=WHERE, folder=folder, options=chosen
            )
            salt = hash_salt((chosen.api or ApiConfig.from_env()).source)
        out = _typed(db, _result(db, spec, query, salt), kind, df, spec.unique_key)
        # The answers are in the ledger: a table per task would pile up in the cache.
        db.execute(sql.fill("DROP TABLE {t}", t=spec.name))
        return cast(F, out)
    finally:
        db.close()


def default_cache() -> Path:
    """Where :func:`frame` keeps answers unless told: ``$XDG_CACHE_HOME/enrich/frames.duckdb``,
    else ``~/.cache/enrich/frames.duckdb`` (read at call time)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "enrich" / "frames.duckdb"


def _kind(df: object) -> str:
    """``polars`` or ``pandas``, by the DataFrame class's module: neither is imported for it, so
    pandas need not be installed and ``import enrich`` does not pay for polars."""
    for cls in type(df).__mro__:
        library = cls.__module__.split(".")[0]
        if cls.__name__ == "DataFrame" and library in ("polars", "pandas"):
            return library
    kind = type(df)
    raise ProjectError(
        f"{WHERE}: takes a Polars or pandas DataFrame, not {kind.__module__}.{kind.__qualname__}; "
        "convert it first (polars.DataFrame(...), or .collect() a LazyFrame)"
    )


def _task(
    keys: tuple[str, ...],
    prompt: str,
    image: str | None,
    output: Any,
    model: str | None,
    system_prompt: str | None,
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """The enrich model config the call amounts to."""
    for name, argument in ARGUMENTS.items():
        if name in config:
            raise ProjectError(f"{WHERE}: pass {argument}=..., not {name}=...")
    task = {**config, "unique_key": list(keys), "prompt_column": prompt}
    given = {
        "output": output,
        "model": model,
        "system_prompt": system_prompt,
        "image_column": image,
    }
    return task | {k: v for k, v in given.items() if v is not None}


def _name(task: Mapping[str, Any]) -> str:
    """The same task (columns and config) gets the same name whatever the rows: the ledger knows
    its requests by hash anyway, but runs and messages are grouped by it."""
    text = json.dumps(task, sort_keys=True, default=str)
    return "frame_" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _work(name: str) -> str:
    """A table of the call's own in-memory database."""
    return sql.relation((WORK, "main", name)).text


def _columns(df: Any, spec: EnrichSpec, task: Mapping[str, Any]) -> list[str]:
    """The frame's columns a request is made of; one it lacks is an error naming it."""
    present = [str(c) for c in df.columns]
    wanted = {k: "key" for k in spec.unique_key} | {spec.prompt_column: "prompt"}
    if "image_column" in task:
        wanted[spec.image_column] = "image"
    if "system_prompt_column" in task:
        wanted[spec.system_prompt_column] = "system_prompt_column"
    for column, role in wanted.items():
        if column not in present:
            in_index = column in (getattr(getattr(df, "index", None), "names", None) or ())
            hint = " (an index is not a column: df.reset_index() first)" if in_index else ""
            raise ProjectError(
                f"{WHERE}: {role} column {column!r} is not in the DataFrame"
                f"{did_you_mean(column, present)}{hint}; it has: {', '.join(present)}"
            )
    return list(wanted)


def _check_rows(db: Database, spec: EnrichSpec) -> None:
    """Stop before anything is sent when a key is NULL or repeats, or a prompt is empty."""
    null_key = " OR ".join(sql.fill("{k} IS NULL", k=k) for k in spec.unique_key)
    parts: dict[str, sql.Part] = {
        "row_key": sql.Raw(sql.fill("to_json(struct_pack({k}))::VARCHAR", k=spec.unique_key)),
        "keys": spec.unique_key,
        "null_key": sql.Raw(null_key),
        "input": sql.Raw(_work(INPUT)),
        "prompt": spec.prompt_column,
    }
    for template, problem in _CHECKS:
        found = db.fetchone(sql.fill(template, **parts))
        if found is not None:
            extra = found[2] if len(found) > 2 else None
            said = problem.format(
                key=found[0], count=found[1], extra=extra, column=spec.prompt_column
            )
            raise ProjectError(f"{WHERE}: {said}")


@contextmanager
def _reaching(
    base: Path, offline: bool, api: ApiConfig | None, options: EnrichOptions | None, wait: bool
) -> Iterator[EnrichOptions]:
    """The run's options: the local server in this process when `offline`, like
    ``enrich run --offline`` (its batches kept under `base`/target for a later call)."""
    chosen = dataclasses.replace(options or EnrichOptions(wording=WORDING), wait=wait)
    if api is not None:
        chosen = dataclasses.replace(chosen, api=api)
    if not offline:
        yield chosen
        return
    if chosen.api is not None:
        raise ProjectError(f"{WHERE}: offline=True answers locally; drop api=... or offline=True")
    from .server import offline as local_server  # the server's libraries, only when it serves

    with local_server(base) as running:
        served = ApiConfig(
            running.base_url, running.api_key, max_retries=0, answers_from=OFFLINE_SOURCE
        )
        yield dataclasses.replace(
            chosen, api=served, poll_seconds=chosen.poll_seconds or (0.2, 1.0)
        )


def _result(db: Database, spec: EnrichSpec, query: str, salt: str) -> str:
    """The query of the frame to return; rows without an answer get their status from the
    ledger, by the hash of their request."""
    keys, target = spec.unique_key, sql.relation(("main", spec.name))
    parts: dict[str, sql.Part] = {
        "keys": sql.columns(keys, "i"),
        "key_names": keys,
        "input": sql.Raw(_work(INPUT)),
        "target": target,
        "status_type": sql.Raw(STATUS_TYPE),
        "status": sql.Raw("NULL"),
        "error": sql.Raw("NULL::VARCHAR"),
        "join_statuses": sql.Raw(""),
    }
    unanswered = db.fetchone(sql.fill(_COUNTS, input=parts["input"], target=target))
    if unanswered and unanswered[0]:
        statuses = sql.Raw(_work(STATUSES))
        shared = request_lines.plan_rows(db, query, spec, salt=salt)
        rows = sql.work_table(spec.name, "rows")
        db.execute(
            db.in_ledger(_STATUSES, statuses=statuses, keys=sql.columns(keys, "r"), rows=rows)
        )
        request_lines.drop_work(db, shared)
        join = sql.fill("LEFT JOIN {s} AS s USING ({k})", s=statuses, k=keys)
        parts |= {
            "status": sql.Raw("s._enrich_status"),
            "error": sql.Raw("s._enrich_error"),
            "join_statuses": sql.Raw(join),
        }
    return sql.fill(_RESULT, **parts)


def _typed(db: Database, query: str, kind: str, df: Any, keys: Sequence[str]) -> Any:
    """The result as a frame of `df`'s kind: keys of their input dtypes, enums as Polars
    ``Enum`` (DuckDB gives pandas ``category`` itself)."""
    if kind == "pandas":
        return db.pandas(query).astype({k: df[k].dtype for k in keys})
    import polars as pl

    enums = [
        pl.col(name).cast(pl.Enum(describe_type(type_).values))
        for name, type_ in db.describe(query)
        if type_.startswith("ENUM")
    ]
    out = pl.DataFrame(db.arrow_stream(query))
    return out.with_columns(*enums, *(pl.col(k).cast(df.schema[k]) for k in keys))


def _source(df: Any, kind: str, columns: list[str]) -> object:
    """What DuckDB reads the frame from: a pandas frame itself; of a Polars one, the columns
    asked for (it would export all), as a bare Arrow stream."""
    return _Stream(df.select(columns)) if kind == "polars" else df


@dataclass(frozen=True)
class _Stream:
    """Only a Polars frame's Arrow C stream: DuckDB reads a Polars DataFrame through pyarrow,
    and a bare stream without it."""

    frame: Any

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self.frame.__arrow_c_stream__(requested_schema)
