"""The wire proxy counts what the real SDK sends, and passes the server's answers and faults on."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from enrich.server import ManualClock, ServerConfig, serve_in_thread

from ..wire import Call, UnseenFile, Wire, wire_proxy
from .conftest import API_KEY, chat_line

IDS = ["task-0", "task-1", "task-2"]


@dataclass
class Rig:
    """The server, the proxy in front of it, and an SDK client for each (no retries)."""

    wire: Wire
    engine: Any
    clock: ManualClock
    proxied: OpenAI
    direct: OpenAI
    folder: Path
    opened: list[OpenAI] = field(default_factory=list)

    def client(self, **options: Any) -> OpenAI:
        """Another SDK client through the proxy, closed when the test ends."""
        defaults: dict[str, Any] = {"api_key": API_KEY, "_strict_response_validation": True}
        client = OpenAI(base_url=self.wire.base_url, **(defaults | options))
        self.opened.append(client)
        return client

    def upload(self, client: OpenAI, lines: int = 3, name: str = "tasks.jsonl") -> str:
        path = self.folder / name
        path.write_text("".join(json.dumps(chat_line(i)) + "\n" for i in range(lines)))
        with path.open("rb") as handle:
            return client.files.create(file=handle, purpose="batch").id

    def create(self, client: OpenAI, file_id: str) -> Any:
        return client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )

    def batch_ids(self) -> list[str]:
        return [b["id"] for b in self.engine.list_batches(100, None)["data"]]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = ManualClock()
    config = ServerConfig(data_dir=tmp_path / "server", api_key=API_KEY)
    with (
        serve_in_thread(config, clock=clock, tick_every=None) as server,
        wire_proxy(server.base_url) as wire,
    ):
        proxied, direct = (
            OpenAI(base_url=url, api_key=API_KEY, max_retries=0, _strict_response_validation=True)
            for url in (wire.base_url, server.base_url)
        )
        rig = Rig(wire, server.engine, clock, proxied, direct, tmp_path, [proxied, direct])
        try:
            yield rig
        finally:
            # Close sockets before the servers stop, not whenever garbage collection runs.
            for client in rig.opened:
                client.close()


def test_proxy_base_url_keeps_the_api_path(rig: Rig) -> None:
    assert rig.wire.base_url.startswith("http://127.0.0.1:")
    assert rig.wire.base_url.endswith("/v1")


def test_upload_and_create_are_counted_once(rig: Rig) -> None:
    file_id = rig.upload(rig.proxied)
    batch = rig.create(rig.proxied, file_id)
    assert rig.wire.uploads() == 1 and rig.wire.batch_creates() == 1
    assert rig.wire.sent_for_execution() == Counter(dict.fromkeys(IDS, 1))
    assert rig.wire.calls() == [Call("POST", "/v1/files", 200), Call("POST", "/v1/batches", 200)]
    assert rig.batch_ids() == [batch.id]


def test_answers_pass_through_unchanged(rig: Rig) -> None:
    file_id = rig.upload(rig.proxied)
    batch = rig.create(rig.proxied, file_id)
    rig.clock.advance(60)
    through = rig.proxied.batches.retrieve(batch.id)
    assert through.status == "completed"
    assert through == rig.direct.batches.retrieve(batch.id)
    output = through.output_file_id
    assert output is not None
    assert rig.proxied.files.content(output).read() == rig.direct.files.content(output).read()
    assert rig.wire.sent_for_execution() == Counter(dict.fromkeys(IDS, 1))  # reads don't count


def test_errors_and_authorization_pass_through(rig: Rig) -> None:
    with pytest.raises(openai.NotFoundError, match="No batch found"):
        rig.proxied.batches.retrieve("batch_missing")
    stranger = rig.client(api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.batches.list()
    assert [c.status for c in rig.wire.calls()] == [404, 401]


def test_sdk_retry_after_a_lost_create_is_seen_on_the_wire(rig: Rig) -> None:
    file_id = rig.upload(rig.proxied)
    rig.engine.set_faults(drop_after_create=1)
    batch = rig.create(rig.client(max_retries=2), file_id)
    assert rig.wire.batch_creates() == 2
    assert [c.status for c in rig.wire.calls()] == [200, None, 200]
    sent = rig.wire.sent_for_execution()
    assert sent == Counter(dict.fromkeys(IDS, 2))
    assert len(rig.batch_ids()) == sent["task-0"] and batch.id in rig.batch_ids()


def test_dropped_connection_reaches_the_client_as_a_drop(rig: Rig) -> None:
    file_id = rig.upload(rig.proxied)
    rig.engine.set_faults(drop_after_create=1)
    with pytest.raises(openai.APIConnectionError):
        rig.create(rig.proxied, file_id)
    assert rig.wire.calls()[-1] == Call("POST", "/v1/batches", None)
    assert rig.wire.sent_for_execution() == Counter(dict.fromkeys(IDS, 1))


def test_lost_upload_answer_is_matched_through_a_later_files_list(rig: Rig) -> None:
    rig.engine.set_faults(drop_after_create=1, drop_after_create_status=502)
    with pytest.raises(openai.InternalServerError):
        rig.upload(rig.proxied)
    [stored] = rig.proxied.files.list().data  # how a client finds the file it cannot be sure of
    rig.create(rig.proxied, stored.id)
    assert rig.wire.uploads() == 1
    assert rig.wire.sent_for_execution() == Counter(dict.fromkeys(IDS, 1))


def test_create_naming_a_file_uploaded_elsewhere_cannot_be_counted(rig: Rig) -> None:
    file_id = rig.upload(rig.direct)
    rig.create(rig.proxied, file_id)
    assert rig.wire.uploads() == 0 and rig.wire.batch_creates() == 1
    with pytest.raises(UnseenFile, match=file_id):
        rig.wire.sent_for_execution()


def test_sync_requests_count_under_the_body_hash(rig: Rig) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
    for _ in range(2):
        rig.proxied.chat.completions.create(model="gpt-4o-mini", messages=messages)
    [(key, count)] = rig.wire.sent_for_execution().items()
    hashes = {e["body_sha256"] for e in rig.engine.requests_received()}
    assert count == 2 and hashes == {key.removeprefix("sync:")}


def test_calls_from_many_threads_are_all_recorded(rig: Rig) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        names = [f"part-{i}.jsonl" for i in range(8)]
        ids = list(pool.map(lambda name: rig.upload(rig.client(max_retries=0), 1, name), names))
    assert rig.wire.uploads() == 8 and len(set(ids)) == 8
    assert rig.wire.calls() == [Call("POST", "/v1/files", 200)] * 8
