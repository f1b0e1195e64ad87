"""DuckDB access: connecting, building views and tables, loading CSV seeds, reading rows.

The only module that imports duckdb. Statements come from :mod:`enrich.sql`; values are bound as
``?`` parameters.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ..errors import ExecutionError, ProjectError, SeedError
from . import sql

MEMORY = ":memory:"

_RELATION_KIND = """
SELECT lower(table_type) FROM information_schema.tables
WHERE table_schema = coalesce(?, current_schema()) AND table_name = ?
"""

_LAST_REJECTS = """
SELECT line, error_type, error_message FROM reject_errors
WHERE scan_id = (SELECT max(scan_id) FROM reject_scans)
ORDER BY line LIMIT 1
"""


@dataclass(frozen=True)
class TypeInfo:
    """A DuckDB type as DuckDB itself parsed it: its kind, canonical spelling and parts."""

    id: str  # 'varchar', 'bigint', 'list', 'struct', 'enum', …
    text: str  # canonical spelling, safe to put in DDL
    fields: tuple[tuple[str, TypeInfo], ...] = ()  # a struct's fields; a list's element
    values: tuple[str, ...] = ()  # an enum's values


def describe_type(text: str) -> TypeInfo:
    """Parse a DuckDB type name; an unknown one raises ProjectError with DuckDB's suggestion."""
    try:
        parsed = duckdb.sqltype(text)
    except duckdb.Error as err:
        raise ProjectError(str(err).strip().replace("\n", " ")) from err
    return _type_info(parsed)


def _type_info(parsed: Any) -> TypeInfo:
    if parsed.id == "enum":
        return TypeInfo("enum", str(parsed), values=tuple(parsed.children[0][1]))
    if parsed.id in ("list", "struct"):
        fields = tuple((name, _type_info(child)) for name, child in parsed.children)
        return TypeInfo(parsed.id, str(parsed), fields)
    return TypeInfo(parsed.id, str(parsed))


@dataclass(frozen=True)
class Table:
    """Rows read back for display: column names, DuckDB types, rows, and DuckDB's own rendering."""

    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    text: str


class Database:
    """One DuckDB database; :meth:`cursor` gives each worker thread its own connection."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        path: str,
        write_lock: threading.RLock | None = None,
    ) -> None:
        self._con = connection
        self.path = path
        self._lock = threading.Lock()
        # Shared by every cursor of one database: the run-state writes that must not interleave
        # (claiming requests, collecting a batch) take it, so threads never race on them.
        self._write_lock = write_lock or threading.RLock()

    @classmethod
    def connect(cls, path: str | Path, memory_limit: str | None = None) -> Database:
        """Open (creating if needed) the database file at `path`, or an in-memory one.

        With `memory_limit` (``"512MB"``) DuckDB spills to disk beyond it, so memory stays flat
        however many rows a model has.
        """
        target = str(path)
        if target != MEMORY:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, str | bool | int | float | list[str]] = {}
        if memory_limit:
            config["memory_limit"] = memory_limit
            # Lets large statements stream and spill instead of buffering rows in order.
            config["preserve_insertion_order"] = False
        try:
            return cls(duckdb.connect(target, config=config), target)
        except duckdb.IOException as err:
            if "Could not set lock" not in str(err):
                raise ExecutionError(f"cannot open the DuckDB database {target}: {err}") from err
            holder = str(err).split("Conflicting lock is held in", 1)[-1].split(". See", 1)[0]
            raise ExecutionError(
                f"{target} is in use by another process ({holder.strip()}), probably another "
                "enrich run: wait for it to finish and run again; batches it submitted are "
                "collected by the next run, never sent twice"
            ) from err
        except duckdb.Error as err:
            raise ExecutionError(
                f"cannot open the DuckDB database {target}: {err}; "
                "is another process holding it open for writing?"
            ) from err

    def cursor(self) -> Database:
        """A connection to the same database for use in another thread."""
        with self._lock:
            return Database(self._con.cursor(), self.path, self._write_lock)

    def close(self) -> None:
        """Close this connection."""
        self._con.close()

    def execute(self, statement: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> None:
        """Run one statement."""
        self._run(statement, params)

    def fetchall(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Run a query and return its rows."""
        return self._run(query, params).fetchall()

    def fetchone(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> tuple[Any, ...] | None:
        """Run a query and return its first row, if any (for queries of a row or a few)."""
        rows = self._run(query, params).fetchall()  # drained: DuckDB wants results finished
        return rows[0] if rows else None

    def _run(
        self, statement: str, params: Sequence[Any] | Mapping[str, Any]
    ) -> duckdb.DuckDBPyConnection:
        try:
            return self._con.execute(statement, params)
        except duckdb.Error as err:
            raise ExecutionError(str(err).strip()) from err

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        self._con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """A transaction no other cursor of this database runs beside (see ``write_lock``)."""
        with self._write_lock, self.transaction():
            yield

    def relation_kind(self, name: str, schema: str | None = None) -> str | None:
        """``'view'``, ``'base table'`` or None when `name` does not exist."""
        row = self.fetchone(_RELATION_KIND, [schema, name])
        return None if row is None else str(row[0])

    def replace_relation(self, name: str, query_sql: str, kind: str) -> int | None:
        """Build `name` as a view or table from a query, dropping one of the other kind first."""
        existing = self.relation_kind(name)
        with self.transaction():
            if existing == "view" and kind == "table":
                self.execute(sql.drop("view", name))
            elif existing == "base table" and kind == "view":
                self.execute(sql.drop("table", name))
            build = sql.create_view if kind == "view" else sql.create_table_as
            self.execute(build(name, query_sql))
        return self.count(name) if kind == "table" else None

    def count(self, name: str) -> int:
        """Number of rows in a table or view."""
        row = self.fetchone(sql.count_rows(name))
        return int(row[0]) if row else 0

    def load_csv(
        self, name: str, path: Path, column_types: Mapping[str, str], delimiter: str
    ) -> int:
        """Replace table `name` with the CSV at `path`; a malformed row raises naming its line."""
        statement = sql.create_table_as(name, sql.read_csv(bool(column_types)))
        params: list[Any] = [str(path), delimiter] + ([dict(column_types)] if column_types else [])
        with self.transaction():
            try:
                self.execute(statement, params)
            except ExecutionError as err:
                raise SeedError(
                    f"{path}: {err}; check the file is a UTF-8 CSV with a header"
                ) from err
            reject = self.fetchone(_LAST_REJECTS)
            if reject is not None:
                raise SeedError(
                    f"{path}:{reject[0]}: {reject[1].lower()}: {reject[2]}; "
                    "fix that row of the CSV (or its encoding: seeds are read as UTF-8)"
                )
        return self.count(name)

    def describe(self, query_sql: str) -> list[tuple[str, str]]:
        """The column names and DuckDB types a query returns."""
        return [(str(row[0]), str(row[1])) for row in self.fetchall(sql.describe(query_sql))]

    def read_table(self, query_sql: str, limit: int, params: Sequence[Any] = ()) -> Table:
        """At most `limit` rows of a query, for display."""
        try:
            relation = self._con.sql(sql.limited(query_sql), params=[*params, limit])
            rows = relation.fetchall()
        except duckdb.Error as err:
            raise ExecutionError(str(err).strip()) from err
        # DuckDB renders tables only by printing (str() caps at 20 rows), so capture its output.
        buffer = io.StringIO()
        with redirect_stdout(buffer):
            relation.show(max_rows=max(limit, 1), max_width=200)
        return Table(relation.columns, [str(t) for t in relation.types], rows, buffer.getvalue())
