"""Enrich models run through the real runner, the real SDK (strict) and a local server over HTTP.

Time is a ManualClock shared by the server and the run: the run's sleep advances it, so batches
move exactly as far as the run waited and no test sleeps on the wall clock.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from enrich.batch.client import ApiConfig
from enrich.batch.options import EnrichEvent, EnrichOptions
from enrich.project import runner
from enrich.project.run_results import NodeResult, RunResult
from enrich.server import ManualClock, Running, ServerConfig, serve_in_thread
from enrich.warehouse.db import Database

from ..wire import Wire, wire_proxy

API_KEY = "sk-test-enrich-0123456789abcdef"
REPO = Path(__file__).resolve().parents[2]

NOTES = {
    "pyproject.toml": """
        [tool.enrich]
        database = "warehouse.duckdb"

        [tool.enrich.defaults]
        model = "gpt-4o-mini"
    """,
    "seeds/notes.csv": """
        id,body,topic
        1,The cat sat on the mat.,pets
        2,Rain is expected tomorrow.,weather
        3,Stocks rallied at the close.,markets
        4,The dog chased the ball.,pets
        5,The cat sat on the mat.,pets
    """,
    "models/note_labels.sql": """
        {{ config(materialized='enrich', unique_key='id', system_prompt='Label the note.',
                  output={'label': ['pets', 'weather', 'markets', 'other'], 'score': 'DOUBLE'}) }}
        select id, body as prompt from {{ ref('notes') }}
    """,
}


@dataclass
class Env:
    """A project folder, a local server and a manual clock, and helpers to run and inspect.

    With `wire`, enrich reaches the server through a logging proxy that counts, independently
    of enrich and of the server, what crossed HTTP."""

    root: Path
    server: Running
    clock: ManualClock
    events: list[EnrichEvent]
    wire: Wire | None = None

    @property
    def base_url(self) -> str:
        return self.wire.base_url if self.wire else self.server.base_url

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def options(self, **changes: Any) -> EnrichOptions:
        api = ApiConfig(self.base_url, API_KEY, max_retries=0, strict=True)
        values: dict[str, Any] = {
            "api": api,
            "sleep": self.clock.advance,
            "poll_seconds": (1.0, 30.0),
            "on_event": self.events.append,
        }
        return EnrichOptions(**(values | changes))

    def run(
        self,
        *,
        full_refresh: bool = False,
        select: tuple[str, ...] = (),
        threads: int = 1,
        **changes: Any,
    ) -> RunResult:
        return runner.run(
            self.root,
            options=self.options(**changes),
            clock=self.now,
            full_refresh=full_refresh,
            select=select,
            threads=threads,
        )

    def faults(self, **faults: Any) -> None:
        self.server.engine.set_faults(**faults)

    def received(self) -> list[dict[str, Any]]:
        """Every request the server ran, from its own record."""
        return self.server.engine.requests_received()

    def files_uploaded(self) -> int:
        return len(self.server.engine.list_files(None, "desc", 10_000, None)["data"])

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        db = Database.connect(self.root / "warehouse.duckdb")
        try:
            return db.fetchall(sql, params or [])
        finally:
            db.close()

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def node(result: RunResult, name: str) -> NodeResult:
    return next(r for r in result.results if r.name == name)


def submitted(result: RunResult, name: str) -> int:
    return int(node(result, name).extra["requests_submitted"])


def start_env(
    tmp_path: Path, files: dict[str, str], wire: bool = False, **server: Any
) -> Generator[Env, None, None]:
    root = tmp_path / "project"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    clock = ManualClock()
    config = ServerConfig(data_dir=tmp_path / "server", api_key=API_KEY, **server)
    with serve_in_thread(config, clock=clock, tick_every=None) as running:
        if not wire:
            yield Env(root, running, clock, [])
            return
        with wire_proxy(running.base_url) as proxy:
            yield Env(root, running, clock, [], proxy)


@pytest.fixture
def notes(tmp_path: Path) -> Iterator[Env]:
    """Five short notes (two identical) and a label model with an allowed-values field."""
    yield from start_env(tmp_path, NOTES)


def copy_example(tmp_path: Path) -> Path:
    """The repository's own example project, copied so tests can edit it."""
    root = tmp_path / "project"
    for folder in ("models", "seeds", "prompts"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "pyproject.toml").write_text('[tool.enrich]\ndatabase = "warehouse.duckdb"\n')
    return root


@pytest.fixture
def cookbook(tmp_path: Path) -> Iterator[Env]:
    """The two cookbook examples (IMDB categories, furniture captions) as the README runs them."""
    root = copy_example(tmp_path)
    files = {
        str(p.relative_to(root)): p.read_text(encoding="utf-8")
        for p in root.rglob("*")
        if p.is_file()
    }
    shutil.rmtree(root)
    yield from start_env(tmp_path, files)
