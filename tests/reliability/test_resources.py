"""A full disk and DuckDB out of memory: one line that names the setting to change, no
traceback, no partial file left behind, and the next run finishes the job paying nothing twice.

A full disk is a file size limit (``RLIMIT_FSIZE``) on the enrich process: its writes past the
limit fail as writes to a full disk do, while the server, another process, is unaffected.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .test_crash import KEY, Stack, _assert_whole, _stack

# Runs the CLI with writes capped at argv[1] bytes per file (SIGXFSZ ignored: writes fail).
LIMITED = (
    "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
    "from enrich.cli import main; sys.exit(main(sys.argv[2:]))"
)


def _run_limited(stack: Stack, max_file_bytes: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            LIMITED,
            str(max_file_bytes),
            "run",
            "--project-dir",
            str(stack.project),
        ],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _leftovers(stack: Stack) -> list[str]:
    folder = stack.project / "target" / "enrich"
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.parametrize("max_file_bytes", [400_000, 1_500_000])
def test_a_full_disk_is_one_line_naming_what_to_change_and_the_next_run_finishes(
    tmp_path: Path, max_file_bytes: int
) -> None:
    for stack in _stack(tmp_path, rows=3000, max_lines=1000):
        done = _run_limited(stack, max_file_bytes)
        print(done.stdout, done.stderr)
        assert done.returncode == 1
        errors = [line for line in done.stderr.splitlines() if "no room left" in line]
        # The model's write, and the final write of the database when that too found no room.
        assert 1 <= len(errors) <= 2 and "Traceback" not in done.stderr, done.stderr
        assert "[tool.enrich] database / target_dir" in errors[0] and KEY not in done.stderr
        assert [n for n in _leftovers(stack) if n.endswith((".part", ".tmp"))] == []
        assert stack.run() == 0
        _assert_whole(stack, rows=3000, requests=3000)


def test_out_of_memory_is_one_line_naming_memory_limit(tmp_path: Path) -> None:
    for stack in _stack(tmp_path, rows=5, max_lines=10):
        settings = stack.project / "pyproject.toml"
        text = settings.read_text().replace(
            "[tool.enrich]\n", '[tool.enrich]\nmemory_limit = "20MB"\n'
        )
        settings.write_text(text)
        # A prompt that needs far more than 20 MB at once: DuckDB cannot spill a string.
        (stack.project / "models" / "note_summaries.sql").write_text(
            "{{ config(materialized='enrich', unique_key='id', output={'summary': 'VARCHAR'}) }}\n"
            "select id, body || (select string_agg(repeat('x', 1000) || i::VARCHAR, ',')"
            " from range(100000) r(i)) as prompt from {{ ref('notes') }}\n"
        )
        done = _run_limited(stack, 10**12)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        said = done.stdout + done.stderr
        errors = [line for line in said.splitlines() if "ran out of memory" in line]
        assert len(errors) == 1, done.stdout + done.stderr
        assert (
            "memory_limit is 20MB" in errors[0] and "raise [tool.enrich] memory_limit" in errors[0]
        )
        assert stack.executed() == {}
