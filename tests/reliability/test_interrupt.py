"""Ctrl-C on a run waiting for its batches stops it at once (exit 130), sends nothing again,
and leaves its batches for the next run to collect."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from enrich.warehouse.db import Database

from .test_crash import KEY, _project, api_env, serve_local


def _lines(stream: object) -> queue.Queue[str]:
    """The lines a process writes, as they come (read in a thread: no blocking the test)."""
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:  # type: ignore[attr-defined]
            found.put(line)

    threading.Thread(target=read, daemon=True).start()
    return found


def test_ctrl_c_while_waiting_stops_at_once_and_the_next_run_sends_nothing(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    _project(project, rows=6, max_lines=50)
    with serve_local(tmp_path / "server", "--realistic") as base_url:  # minutes per batch
        env = api_env(base_url)
        with subprocess.Popen(
            [sys.executable, "-m", "enrich", "run", "--project-dir", str(project)],
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        ) as run:
            said = _lines(run.stderr)
            while "submitted" not in (line := said.get(timeout=60)):
                assert run.poll() is None, line
            run.send_signal(signal.SIGINT)
            assert run.wait(timeout=20) == 130
        rest = "".join(said.queue)
        assert "interrupted" in rest and "Traceback" not in rest and KEY not in rest

        again = subprocess.run(
            [sys.executable, "-m", "enrich", "run", "--no-wait", "--project-dir", str(project)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode == 0, again.stderr
        assert "0 sent" in again.stdout, again.stdout
    db = Database.connect(project / "warehouse.duckdb")
    try:
        assert db.fetchall("SELECT count(*) FROM _enrich.batches") == [(1,)]
    finally:
        db.close()
