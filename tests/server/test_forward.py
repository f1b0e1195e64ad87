"""The forward responder against an upstream that answers garbage: each such line fails alone with
a 502 naming what was wrong, the batch completes, nothing answers 500, nothing is sent twice."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, cast

import openai
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from enrich.server import ManualClock, ServerConfig, serve_in_thread

from .conftest import API_KEY, batch_line

CHAT: Final = "/v1/chat/completions"


def _completion(usage: object) -> bytes:
    body = {
        "id": "chatcmpl-up",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi.", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }
    return json.dumps(body).encode()


def _usage(prompt: object) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": 2, "total_tokens": 7}


JSON = "application/json"
# What the upstream answers, by the prompt it is sent: (status, body, content type, why it fails).
ANSWERS = {
    "ok": (200, _completion(_usage(5)), JSON, None),
    "empty": (200, b"", JSON, "not JSON"),
    "empty-text": (200, b"", "text/plain", "it is a str"),
    "html": (200, b"<html><body>Bad gateway</body></html>", "text/html", "it is a str"),
    "html-said-json": (200, b"<html>oops</html>", JSON, "not JSON"),
    "list": (200, b"[1, 2]", JSON, "it is a list"),
    "null": (200, b"null", JSON, "it is null"),
    "other-object": (200, b'{"object": "list", "data": []}', JSON, "not 'chat.completion'"),
    "no-usage": (200, _completion(None), JSON, "no usage object"),
    "usage-text": (200, _completion(_usage("many")), JSON, "not a whole number"),
    "usage-decimal": (200, _completion(_usage(5.5)), JSON, "not a whole number"),
    "usage-negative": (200, _completion(_usage(-5)), JSON, "outside 0 to"),
    "usage-huge": (200, _completion(_usage(10**15)), JSON, "outside 0 to"),
    "usage-nan": (200, _completion(_usage(5)).replace(b": 5,", b": NaN,"), JSON, "NaN"),
}


Front = tuple[openai.OpenAI, ManualClock, Counter[str]]


@contextmanager
def garbage_upstream() -> Iterator[tuple[str, Counter[str]]]:
    """An OpenAI-compatible server on 127.0.0.1 answering each prompt as ANSWERS says; it counts
    the prompts it is sent."""
    seen: Counter[str] = Counter()

    async def chat(request: Request) -> Response:
        prompt = (await request.json())["messages"][0]["content"]
        seen[prompt] += 1
        status, body, kind, _ = ANSWERS[prompt]
        return Response(body, status_code=status, media_type=kind)

    app = Starlette(routes=[Route(CHAT, chat, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1", seen
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Front]:
    """The local server forwarding to the garbage upstream; its client; the upstream's counts."""
    with garbage_upstream() as (upstream, seen):
        config = ServerConfig(
            data_dir=tmp_path / "front", api_key=API_KEY, responder="forward", upstream=upstream
        )
        clock = ManualClock()
        with (
            serve_in_thread(config, clock=clock, tick_every=None) as running,
            openai.OpenAI(
                base_url=running.base_url,
                api_key=API_KEY,
                max_retries=0,
                _strict_response_validation=True,
            ) as client,
        ):
            yield client, clock, seen


def _ask(prompt: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}


def test_garbage_answers_fail_their_lines_and_the_batch_completes(
    front: Front, tmp_path: Path
) -> None:
    client, clock, seen = front
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(batch_line(p, CHAT, _ask(p))) + "\n" for p in ANSWERS))
    with path.open("rb") as handle:
        file_id = client.files.create(file=handle, purpose="batch").id
    batch = client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h")
    for _ in range(10):
        clock.advance(5)
        batch = client.batches.retrieve(batch.id)
        if batch.status == "completed":
            break
    assert batch.status == "completed"
    assert batch.request_counts is not None and batch.usage is not None
    assert batch.output_file_id is not None and batch.error_file_id is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, len(ANSWERS) - 1)
    assert batch.usage.input_tokens == 5
    [ok] = [json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()]
    assert ok["custom_id"] == "ok"
    errors = [json.loads(x) for x in client.files.content(batch.error_file_id).text.splitlines()]
    for entry in errors:
        assert entry["error"] is None and entry["response"]["status_code"] == 502
        error = entry["response"]["body"]["error"]
        assert error["code"] == "upstream_invalid_response"
        assert ANSWERS[entry["custom_id"]][3] in error["message"]
    assert sorted(e["custom_id"] for e in errors) == sorted(set(ANSWERS) - {"ok"})
    assert seen == Counter(dict.fromkeys(ANSWERS, 1))  # every line sent upstream exactly once


@pytest.mark.parametrize("prompt", [p for p in ANSWERS if p != "ok"])
def test_garbage_answer_to_a_synchronous_call_is_a_502(front: Front, prompt: str) -> None:
    client, _, seen = front
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(**_ask(prompt))
    assert raised.value.status_code == 502
    assert cast("dict[str, Any]", raised.value.body)["code"] == "upstream_invalid_response"
    assert seen[prompt] == 1
