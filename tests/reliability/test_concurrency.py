"""Two runs on one project: the second stops with a clear message; nothing is sent twice. A
process that holds the database file for good is waited for, then named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .test_crash import KEY, Stack, _stack


def _enrich_run(stack: Stack) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "enrich", "run", "--project-dir", str(stack.project)],
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_run_while_another_holds_the_database_stops_and_says_why(tmp_path: Path) -> None:
    for stack in _stack(tmp_path, rows=6, max_lines=50):
        assert stack.run() == 0
        settings = stack.project / "pyproject.toml"
        text = settings.read_text().replace(
            "[tool.enrich]\n", "[tool.enrich]\ndatabase_wait_seconds = 1\n"
        )
        settings.write_text(text)
        database = stack.project / "warehouse.duckdb"
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import duckdb, sys; c = duckdb.connect({str(database)!r}); "
                "print('held', flush=True); sys.stdin.read()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            second = _enrich_run(stack)
            out, err = second.communicate(timeout=60)
        finally:
            holder.communicate(input="", timeout=10)
        assert second.returncode == 1
        assert "is held open by another process" in err and f"PID {holder.pid}" in err
        assert KEY not in out + err


def test_two_runs_at_once_never_send_a_request_twice(tmp_path: Path) -> None:
    for stack in _stack(tmp_path, rows=40, max_lines=10):
        first, second = _enrich_run(stack), _enrich_run(stack)
        results = [p.communicate(timeout=120) for p in (first, second)]
        codes = sorted(p.returncode for p in (first, second))
        assert codes in ([0, 0], [0, 1])
        if codes == [0, 1]:
            said = " | ".join(err for _, err in results)
            assert "is in use by another enrich run" in said, said
        assert stack.run() == 0
        executed = stack.executed()
        assert len(executed) == 40 and max(executed.values()) == 1
        assert stack.query("SELECT count(*) FROM note_summaries") == [(40,)]
