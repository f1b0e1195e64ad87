"""SIGKILL ``enrich run`` (a real process) at every step against ``enrich serve-local`` (another
real process), then run again: every request reached the server exactly once and the table is whole.

Crash points are exact: ``ENRICH_CRASH_AT=STEP[:N]`` makes the CLI kill itself with SIGKILL the Nth
time a step completes. "Random moments" are a seeded draw of (step, N) over a run of many batches.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from enrich.batch.pipeline import STEPS
from enrich.warehouse.db import Database

KEY = "sk-crash-test-key"


@dataclass
class Stack:
    project: Path
    server_data: Path
    env: dict[str, str]

    def run(self, crash_at: str | None = None) -> int:
        env = dict(self.env)
        if crash_at:
            env["ENRICH_CRASH_AT"] = crash_at
        process = subprocess.run(
            [sys.executable, "-m", "enrich", "run", "--project-dir", str(self.project)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert KEY not in process.stdout + process.stderr
        return process.returncode

    def executed(self) -> Counter[str]:
        path = self.server_data / "executions.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return Counter(json.loads(line)["custom_id"] for line in lines if line.strip())

    def query(self, sql: str) -> list[tuple[object, ...]]:
        db = Database.connect(self.project / "warehouse.duckdb")
        try:
            return db.fetchall(sql)
        finally:
            db.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _project(root: Path, rows: int, max_lines: int) -> None:
    (root / "seeds").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "pyproject.toml").write_text(
        '[tool.enrich]\ndatabase = "warehouse.duckdb"\n\n'
        '[tool.enrich.defaults]\nmodel = "gpt-4o-mini"\n\n'
        f"[tool.enrich.batch]\nmax_lines = {max_lines}\n"
        "poll_min_seconds = 0.01\npoll_max_seconds = 0.05\n"
    )
    _write_notes(root, range(1, rows + 1))
    (root / "models" / "note_summaries.sql").write_text(
        "{{ config(materialized='enrich', unique_key='id', output={'summary': 'VARCHAR'}) }}\n"
        "select id, body as prompt from {{ ref('notes') }}\n"
    )


def code(i: int) -> str:
    """A word unique to note `i` (the offline responder answers with the words of its input)."""
    return "code" + "".join("abcdefghij"[int(d)] for d in str(i))


def _write_notes(root: Path, ids: range) -> None:
    body = "".join(f"{i},Note {code(i)} about item {i % 7}.\n" for i in ids)
    (root / "seeds" / "notes.csv").write_text("id,body\n" + body)


@contextmanager
def serve_local(data: Path, *args: str) -> Iterator[str]:
    """``enrich serve-local`` in its own process until the block ends; yields its base URL."""
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "enrich",
            "serve-local",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--api-key",
            KEY,
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # the server is another process: wait until it answers
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)


def api_env(base_url: str) -> dict[str, str]:
    """The environment of an enrich process that reaches the API at `base_url`."""
    return {**os.environ, "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": KEY}


def _stack(
    tmp_path: Path, rows: int, max_lines: int, faults: tuple[str, ...] = ()
) -> Iterator[Stack]:
    data = tmp_path / "server"
    fault_args = ["--fault", *faults] if faults else []
    with serve_local(data, "--time-scale", "2000", *fault_args) as base_url:
        project = tmp_path / "project"
        _project(project, rows, max_lines)
        yield Stack(project, data, api_env(base_url))


def _assert_whole(stack: Stack, rows: int, requests: int) -> None:
    executed = stack.executed()
    assert len(executed) == requests and max(executed.values()) == 1
    assert stack.query("SELECT count(*), count(summary) FROM note_summaries") == [(rows, rows)]
    assert stack.query(
        "SELECT count(*) FROM _enrich.requests WHERE status <> 'succeeded' OR answer IS NULL"
    ) == [(0,)]
    assert stack.query("SELECT count(*) FROM _enrich.batches WHERE collected_at IS NULL") == [(0,)]


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_then_rerun_sends_each_request_once(tmp_path: Path, step: str) -> None:
    for stack in _stack(tmp_path, rows=12, max_lines=5):
        assert stack.run(crash_at=step) == -signal.SIGKILL
        assert stack.run() == 0
        _assert_whole(stack, rows=12, requests=12)


FAULTS = (
    "fail_fraction=0.2",  # HTTP 500 lines: retried in the same run
    "lost_fraction=0.1",  # answered lines absent from both files: retried
    "expire_after_fraction=0.8",  # every batch expires with a fifth of it not run
    "malformed_output_line=true",
    "drop_after_create=-1",  # every upload and batch create acts, then its answer is lost
)


def test_100_random_sigkills_with_faults_never_run_a_request_beyond_its_attempts(
    tmp_path: Path,
) -> None:
    # Two projects, each with its own server, killed 50 times each at once: one per core.
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(_kill_50_times, [tmp_path / "a", tmp_path / "b"], [1, 2]))
    assert done == [True, True]


def _kill_50_times(folder: Path, seed: int) -> bool:
    draw = random.Random(f"20261203:{seed}")
    for stack in _stack(folder, rows=30, max_lines=4, faults=FAULTS):
        kills, rows, finished = 0, 30, 0
        while kills < 50:
            code_ = stack.run(crash_at=f"{draw.choice(STEPS)}:{draw.randint(1, 4)}")
            if code_ == 0:  # done: bring new rows, so later kills land mid-work again
                finished += 1
                rows += 10
                _write_notes(stack.project, range(1, rows + 1))
                continue
            assert code_ == -signal.SIGKILL
            kills += 1
        assert stack.run() == 0
        _assert_at_most_max_attempts(stack, rows)
        assert finished >= 2
    return True


def _assert_at_most_max_attempts(stack: Stack, rows: int) -> None:
    lines = (stack.server_data / "executions.jsonl").read_text().splitlines()
    runs = [json.loads(line) for line in lines if line.strip()]
    per_batch = Counter((r["batch_id"], r["custom_id"]) for r in runs)
    assert max(per_batch.values()) == 1  # at most once per attempt
    executed = Counter(r["custom_id"] for r in runs)
    attempts: dict[object, Any] = {
        h: n for h, n in stack.query("SELECT request_hash, attempts FROM _enrich.requests")
    }
    assert all(executed[h] <= attempts[h] <= 3 for h in executed), executed.most_common(3)
    # Every answer on its own row: the offline answer repeats the words of that row's note.
    assert stack.query("SELECT count(*), count(DISTINCT id) FROM note_summaries") == stack.query(
        "SELECT count(*), count(*) FROM note_summaries"
    )
    wrong = stack.query(
        "SELECT id, summary FROM note_summaries AS s JOIN notes AS n USING (id)"
        " WHERE NOT contains(s.summary, split_part(n.body, ' ', 2) || ' ')"
    )
    assert wrong == []
    assert stack.query("SELECT count(*) FROM note_summaries") != [(0,)]
    assert stack.query("SELECT count(*) FROM _enrich.batches WHERE collected_at IS NULL") == [(0,)]
    uploads = [json.loads(p.read_text()) for p in (stack.server_data / "files").glob("*.json")]
    assert [u["filename"] for u in uploads if u["purpose"] == "batch"] == []
