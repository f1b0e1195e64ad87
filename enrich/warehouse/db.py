"""DuckDB access: connecting, building views and tables, loading CSV seeds, reading rows.

The only module that imports duckdb. Statements come from :mod:`enrich.sql`; values are bound as
``?`` parameters.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from ..errors import ExecutionError, ProjectError, ResourceError, SeedError, no_room
from . import sql

MEMORY = ":memory:"

_T = TypeVar("_T")

_RELATION_KIND = """
SELECT lower(table_type) FROM information_schema.tables
WHERE table_catalog = coalesce(?, current_database())
  AND table_schema = coalesce(?, current_schema()) AND table_name = ?
"""

# How DuckDB says a write found no room (a full disk, a quota, a file size limit).
_NO_ROOM = ("No space left on device", "File too large", "Disk quota exceeded")

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


@dataclass(frozen=True)
class Opening:
    """How to open a database file, and again after :meth:`Database.released`.

    Another process (a reader, a BI tool, the DuckDB CLI) may hold the file for a moment; opening
    waits for it, doubling the pause from 50 ms, for up to `wait_seconds`. `scratch` is a file
    attached as ``enrich_work`` on every connection: the working tables of a run, which must
    outlive a connection closed while batches are out.
    """

    path: str
    memory_limit: str | None = None
    read_only: bool = False
    scratch: Path | None = None
    wait_seconds: float = 60.0
    sleep: Callable[[float], None] = time.sleep


class Database:
    """One DuckDB database as one thread uses it; :meth:`sibling` gives another thread its own.

    A file is held only while a connection is open: :meth:`released` closes this one for a wait
    (the file is free once every sibling has let go too, so other processes can read it), and the
    next statement opens it again.
    """

    def __init__(
        self,
        opening: Opening,
        write_lock: threading.RLock | None = None,
        connection: duckdb.DuckDBPyConnection | None = None,
        ledger_catalog: str | None = None,
    ) -> None:
        self.opening = opening
        self.path = opening.path
        # Where requests and batches are kept: None for this database's own ``_enrich`` schema,
        # or the catalog a shared ledger file is attached as (see :meth:`adopt`).
        self.ledger_catalog = ledger_catalog
        self._con = connection
        self._owned = True  # False for a caller's connection: never closed or let go of here
        self._lock = threading.Lock()
        self._depth = 0  # open transactions: a connection in one is never released
        # Shared by every sibling: the run-state writes that must not interleave (claiming
        # requests, collecting a batch) take it, so threads never race on them.
        self._write_lock = write_lock or threading.RLock()

    @classmethod
    def connect(cls, path: str | Path, memory_limit: str | None = None, **opening: Any) -> Database:
        """Open (creating if needed) the database file at `path`, or an in-memory one.

        With `memory_limit` (``"512MB"``) DuckDB spills to disk beyond it, so memory stays flat
        however many rows a model has. Other keywords are :class:`Opening`'s.
        """
        target = str(path)
        if target != MEMORY and not opening.get("read_only"):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        db = cls(Opening(target, memory_limit, **opening))
        db._connection()
        return db

    @classmethod
    def adopt(
        cls,
        connection: duckdb.DuckDBPyConnection,
        ledger: Path | None = None,
        wait_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Database:
        """A connection the caller opened and will close (dbt's, a notebook's): enrich never
        closes it or lets go of it, and plans in an in-memory scratch database attached to it.

        With `ledger`, requests and batches are kept in that DuckDB file (attached as
        ``enrich_ledger``, waiting up to `wait_seconds` while another process holds it) rather
        than in the connection's database, so several databases (dbt's dev and prod targets)
        share what was paid for. What each database's tables were built from stays in its own.
        """
        row = connection.execute(_CURRENT_DATABASE).fetchone()
        name, file = (str(row[0]), row[1]) if row else (MEMORY, None)
        opening = Opening(MEMORY, scratch=Path(MEMORY), wait_seconds=wait_seconds, sleep=sleep)
        db = cls(opening, _host_write_lock(str(file or name)), connection=connection)
        db.path = name
        db._owned = False
        attach = sql.fill("ATTACH IF NOT EXISTS ':memory:' AS {alias}", alias=sql.SCRATCH)
        with db._write_lock:  # its other connections may be attaching it at this moment
            db.execute(attach)
            if ledger is not None and not _same_file(ledger, file):
                db._attach_ledger(ledger)
        return db

    def _attach_ledger(self, path: Path) -> None:
        row = self.fetchone(_ATTACHED, [sql.SHARED_LEDGER])
        if row is not None and not _same_file(path, row[0]):
            raise ProjectError(
                f"this connection already keeps its ledger in {row[0]}, not {path}: use one "
                "ledger file per connection (or a new connection)"
            )
        if row is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            attach = sql.fill("ATTACH IF NOT EXISTS ? AS {alias}", alias=sql.SHARED_LEDGER)
            attaching = partial(self._connection().execute, attach, [str(path)])
            _waiting(self.opening, attaching, path, _SHARED_TURNS)
        self.ledger_catalog = sql.SHARED_LEDGER

    @property
    def ledger(self) -> sql.Raw:
        """The schema that keeps requests and batches (see :meth:`adopt`)."""
        return sql.state_schema(self.ledger_catalog)

    def in_ledger(self, template: str, **parts: sql.Part) -> str:
        """`template` (see :func:`sql.fill`) with ``{ledger}`` the schema of :attr:`ledger`."""
        return sql.fill(template, ledger=self.ledger, **parts)

    def own_state(self) -> Database:
        """This database's own run state (``_enrich`` in it, even with a shared ledger): the same
        connection, for migrating that schema."""
        own = Database(self.opening, self._write_lock, self._connection())
        own.path, own._owned = self.path, False
        return own

    def sibling(self) -> Database:
        """Another connection to the same database, for another thread."""
        if self.opening.path == MEMORY:  # in memory, a database lives only in its connections
            with self._lock:
                cursor = self._connection().cursor()
                return Database(self.opening, self._write_lock, cursor, self.ledger_catalog)
        return Database(self.opening, self._write_lock, ledger_catalog=self.ledger_catalog)

    def close(self) -> None:
        """Close this connection (not a caller's)."""
        if not self._owned:
            return
        con, self._con = self._con, None
        if con is not None:
            try:
                con.close()  # the last connection to a file checkpoints it: a write
            except duckdb.Error as err:
                raise self._error(err) from err

    @contextmanager
    def released(self) -> Iterator[None]:
        """Let go of the file for a while (an in-memory database, or one mid-transaction, is
        kept)."""
        if self.opening.path != MEMORY and self._depth == 0:
            self.close()
        yield

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = _open(self.opening)
        return self._con

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
            return self._connection().execute(statement, params)
        except duckdb.Error as err:
            raise self._error(err) from err

    def _error(self, err: duckdb.Error) -> ExecutionError:
        said = _words(str(err).strip())
        if isinstance(err, duckdb.OutOfMemoryException):
            limit = self.opening.memory_limit or "DuckDB's default, 80% of RAM"
            return ResourceError(
                f"DuckDB ran out of memory ({said.splitlines()[0]}); memory_limit is {limit}: "
                'raise [tool.enrich] memory_limit ("" for DuckDB\'s own, 80% of RAM), or select '
                "fewer rows, then run again"
            )
        if any(sign in said for sign in _NO_ROOM):
            quoted = said.split('"')  # DuckDB: … Could not write file "PATH": REASON
            reason = said.splitlines()[0].rsplit(": ", 1)[-1]
            return no_room(quoted[1] if len(quoted) > 2 else self.path, reason)
        return ExecutionError(said)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        self.execute("BEGIN TRANSACTION")
        self._depth += 1
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        finally:
            self._depth -= 1
        self.execute("COMMIT")

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """A transaction no other cursor of this database runs beside (see ``write_lock``)."""
        with self._write_lock, self.transaction():
            yield

    def relation_kind(
        self, name: str, schema: str | None = None, catalog: str | None = None
    ) -> str | None:
        """``'view'``, ``'base table'`` or None when `name` does not exist."""
        row = self.fetchone(_RELATION_KIND, [catalog, schema, name])
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

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection itself, for entries that take one (:func:`enrich.enrich_query`)."""
        return self._connection()

    def copy_frame(self, table: Sequence[str], data: object, columns: Sequence[str]) -> None:
        """Replace `table` (its parts) with `columns` of a Polars or pandas DataFrame (or any
        Arrow object), read by DuckDB through Arrow with no Python per row, rows in their order."""
        source = "enrich_frame_source"
        try:
            self._connection().register(source, data)
            copy = "CREATE OR REPLACE TABLE {t} AS SELECT {c} FROM {s}"
            self.execute(sql.fill(copy, t=sql.relation(table), c=columns, s=source))
        except duckdb.Error as err:
            raise self._error(err) from err
        finally:
            self._connection().unregister(source)

    def pandas(self, query_sql: str) -> Any:
        """A query's rows as a pandas DataFrame (DuckDB's ``.df()``)."""
        try:
            return self._connection().sql(query_sql).df()
        except duckdb.Error as err:
            raise self._error(err) from err

    def arrow_stream(self, query_sql: str) -> Any:
        """A query, run when read, as an Arrow C stream (``__arrow_c_stream__``): Polars reads it
        with ``polars.DataFrame(...)`` and no pyarrow, which DuckDB's ``.pl()`` needs."""
        try:
            return self._connection().sql(query_sql)
        except duckdb.Error as err:
            raise self._error(err) from err

    def describe(self, query_sql: str) -> list[tuple[str, str]]:
        """The column names and DuckDB types a query returns."""
        return [(str(row[0]), str(row[1])) for row in self.fetchall(sql.describe(query_sql))]

    def read_table(self, query_sql: str, limit: int, params: Sequence[Any] = ()) -> Table:
        """At most `limit` rows of a query, for display."""
        try:
            relation = self._connection().sql(sql.limited(query_sql), params=[*params, limit])
            rows = relation.fetchall()
        except duckdb.Error as err:
            raise self._error(err) from err
        # DuckDB renders tables only by printing (str() caps at 20 rows), so capture its output.
        buffer = io.StringIO()
        with redirect_stdout(buffer):
            relation.show(max_rows=max(limit, 1), max_width=200)
        return Table(relation.columns, [str(t) for t in relation.types], rows, buffer.getvalue())


