"""Enriching one query on a DuckDB connection someone else opened: the library entry for hosts
(dbt-duckdb's materialization, :func:`enrich.frame`, a notebook).

It takes the same config keys as a ``materialized='enrich'`` model; keys that belong to the host
(dbt's ``schema``, ``alias``, …) are named by the host and ignored, any other unknown key is an
error. The run state lives in the connection's database (schema ``_enrich``), so a second call
sends only what is new or changed; with ``ledger=PATH``, requests and batches live in that DuckDB
file instead, shared by every database that names it (dbt's dev and prod targets).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ..batch import ledger as run_state
from ..batch import lifecycle, pipeline
from ..batch.client import OFFLINE_SOURCE
from ..batch.costs import DEFAULT_PRICES, Price
from ..batch.options import EnrichOptions, utc_now
from ..batch.request_lines import BatchSettings
from ..batch.session import Done, Job
from ..batch.spec import ENRICH_KEYS, resolve
from ..errors import ProjectError
from ..suggest import did_you_mean
from ..warehouse import sql
from ..warehouse.db import Database
from .materializations import COMMON_CONFIG


def enrich_query(
    connection: Any,
    query: str,
    target: str,
    config: Mapping[str, Any],
    *,
    host_keys: Collection[str] = (),
    name: str | None = None,
    where: str | None = None,
    folder: str | Path = Path("target") / "enrich",
    root: str | Path | None = None,
    batch: BatchSettings | None = None,
    prices: Mapping[str, Price] | None = None,
    options: EnrichOptions | None = None,
    clock: Callable[[], datetime] = utc_now,
    ledger: str | Path | None = None,
) -> Done:
    """Send the rows of `query` (DuckDB SQL) through the Batch API and build `target`
    (``table``, ``schema.table`` or ``catalog.schema.table``) of their answers, on `connection`
    (a ``duckdb.DuckDBPyConnection``, left open).

    `name` identifies the model in the ledger and messages (default: the target's name); `where`
    is what errors name first (a model file); `root` is the folder ``system_prompt_file`` is
    relative to (default: the current one); `folder` keeps request files while batches are out.
    With `ledger` (a DuckDB file, made if missing), what was sent and answered is kept there rather
    than in the connection's database, so other databases using the same file never pay again
    for the same requests; what each table was built from stays in its own database.
    Messages name the caller's own knobs when ``options.wording`` does. Returns the build's
    figures and its status by the failure thresholds (``success``, ``warn`` or ``error``); user
    mistakes raise :class:`~enrich.errors.EnrichError`.
    """
    parts = sql.relation_parts(target)
    name = name or parts[-1]
    where = where or name
    spec = resolve(name, where, own_keys(config, host_keys, where), {}, Path(root or Path.cwd()))
    shared = None if ledger is None else Path(ledger)
    db = Database.adopt(connection, shared)
    run_state.migrate(db)
    chosen = options or EnrichOptions()
    lifecycle.share_own(db, shared, clock(), OFFLINE_SOURCE, move=not chosen.dry_run)
    job = Job(
        name=name,
        sql=query,
        spec=spec,
        batch=batch or BatchSettings(),
        prices=prices or DEFAULT_PRICES,
        max_cost_usd=None,
        folder=Path(folder) / name,
        target=parts,
    )
    run = dataclasses.replace(chosen, run_id=chosen.run_id or uuid.uuid4().hex)
    return pipeline.build(job, db, run, clock)


def own_keys(config: Mapping[str, Any], host_keys: Collection[str], where: str) -> dict[str, Any]:
    """The config keys enrich acts on; an unknown key that is not the host's is an error."""
    known = ENRICH_KEYS | COMMON_CONFIG
    for key in config:
        if key not in known and key not in host_keys:
            raise ProjectError(
                f"{where}: config key {key!r} is unknown{did_you_mean(key, known)}; an enrich "
                f"model takes: {', '.join(sorted(ENRICH_KEYS))}"
            )
    return {k: v for k, v in config.items() if k in ENRICH_KEYS}
