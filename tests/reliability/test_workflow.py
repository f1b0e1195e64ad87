"""The README's path for a new user, with processes as they would run them: the offline demo,
then the same project against an API (``enrich serve-local`` in its own process, standing in for
the real one), then daily reruns. Counted on the wire and in the server's own record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.enrich.conftest import copy_example
from tests.wire import wire_proxy

from .test_crash import KEY, api_env, serve_local

EXAMPLE_REQUESTS = 1000 + 305  # the IMDB top 1000, the distinct furniture products


def _enrich(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "enrich", *args, "--project-dir", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert KEY not in done.stdout + done.stderr
    return done


def test_the_offline_demo_then_an_api_sends_everything_once_and_a_rerun_nothing(
    tmp_path: Path,
) -> None:
    root = copy_example(tmp_path)
    offline = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    demo = _enrich(root, offline, "run", "--offline")
    assert demo.returncode == 0, demo.stderr
    data = tmp_path / "server"
    with serve_local(data, "--time-scale", "100000") as base_url, wire_proxy(base_url) as wire:
        first = _enrich(root, api_env(wire.base_url), "run")
        assert first.returncode == 0, first.stderr
        sent = wire.sent_for_execution()
        assert len(sent) == EXAMPLE_REQUESTS and max(sent.values()) == 1
        executed = Counter(
            json.loads(line)["custom_id"]
            for line in (data / "executions.jsonl").read_text().splitlines()
        )
        assert len(executed) == EXAMPLE_REQUESTS and max(executed.values()) == 1
        uploads, creates = wire.uploads(), wire.batch_creates()

        again = _enrich(root, api_env(wire.base_url), "run")
        assert again.returncode == 0, again.stderr
        daily = _enrich(root, api_env(wire.base_url), "run")
        assert wire.uploads() == uploads and wire.batch_creates() == creates
    assert " 0 sent" in again.stdout and "1000 cached" in again.stdout, again.stdout
    # Settled by the run before, in another process: nothing is planned again. The first rerun
    # plans the movies once more, since the furniture's answers reached the ledger after them.
    assert "nothing changed" in again.stdout
    settled = [line for line in daily.stdout.splitlines() if "nothing changed" in line]
    assert len(settled) == 2, daily.stdout
