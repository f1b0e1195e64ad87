"""What dbt's ``materialized='enrich'`` runs: one model of a dbt project built by
:func:`enrich.enrich_query` on dbt-duckdb's own connection.

The macro (``dbt_package/macros/enrich.sql``) runs :func:`build` as a dbt-duckdb Python job with
the connection of the model's thread and a :class:`DbtRequest` (the compiled query, the target
relation, the model's config, dbt's flags and the ``enrich_*`` vars). :func:`build` answers in
that connection's variable ``enrich_dbt_outcome`` (an :class:`Outcome` as JSON), which the macro
reads to report the model as dbt does. A mistake is never raised from here: dbt-duckdb would show
it as a Python traceback; the macro raises it as one line instead. The only module that imports
dbt.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..batch.client import OFFLINE_SOURCE, ApiConfig
from ..batch.costs import DEFAULT_PRICES, Price
from ..batch.options import EnrichOptions, Wording
from ..batch.session import Done
from ..errors import EnrichError, ProjectError
from ..project.enrich_query import enrich_query
from ..suggest import did_you_mean
from ..warehouse import sql
from ..warehouse.db import Database

OUTCOME_VARIABLE = "enrich_dbt_outcome"

# Messages name dbt's knobs, not the enrich CLI's flags.
DBT_WORDING = Wording(
    offline="add --vars '{enrich_offline: true}' to use enrich's local Batch API server",
    max_cost="the enrich_max_cost var",
    add_price=(
        "it to the enrich_prices var, e.g. --vars "
        "'{{enrich_prices: {{\"{model}\": {{input: 0.1, output: 0.4}}}}}}' (USD per million "
        "tokens at batch prices)"
    ),
    failures="failed rows are in _enrich.requests, of the enrich_ledger file when it is set",
)

VARS = (
    "enrich_offline",
    "enrich_dry_run",
    "enrich_no_wait",
    "enrich_max_cost",
    "enrich_prices",
    "enrich_ledger",
)


@dataclass(frozen=True)
class DbtRequest:
    """One enrich model as the macro hands it over."""

    query: str  # the model's compiled SQL
    target: str  # the relation to build, as dbt renders it: "db"."schema"."name"
    name: str  # the model's name in the ledger and messages
    where: str  # its file, as messages name it: models/x.sql
    config: Mapping[str, Any]  # every config key the model has, dbt's own included
    project_dir: Path
    target_path: Path  # dbt's target folder (relative to the project unless absolute)
    full_refresh: bool = False
    empty: bool = False  # dbt's --empty: build the typed table with no rows, send nothing
    vars: Mapping[str, Any] = field(default_factory=dict)  # the enrich_* vars, None when unset
    vars_given: tuple[str, ...] = ()  # the names given with --vars, to catch a misspelled one

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> DbtRequest:
        """The request as the macro wrote it."""
        paths = {"project_dir", "target_path", "vars_given"}
        names = {f.name for f in dataclasses.fields(cls)} - paths
        project = Path(str(values.get("project_dir") or "."))
        return cls(
            **{k: v for k, v in values.items() if k in names},
            project_dir=project,
            target_path=project / str(values.get("target_path") or "target"),
            vars_given=tuple(str(v) for v in values.get("vars_given") or ()),
        )


@dataclass(frozen=True)
class Outcome:
    """What the macro reports: the status, the words in dbt's brackets and the line to show."""

    status: Literal["success", "warn", "error"]
    summary: str  # in dbt's result line: [OK 10 rows, 10 sent in 1.20s]
    message: str  # logged (success), a warning (warn), or the error
    rows: int | None = None  # rows in the table
    built: bool = False  # whether the table was (re)built

    @property
    def code(self) -> str:
        """dbt's adapter_response code."""
        return {"success": "OK", "warn": "WARN", "error": "ERROR"}[self.status]


def build(connection: Any, request: Mapping[str, Any]) -> None:
    """Build one enrich model on dbt-duckdb's connection (its cursor wrapper, or a DuckDB
    connection) and leave the :class:`Outcome` in the connection's ``enrich_dbt_outcome``."""
    # dbt-duckdb wraps the DuckDB connection to turn its errors into dbt's; enrich needs DuckDB's.
    raw = getattr(connection, "_cursor", connection)
    asked = DbtRequest.from_json(request)
    try:
        outcome = _outcome(asked, _build(raw, asked))
    except EnrichError as err:
        outcome = Outcome("error", "ERROR", str(err))
    said = json.dumps({**dataclasses.asdict(outcome), "code": outcome.code})
    Database.adopt(raw).execute(sql.fill("SET VARIABLE {name} = ?", name=OUTCOME_VARIABLE), [said])


def _build(connection: Any, request: DbtRequest) -> Done:
    _check_vars(request)
    query = request.query
    if request.empty:  # dbt empties refs and sources; a table named directly must send nothing too
        query = sql.fill("SELECT * FROM ({q}) AS model LIMIT 0", q=sql.Raw(query))
    with _options(request) as options:
        return enrich_query(
            connection,
            query,
            request.target,
            _by_name(request.config),
            host_keys=dbt_config_keys(),
            name=request.name,
            where=request.where,
            folder=request.target_path / "enrich",
            root=request.project_dir,
            prices=_prices(request.vars.get("enrich_prices"), request.where),
            options=options,
            ledger=_ledger(request),
        )


