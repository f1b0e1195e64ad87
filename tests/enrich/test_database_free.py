"""While a run waits on its batches the database file is free: ``enrich status``, a dry run and
any other process can open it; a second run is refused by enrich's own run lock."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from enrich.batch.session import LONG_WAIT_SECONDS
from enrich.errors import ExecutionError
from enrich.warehouse.db import Database

from .conftest import API_KEY, Env

READ = (
    "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
    "print(con.sql('SELECT status FROM _enrich.batches').fetchall())"
)


def _cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "enrich", *args, "--project-dir", str(env.root)],
        env={**os.environ, "OPENAI_BASE_URL": env.base_url, "OPENAI_API_KEY": API_KEY},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _while_waiting(env: Env, check: Callable[[], None]) -> Callable[[float], None]:
    """The run's sleep: the first time it waits long enough to let go of the file, `check` runs
    (in another process); then time moves on."""
    calls: list[float] = []

    def sleep(seconds: float) -> None:
        if not calls and seconds >= LONG_WAIT_SECONDS:
            calls.append(seconds)
            check()
        env.clock.advance(seconds)

    return sleep


def test_other_processes_read_the_database_while_a_run_waits(notes: Env) -> None:
    seen: dict[str, subprocess.CompletedProcess[str]] = {}

    def check() -> None:
        database = str(notes.root / "warehouse.duckdb")
        seen["reader"] = subprocess.run(
            [sys.executable, "-c", READ, database], capture_output=True, text=True, timeout=60
        )
        seen["status"] = _cli(notes, "status")

    result = notes.run(sleep=_while_waiting(notes, check), poll_seconds=(5.0, 30.0))
    assert [r.status for r in result.results] == ["success", "success"]
    assert seen["reader"].returncode == 0, seen["reader"].stderr
    assert "in_progress" in seen["reader"].stdout or "validating" in seen["reader"].stdout
    assert seen["status"].returncode == 0, seen["status"].stderr
    assert "note_labels" in seen["status"].stdout


def test_a_second_run_is_refused_while_one_waits_and_a_dry_run_is_not(notes: Env) -> None:
    seen: dict[str, subprocess.CompletedProcess[str]] = {}

    def check() -> None:
        seen["second"] = _cli(notes, "run")
        seen["dry"] = _cli(notes, "run", "--dry-run")

    result = notes.run(sleep=_while_waiting(notes, check), poll_seconds=(5.0, 30.0))
    assert [r.status for r in result.results] == ["success", "success"]
    second, dry = seen["second"], seen["dry"]
    assert second.returncode == 1
    assert "in use by another enrich run" in second.stderr and API_KEY not in second.stderr
    assert dry.returncode == 0, dry.stderr
    # The requests in flight are not to send again: the dry run plans nothing.
    assert "0 requests to send" in dry.stdout, dry.stdout
    assert len(notes.received()) == 4  # 5 notes, two identical: each request ran once


def test_the_run_leaves_no_scratch_file(notes: Env) -> None:
    notes.run()
    assert list((notes.root / "target" / "enrich").glob("scratch-*")) == []


def test_a_scratch_file_left_by_a_killed_run_is_swept(notes: Env) -> None:
    folder = notes.root / "target" / "enrich"
    folder.mkdir(parents=True)
    Database.connect(folder / "scratch-left.duckdb").close()
    notes.run()
    assert list(folder.glob("scratch-*")) == []


def _holder(path: Path, read_only: bool) -> subprocess.Popen[str]:
    """Another process that opens the database at `path` (made here) and holds it until its
    stdin closes."""
    Database.connect(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == '1'); "
            "print('held', flush=True); sys.stdin.read()",
            str(path),
            "1" if read_only else "0",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_opening_waits_for_a_reader_to_let_go(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    holder = _holder(path, read_only=True)
    pauses: list[float] = []

    def sleep(seconds: float) -> None:  # the reader finishes while we wait
        pauses.append(seconds)
        if holder.poll() is None:
            holder.communicate(input="", timeout=10)

    db = Database.connect(path, sleep=sleep)
    try:
        assert db.fetchone("SELECT 42") == (42,)
    finally:
        db.close()
    assert pauses == [0.05]


def test_a_reader_that_never_lets_go_is_named(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    holder = _holder(path, read_only=False)
    try:
        pauses: list[float] = []
        with pytest.raises(ExecutionError) as raised:
            Database.connect(path, wait_seconds=2.0, sleep=pauses.append)
        said = str(raised.value)
        assert "is held open by another process" in said and f"PID {holder.pid}" in said
        assert "read_only=True" in said and sum(pauses) >= 2.0
    finally:
        holder.communicate(input="", timeout=10)
