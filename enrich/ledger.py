"""Run state kept in the project's own DuckDB file, in schema ``_enrich``.

The schema changes only through :data:`MIGRATIONS`, an ordered list of named steps; each is applied
once and recorded in ``_enrich.migrations``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from .db import Database

Migration = tuple[str, Callable[[Database], None]]


def _create_schema(db: Database) -> None:
    db.execute("CREATE SCHEMA IF NOT EXISTS _enrich")
    db.execute(
        "CREATE TABLE IF NOT EXISTS _enrich.migrations"
        " (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)"
    )


def _create_seeds(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE _enrich.seeds (
            name VARCHAR PRIMARY KEY,  -- the seed's table
            content_hash VARCHAR NOT NULL,  -- sha256 of the CSV bytes and its load settings
            rows BIGINT,
            loaded_at TIMESTAMP
        )
        """
    )


MIGRATIONS: tuple[Migration, ...] = (
    ("m001_create_schema", _create_schema),
    ("m002_seeds", _create_seeds),
)


def migrate(db: Database) -> list[str]:
    """Apply the migrations this database has not had yet; return their names."""
    _create_schema(db)
    applied = {row[0] for row in db.fetchall("SELECT name FROM _enrich.migrations")}
    done: list[str] = []
    for name, step in MIGRATIONS:
        if name in applied:
            continue
        with db.transaction():
            step(db)
            db.execute("INSERT INTO _enrich.migrations VALUES (?, ?)", [name, datetime.now()])
        done.append(name)
    return done


def seed_hash(db: Database, name: str) -> str | None:
    """The content hash a seed was last loaded with, if it was."""
    row = db.fetchone("SELECT content_hash FROM _enrich.seeds WHERE name = ?", [name])
    return None if row is None else str(row[0])


def record_seed(db: Database, name: str, content_hash: str, rows: int, now: datetime) -> None:
    """Remember that seed `name` was loaded from content `content_hash`."""
    db.execute(
        "INSERT OR REPLACE INTO _enrich.seeds VALUES (?, ?, ?, ?)", [name, content_hash, rows, now]
    )