_CURRENT_DATABASE = """
SELECT database_name, path FROM duckdb_databases() WHERE database_name = current_database()
"""

# A host adopts one database on several connections at once (dbt's threads, each with its own
# cursor), each through its own Database: they share the write lock of that database, found by its
# file, as siblings do. Process-wide by necessity: the host gives enrich nothing else they share.
_HOST_LOCKS: dict[str, threading.RLock] = {}
_HOST_LOCKS_GUARD = threading.Lock()


def _host_write_lock(database: str) -> threading.RLock:
    with _HOST_LOCKS_GUARD:
        return _HOST_LOCKS.setdefault(database, threading.RLock())


_ATTACHED = "SELECT path FROM duckdb_databases() WHERE database_name = ?"


def _same_file(path: Path, other: str | None) -> bool:
    return other is not None and Path(other).resolve() == path.resolve()


def _waiting(opening: Opening, attempt: Callable[[], _T], path: str | Path, advice: str = "") -> _T:
    """`attempt` to open a file, again while another process holds it, doubling the pause from
    50 ms, for up to ``opening.wait_seconds``."""
    pause, waited = 0.05, 0.0
    while True:
        try:
            return attempt()
        except duckdb.IOException as err:
            if "Could not set lock" not in str(err) or waited >= opening.wait_seconds:
                raise _open_error(opening, err, str(path), advice) from err
        except duckdb.Error as err:
            raise _open_error(opening, err, str(path), advice) from err
        opening.sleep(pause)
        waited, pause = waited + pause, min(pause * 2, 1.0)


