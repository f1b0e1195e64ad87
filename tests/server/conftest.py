"""A local Batch API server on a real socket, a manual clock, and the real SDK in strict mode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from enrich.server import ManualClock, ServerConfig, serve_in_thread
from enrich.server.serve import Running

API_KEY = "sk-test-local"


@dataclass
class Harness:
    """What a server test needs: the client, the clock, the engine and a scratch folder."""

    client: OpenAI
    clock: ManualClock
    engine: Any
    folder: Path
    base_url: str

    def upload(self, lines: list[Any], name: str = "tasks.jsonl") -> str:
        path = self.folder / name
        path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
        with path.open("rb") as handle:
            return self.client.files.create(file=handle, purpose="batch").id

    def submit(
        self, lines: list[Any], endpoint: str = "/v1/chat/completions", **kwargs: Any
    ) -> Any:
        file_id = self.upload(lines)
        return self.client.batches.create(
            input_file_id=file_id,
            endpoint=endpoint,  # type: ignore[arg-type]  # tests send bad endpoints too
            completion_window="24h",
            **kwargs,
        )

    def settle(self, batch_id: str, seconds: float = 5.0, steps: int = 20) -> Any:
        for _ in range(steps):
            batch = self.client.batches.retrieve(batch_id)
            if batch.status in ("completed", "failed", "expired", "cancelled"):
                return batch
            self.clock.advance(seconds)
        return self.client.batches.retrieve(batch_id)

    def lines_of(self, file_id: str | None) -> list[dict[str, Any]]:
        if not file_id:
            return []
        return [json.loads(x) for x in self.client.files.content(file_id).text.splitlines()]


def batch_line(custom_id: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """A batch input line."""
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def chat_line(i: int, model: str = "gpt-4o-mini", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": f"task-{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": model,
            "messages": [{"role": "user", "content": f"Say something about item {i}."}],
            **body,
        },
    }


def make_harness(
    tmp_path: Path, data_dir: Path | None = None, clock: ManualClock | None = None, **config: Any
) -> tuple[AbstractContextManager[Running], ManualClock]:
    clock = clock or ManualClock()
    settings = ServerConfig(data_dir=data_dir or tmp_path / "server", api_key=API_KEY, **config)
    return serve_in_thread(settings, clock=clock, tick_every=None), clock


@pytest.fixture
def harness(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    options = getattr(request, "param", {})
    context, clock = make_harness(tmp_path, **options)
    # Close the client's sockets before the server stops, not whenever garbage collection runs.
    with (
        context as running,
        OpenAI(
            base_url=running.base_url,
            api_key=API_KEY,
            max_retries=0,
            _strict_response_validation=True,
        ) as client,
    ):
        yield Harness(client, clock, running.engine, tmp_path, running.base_url)
