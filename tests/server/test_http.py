"""Responses against the OpenAPI excerpt; synchronous endpoints; forwarding; the real command."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx_client
import jsonschema  # type: ignore[import-untyped]
import openai
import pytest

import enrich.server
from enrich.server import Limits, ManualClock, ServerConfig, serve_in_thread

from .conftest import API_KEY, Harness, chat_line

# OpenAI's official schemas, as the package ships them (a subset of openai/openai-openapi).
SPEC = Path(enrich.server.__file__).parent / "openai-schemas.json"


def _validator(name: str) -> jsonschema.Validator:
    spec = json.loads(SPEC.read_text())
    root = {"components": spec["components"], "$ref": f"#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(root)


def test_batch_and_file_objects_match_the_openapi_excerpt(harness: Harness) -> None:
    batch_schema, file_schema = _validator("Batch"), _validator("OpenAIFile")
    batch = harness.submit([chat_line(0), chat_line(1)])
    file_id = batch.input_file_id
    seen = [harness.client.batches.with_raw_response.retrieve(batch.id).http_response.json()]
    for _ in range(3):
        harness.clock.advance(1)
        seen.append(
            harness.client.batches.with_raw_response.retrieve(batch.id).http_response.json()
        )
    assert seen[-1]["status"] == "completed"
    for document in seen:
        batch_schema.validate(_present(document))
    for fid in (file_id, seen[-1]["output_file_id"]):
        document = harness.client.files.with_raw_response.retrieve(fid).http_response.json()
        file_schema.validate(_present(document))
        assert {"id", "bytes", "created_at", "filename", "object", "purpose", "status"} <= set(
            document
        )


def _present(document: dict[str, Any]) -> dict[str, Any]:
    """The spec leaves `nullable` off fields its own example shows as null: null means absent."""
    return {key: value for key, value in document.items() if value is not None}


def test_sync_chat_answers_in_the_schema_asked_for(harness: Harness) -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["categories", "summary", "mood", "scores"],
        "properties": {
            "categories": {"type": "array", "items": {"type": "string"}},
            "summary": {"type": "string"},
            "mood": {"type": "string", "enum": ["dark", "light"]},
            "scores": {
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"],
                "additionalProperties": False,
            },
        },
    }
    answer = harness.client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "A heist in space."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "m", "strict": True, "schema": schema},
        },
    )
    content = answer.choices[0].message.content
    assert content is not None and answer.usage is not None
    jsonschema.validate(json.loads(content), schema)
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0


def test_sync_embeddings_are_deterministic_unit_vectors(harness: Harness) -> None:
    first = harness.client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float", dimensions=64
    )
    again = harness.client.embeddings.create(
        model="text-embedding-3-small", input="a", encoding_format="float", dimensions=64
    )
    vector = first.data[0].embedding
    assert len(vector) == 64 and abs(sum(v * v for v in vector) - 1) < 1e-9
    assert again.data[0].embedding == vector != first.data[1].embedding


def test_max_tokens_truncates_with_finish_reason_length(harness: Harness) -> None:
    answer = harness.client.chat.completions.create(
        model="gpt-4o-mini",
        max_tokens=3,
        messages=[{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}],
    )
    assert answer.choices[0].finish_reason == "length"


def test_oversized_json_body_is_refused(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path, api_key=API_KEY, limits=Limits(max_json_bytes=1000))
    with serve_in_thread(config, tick_every=None) as running:
        client = openai.OpenAI(base_url=running.base_url, api_key=API_KEY, max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x" * 2000}]
            )
        assert info.value.status_code == 413


def test_forward_responder_runs_lines_against_an_upstream_server(tmp_path: Path) -> None:
    upstream_config = ServerConfig(data_dir=tmp_path / "upstream", api_key="upstream-key")
    with serve_in_thread(upstream_config, tick_every=None) as upstream:
        config = ServerConfig(
            data_dir=tmp_path / "front",
            api_key=API_KEY,
            responder="forward",
            upstream=upstream.base_url,
            upstream_api_key="upstream-key",
        )
        clock = ManualClock()
        with serve_in_thread(config, clock=clock, tick_every=None) as front:
            client = openai.OpenAI(
                base_url=front.base_url,
                api_key=API_KEY,
                max_retries=0,
                _strict_response_validation=True,
            )
            batch = _submit(client, tmp_path, 3)
            clock.advance(5)
            batch = client.batches.retrieve(batch.id)
            assert batch.request_counts is not None
            assert batch.status == "completed" and batch.request_counts.completed == 3
            assert len(upstream.engine.requests_received()) == 3
            with pytest.raises(openai.BadRequestError, match="model"):
                client.chat.completions.create(
                    model="", messages=[{"role": "user", "content": "x"}]
                )


def _submit(client: openai.OpenAI, folder: Path, lines: int) -> Any:
    path = folder / "in.jsonl"
    path.write_text("".join(json.dumps(chat_line(i)) + "\n" for i in range(lines)))
    with path.open("rb") as handle:
        file_id = client.files.create(file=handle, purpose="batch").id
    return client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_local_command_serves_the_sdk(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "ENRICH_SERVER_API_KEY": "cli-key"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "enrich",
            "serve-local",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
            "--time-scale",
            "1000",
            "--fault",
            "fail_fraction=0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="cli-key", max_retries=0
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx_client.get(f"http://127.0.0.1:{port}/health")
                break
            except httpx_client.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        batch = _submit(client, tmp_path, 4)
        while batch.status not in ("completed", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)  # a separate process runs on its own (sped-up) clock
            batch = client.batches.retrieve(batch.id)
        assert (batch.status, batch.request_counts.failed) == ("completed", 2)
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=10)[0]
    assert f"http://127.0.0.1:{port}/v1" in output
    assert "cli-key" not in output