def _open(opening: Opening) -> duckdb.DuckDBPyConnection:
    """Connect, waiting while another process holds the file; attach the scratch database."""
    config: dict[str, str | bool | int | float | list[str]] = {}
    if opening.memory_limit:
        config["memory_limit"] = opening.memory_limit
    con = _waiting(opening, partial(_connect, opening, config), opening.path)
    if opening.scratch is not None:
        scratch = ":memory:" if opening.path == MEMORY else str(opening.scratch)
        opening.scratch.parent.mkdir(parents=True, exist_ok=True)
        con.execute(sql.fill("ATTACH IF NOT EXISTS ? AS {alias}", alias=sql.SCRATCH), [scratch])
    return con


# DuckDB opens a file once per process: a second connection must ask for the same settings.
_OTHER_SETTINGS = "different configuration than existing connections"


def _connect(opening: Opening, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """A connection to the file; in a process that already has it open (a notebook that looked
    at the database first), one that shares that connection's settings, memory limit included."""
    try:
        return duckdb.connect(opening.path, read_only=opening.read_only, config=config)
    except duckdb.ConnectionException as err:
        if not config or _OTHER_SETTINGS not in str(err):
            raise
    return duckdb.connect(opening.path, read_only=opening.read_only)


def _words(said: str) -> str:
    """DuckDB's message; some errors come as JSON (``{"exception_message": …}``)."""
    if said.startswith("{"):
        try:
            return str(json.loads(said).get("exception_message", said))
        except (ValueError, AttributeError):
            return said
    return said


_READERS = (
    "close it there (readers should connect with read_only=True and let go between queries), "
    "then run again"
)
# A run keeps a shared ledger open from its first enrich model to its end, waits for batches
# included: runs sharing one take turns.
_SHARED_TURNS = (
    "runs that share a ledger take turns: run them one after the other (a run that does not "
    "wait for its batches holds the ledger briefly; a later run collects them)"
)


def _open_error(
    opening: Opening, err: duckdb.Error, target: str, advice: str = ""
) -> ExecutionError:
    said = _words(str(err).strip())
    if "Could not set lock" in said:
        holder = said.split("Conflicting lock is held in", 1)[-1].split(". See", 1)[0].strip()
        holder = holder.split(")", 1)[0] + ")" if "(PID" in holder else holder
        return ExecutionError(
            f"{target} is held open by another process ({holder}) and stayed so for "
            f"{opening.wait_seconds:.0f} s: {advice or _READERS}"
        )
    if "Unique file handle conflict" in said:
        return ExecutionError(
            f"{target} is open on another connection of this process: close that connection "
            "first (one process keeps a DuckDB file open once), then run again"
        )
    if opening.read_only and not Path(target).exists():
        return ExecutionError(f"{target} does not exist yet: build the project with enrich run")
    return ExecutionError(f"cannot open the DuckDB database {target}: {said}")


def sweep_scratch(folder: Path) -> None:
    """Delete scratch files left by runs that were killed: those no process holds open."""
    for path in folder.glob("scratch-*.duckdb"):
        try:
            duckdb.connect(str(path)).close()
        except duckdb.Error:
            continue  # held by a run in progress (or not a database: leave it be)
        for leftover in (path, path.with_name(path.name + ".wal")):
            leftover.unlink(missing_ok=True)
