"""The engine while a batch runs: calls that do not read a batch's state do not wait for it."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from enrich.server import Engine, ManualClock, ServerConfig, Timing
from enrich.server.offline import respond as offline_respond
from enrich.server.replies import Reply

from .conftest import chat_line

# Generous: only reached when the engine waits for the running batch (a deadlock, before).
DEADLOCK_SECONDS = 30.0


def _file(engine: Engine, lines: list[dict[str, Any]]) -> str:
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    return str(engine.upload("in.jsonl", "batch", io.BytesIO(data), len(data), None)["id"])


def _create(engine: Engine, file_id: str) -> str:
    params = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    return str(engine.create_batch(params)["id"])


def test_uploads_creates_and_downloads_go_on_while_a_batch_runs(tmp_path: Path) -> None:
    running, done_meanwhile = threading.Event(), threading.Event()
    waits: list[bool] = []

    def respond(url: str, body: Mapping[str, Any], now: float) -> Reply:
        # The batch's lines run until the test has used the API beside them.
        running.set()
        waits.append(done_meanwhile.wait(DEADLOCK_SECONDS))
        return offline_respond(url, body, now)

    config = ServerConfig(data_dir=tmp_path, api_key="k", timing=Timing.instant())
    engine = Engine(config, ManualClock(), respond)
    try:
        first = _create(engine, _file(engine, [chat_line(0)]))
        ticking = threading.Thread(target=engine.tick)
        ticking.start()
        assert running.wait(DEADLOCK_SECONDS)
        second = _create(engine, _file(engine, [chat_line(1)]))
        engine.file_content(engine.get_file(_file(engine, [chat_line(2)]))["id"])
        assert engine.take_stall() == 0.0
        done_meanwhile.set()
        ticking.join()
        assert waits == [True]  # not timed out: nothing above waited for the running batch
        assert engine.get_batch(first)["status"] == "completed"
        assert engine.get_batch(second)["status"] == "completed"
    finally:
        done_meanwhile.set()
        engine.close()
