"""Everything that reads or writes SQL text: parsing models, finding the tables they read,
transpiling to DuckDB, and quoting identifiers for the statements enrich builds.

The only module that imports sqlglot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from ..errors import ProjectError, SqlError
from ..suggest import did_you_mean

DUCKDB = "duckdb"
# The run's scratch database, attached on every connection (see warehouse.db.Opening).
SCRATCH = "enrich_work"
# The schema of enrich's run state, in the database itself or in a shared ledger file attached
# as this catalog (see warehouse.db.Database.adopt).
STATE = "_enrich"
SHARED_LEDGER = "enrich_ledger"


def check_dialect(dialect: str, path: str) -> str:
    """Return `dialect` if sqlglot knows it, else raise naming the model file."""
    names = [d.value for d in sqlglot.Dialects if d.value]
    if dialect not in names:
        raise ProjectError(
            f"{path}: unknown dialect {dialect!r}{did_you_mean(dialect, names)}; "
            f"use one of: {', '.join(sorted(names))}"
        )
    return dialect


def quote(name: str, dialect: str = DUCKDB) -> str:
    """A quoted identifier.

    >>> quote("top movies")
    '"top movies"'
    """
    return exp.to_identifier(name, quoted=True).sql(dialect)


def literal(value: str) -> str:
    """A string literal, for text that is part of a statement's shape (a JSON key, a type name),
    never a user's value (those are ``?`` parameters).

    >>> literal("it's")
    "'it''s'"
    """
    return exp.Literal.string(value).sql(DUCKDB)


def quote_table(name: str, schema: str | None = None, dialect: str = DUCKDB) -> str:
    """A quoted, optionally schema-qualified table name.

    >>> quote_table("t", "raw")
    '"raw"."t"'
    """
    return exp.table_(name, db=schema, quoted=True).sql(dialect)


def relation(parts: Sequence[str]) -> Raw:
    """A quoted relation from its parts: ``name``, ``schema.name`` or ``catalog.schema.name``.

    >>> relation(["main", "labels"]).text
    '"main"."labels"'
    """
    return Raw(".".join(quote(part) for part in parts))


def relation_parts(text: str) -> tuple[str, ...]:
    """The parts of a relation as SQL writes it (``"my db".main.t`` → ``('my db', 'main', 't')``);
    raises ProjectError when it is not one.

    >>> relation_parts('"my db".main.t')
    ('my db', 'main', 't')
    """
    try:
        table = exp.to_table(text, dialect=DUCKDB)
    except (ParseError, TokenError) as err:
        raise ProjectError(f"{text!r} is not a relation name ({err}); write schema.table") from err
    return tuple(part.name for part in table.parts)


def work_table(node: str, kind: str) -> Raw:
    """One of a build's working tables (``rows``, ``sends``) in the scratch database.

    >>> work_table("movies", "rows").text
    '"enrich_work"."main"."movies:rows"'
    """
    return Raw(exp.table_(f"{node}:{kind}", db="main", catalog=SCRATCH, quoted=True).sql(DUCKDB))


def state_schema(catalog: str | None = None) -> Raw:
    """The schema of enrich's run state: the database's own, or a shared ledger's.

    >>> state_schema().text, state_schema("enrich_ledger").text
    ('"_enrich"', '"enrich_ledger"."_enrich"')
    """
    return Raw(".".join(quote(part) for part in (catalog, STATE) if part))


def parse_model(sql: str, *, dialect: str, path: str) -> exp.Query:
    """Parse a rendered model; it must be exactly one query."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as err:
        raise _syntax_error(err, path) from err
    except TokenError as err:
        raise SqlError(f"{path}: cannot read the SQL: {err}", path=path, line=0, col=0) from err
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise ProjectError(
            f"{path}: a model is exactly one SELECT statement, found "
            f"{len(statements)} statement(s); remove the others"
        )
    return statements[0]


def _syntax_error(err: ParseError, path: str) -> SqlError:
    first = err.errors[0] if err.errors else {}
    line, col = int(first.get("line") or 0), int(first.get("col") or 0)
    near = (first.get("highlight") or "").strip()
    what = str(first.get("description") or err)
    return SqlError(
        f"{path}:{line}:{col}: syntax error near {near!r}: {what}; fix the SQL at that point",
        path=path,
        line=line,
        col=col,
    )


def local_tables(query: exp.Query) -> set[str]:
    """Names of the tables a query reads without a schema (or from ``main``); CTEs excluded."""
    return {t.name for t in exp.find_tables(query) if t.db in ("", "main") and not t.catalog}


def to_duckdb(query: exp.Query, sql: str, dialect: str) -> str:
    """The model's SQL for DuckDB: as written when it is DuckDB already, else transpiled."""
    if dialect == DUCKDB:
        return sql.strip().rstrip(";").strip()
    return query.sql(DUCKDB, pretty=True)


def create_view(name: str, query_sql: str) -> str:
    """``CREATE OR REPLACE VIEW`` over a model's query."""
    return f"CREATE OR REPLACE VIEW {quote_table(name)} AS\n{query_sql}"


def create_table_as(name: str, query_sql: str) -> str:
    """``CREATE OR REPLACE TABLE … AS`` a model's query."""
    return f"CREATE OR REPLACE TABLE {quote_table(name)} AS\n{query_sql}"


def drop(kind: str, name: str) -> str:
    """``DROP VIEW|TABLE IF EXISTS``."""
    keyword = {"view": "VIEW", "table": "TABLE"}[kind]
    return f"DROP {keyword} IF EXISTS {quote_table(name)}"


def select_all(name: str) -> str:
    """``SELECT *`` of a table or view."""
    return f"SELECT * FROM {quote_table(name)}"


def count_rows(name: str) -> str:
    """``SELECT count(*)`` of a table or view."""
    return f"SELECT count(*) FROM {quote_table(name)}"


def read_csv(with_types: bool) -> str:
    """``read_csv(path, delim[, types])`` as ``?`` parameters, recording rejected rows."""
    options = "header = true, delim = ?, quote = '\"', escape = '\"', store_rejects = true"
    return f"SELECT * FROM read_csv(?, {options}{', types = ?' if with_types else ''})"


def limited(query_sql: str) -> str:
    """A model's query wrapped to return at most ``?`` rows."""
    return f"SELECT * FROM (\n{query_sql}\n) AS model LIMIT ?"


@dataclass(frozen=True)
class Raw:
    """SQL text put into a template as is: enrich's own fragments, or a model's rendered query."""

    text: str


Part = str | Sequence[str] | Raw


def fill(template: str, /, **parts: Part) -> str:
    """`template` with each ``{name}`` replaced: a string or a sequence of strings becomes quoted
    identifiers (comma-separated), a :class:`Raw` its text. Values never go here: they are ``?``.

    >>> fill("SELECT {keys} FROM {t}", keys=["a b", "c"], t="x")
    'SELECT "a b", "c" FROM "x"'
    """
    return template.format(**{name: _part(part) for name, part in parts.items()})


def _part(part: Part) -> str:
    if isinstance(part, Raw):
        return part.text
    if isinstance(part, str):
        return quote(part)
    return ", ".join(quote(name) for name in part)


def columns(names: Sequence[str], table: str) -> Raw:
    """``"t"."a", "t"."b"``: columns qualified by a table alias.

    >>> columns(["a"], "r").text
    '"r"."a"'
    """
    return Raw(", ".join(f"{quote(table)}.{quote(name)}" for name in names))


def describe(query_sql: str) -> str:
    """``DESCRIBE`` a model's query: its column names and types."""
    return f"DESCRIBE SELECT * FROM (\n{query_sql}\n) AS model"
