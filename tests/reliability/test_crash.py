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
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest

from enrich.warehouse.db import Database
from enrich.batch.pipeline import STEPS

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
            env=env, capture_output=True, text=True, timeout=120,
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
        '[tool.enrich]\ndatabase = "warehouse.duckdb"\n\n[tool.enrich.defaults]\nmodel = "gpt-4o-mini"\n\n'
        f"[tool.enrich.batch]\nmax_lines = {max_lines}\npoll_min_seconds = 0.05\npoll_max_seconds = 0.2\n"
    )
    body = "".join(f"{i},Note number {i} about item {i % 7}.\n" for i in range(1, rows + 1))
    (root / "seeds" / "notes.csv").write_text("id,body\n" + body)
    (root / "models" / "note_summaries.sql").write_text(
        "{{ config(materialized='enrich', unique_key='id', output={'summary': 'VARCHAR'}) }}\n"
        "select id, body as prompt from {{ ref('notes') }}\n"
    )


def _stack(tmp_path: Path, rows: int, max_lines: int) -> Iterator[Stack]:
    port, data = _free_port(), tmp_path / "server"
    server = subprocess.Popen(
        [sys.executable, "-m", "enrich", "serve-local", "--port", str(port), "--data-dir", str(data),
         "--api-key", KEY, "--time-scale", "200"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
        project = tmp_path / "project"
        _project(project, rows, max_lines)
        env = {**os.environ, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "OPENAI_API_KEY": KEY}
        yield Stack(project, data, env)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)


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


def test_sigkill_at_random_moments_until_done(tmp_path: Path) -> None:
    draw = random.Random(20261124)
    for stack in _stack(tmp_path, rows=60, max_lines=7):
        kills = 0
        for _ in range(25):
            point = f"{draw.choice(STEPS)}:{draw.randint(1, 6)}"
            code = stack.run(crash_at=point)
            if code == 0:
                break
            assert code == -signal.SIGKILL
            kills += 1
        else:
            pytest.fail("enrich run never finished")
        assert kills >= 3
        _assert_whole(stack, rows=60, requests=60)