def _by_name(value: Any) -> Any:
    """`value` with every mapping in it ordered by key. dbt hands a model's config dicts over in
    the order written after one parse and sorted after another (its partial parse), and the
    order of ``output`` and ``params`` is part of every request: one order for good, or the same
    requests would be paid for again whenever dbt parses anew. Lists keep their order."""
    if isinstance(value, Mapping):
        return {str(k): _by_name(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list):
        return [_by_name(v) for v in value]
    return value


# What a templated var renders for "off" (``{{ env_var('ENRICH_LEDGER', 'false') }}``), and
# words that would otherwise become a file of that name.
_OFF = frozenset({"", "false", "no", "0", "none", "off"})
_ON = frozenset({"true", "yes", "1", "on"})


def _ledger(request: DbtRequest) -> Path | None:
    """The shared ledger file the enrich_ledger var names (relative to the dbt project), if any."""
    named = request.vars.get("enrich_ledger")
    if named is None or named is False or str(named).strip().lower() in _OFF:
        return None
    if not isinstance(named, str) or named.strip().lower() in _ON:
        raise ProjectError(
            f"{request.where}: the enrich_ledger var is the path of a DuckDB file (relative to "
            f"the dbt project), not {named!r}"
        )
    return request.project_dir / Path(named).expanduser()


def _outcome(request: DbtRequest, done: Done) -> Outcome:
    """How dbt shows what building the model did."""
    figures = done.figures
    if figures.get("dry_run"):
        to_send = figures.get("requests_to_send", 0)
        return Outcome("success", f"DRY RUN {to_send} to send", f"{request.name}: {done.message}")
    sent, failed = figures.get("requests_submitted", 0), figures.get("rows_failed", 0)
    if done.status == "error":
        return Outcome("error", "ERROR", f"{request.where}: {done.message}", done.rows, True)
    if done.status == "warn":
        summary = f"WARN {done.rows} rows, {failed} failed"
        return Outcome("warn", summary, f"{request.name}: {done.message}", done.rows, True)
    summary = f"OK {done.rows} rows, {sent} sent"
    return Outcome("success", summary, f"{request.name}: {done.message}", done.rows, True)


@contextmanager
def _options(request: DbtRequest) -> Iterator[EnrichOptions]:
    """The run's options from dbt's flags and the enrich_* vars; with ``enrich_offline``, the
    local Batch API server in this process, shared by the models dbt builds at once."""
    where, given = request.where, request.vars
    max_cost = given.get("enrich_max_cost")
    options = EnrichOptions(
        wait=not _flag(given, "enrich_no_wait", where),
        dry_run=_flag(given, "enrich_dry_run", where),
        full_refresh=request.full_refresh,
        max_cost_usd=None if max_cost is None else _number(max_cost, "enrich_max_cost", where),
        wording=DBT_WORDING,
    )
    if not _flag(given, "enrich_offline", where):
        yield options
        return
    from .shared_server import SHARED  # the server's libraries, only when it serves

    with SHARED.serving(request.project_dir) as running:
        api = ApiConfig(
            running.base_url, running.api_key, max_retries=0, answers_from=OFFLINE_SOURCE
        )
        yield dataclasses.replace(options, api=api, poll_seconds=(0.2, 1.0))


def _check_vars(request: DbtRequest) -> None:
    for name in request.vars_given:
        if name.startswith("enrich_") and name not in VARS:
            raise ProjectError(
                f"the var {name!r} is not one of enrich's{did_you_mean(name, VARS)}; enrich's "
                "vars are: " + ", ".join(VARS)
            )


def _flag(given: Mapping[str, Any], name: str, where: str) -> bool:
    value = given.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "false", "no", "0"):
        return text in ("true", "yes", "1")
    raise ProjectError(f"{where}: the {name} var is true or false, not {value!r}")


def _number(value: Any, name: str, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0 or isinstance(value, bool):
        raise ProjectError(f"{where}: the {name} var is a number of US dollars, not {value!r}")
    return number


def _prices(value: Any, where: str) -> Mapping[str, Price]:
    """The price table, with the enrich_prices var's entries over enrich's defaults."""
    if value is None:
        return DEFAULT_PRICES
    bad = ProjectError(
        f"{where}: the enrich_prices var maps models to prices, like "
        "{'my-model': {input: 0.1, output: 0.4}} (USD per million tokens at batch prices)"
    )
    if not isinstance(value, Mapping):
        raise bad
    prices = dict(DEFAULT_PRICES)
    for model, entry in value.items():
        if not isinstance(entry, Mapping) or set(entry) - {"input", "output"}:
            raise bad
        prices[str(model)] = Price(
            _number(entry.get("input", 0), "enrich_prices", where),
            _number(entry.get("output", 0), "enrich_prices", where),
        )
    return prices


def dbt_config_keys() -> frozenset[str]:
    """The config keys dbt (and dbt-duckdb) define for a model: every model's config has them,
    so enrich ignores them; any other key enrich does not know is a mistake it names."""
    from dbt.adapters.duckdb.impl import DuckDBAdapter
    from dbt.artifacts.resources.v1.model import ModelConfig

    keys = set(ModelConfig().to_dict(omit_none=False))
    for kind in (ModelConfig, DuckDBAdapter.AdapterSpecificConfigs):
        if dataclasses.is_dataclass(kind):
            keys.update(f.name for f in dataclasses.fields(kind))
    return frozenset(keys - {"_extra"})
