"""Input files that fail validation: an error per bad line, with OpenAI's codes and line numbers."""

from __future__ import annotations

from typing import Any

import pytest

from enrich.server import Limits, Timing

from .conftest import Harness, chat_line


def _without(key: str) -> dict[str, Any]:
    line = chat_line(1)
    del line[key]
    return line


@pytest.mark.parametrize(
    ("bad", "code", "param"),
    [
        ("{not json", "invalid_json_line", None),
        (_without("custom_id"), "missing_required_parameter", "custom_id"),
        (_without("body"), "missing_required_parameter", "body"),
        (chat_line(1) | {"url": "/v1/embeddings"}, "invalid_url", "url"),
        (chat_line(1, stream=True), "streaming_unsupported", "body.stream"),
        (chat_line(0), "duplicate_custom_id", "custom_id"),
        (chat_line(1, model="gpt-4o"), "mismatched_model", "body.model"),
        (
            {**chat_line(1), "body": {"messages": [{"role": "user", "content": "x"}]}},
            "invalid_request",
            "body.model",
        ),
    ],
)
def test_a_bad_line_fails_the_batch_naming_its_line(
    harness: Harness, bad: str | dict[str, Any], code: str, param: str | None
) -> None:
    batch = harness.submit([chat_line(0), bad, chat_line(2)])
    batch = harness.settle(batch.id)
    assert batch.status == "failed" and batch.failed_at is not None
    assert (
        batch.in_progress_at is None
        and batch.output_file_id is None
        and batch.error_file_id is None
    )
    [error] = batch.errors.data
    assert (error.code, error.line, error.param) == (code, 2, param)


def test_every_bad_line_is_reported(harness: Harness) -> None:
    batch = harness.settle(
        harness.submit([chat_line(0), "nope", chat_line(2), "[]", chat_line(2)]).id
    )
    assert [(e.code, e.line) for e in batch.errors.data] == [
        ("invalid_json_line", 2),
        ("invalid_json_line", 4),
        ("duplicate_custom_id", 5),
    ]


@pytest.mark.parametrize(
    "harness", [{"limits": Limits(models=("gpt-4o-mini",), max_lines=3)}], indirect=True
)
def test_unknown_model_and_too_many_lines(harness: Harness) -> None:
    batch = harness.settle(harness.submit([chat_line(0, model="gpt-nope")]).id)
    assert [(e.code, e.param) for e in batch.errors.data] == [("model_not_found", "body.model")]
    batch = harness.settle(harness.submit([chat_line(i) for i in range(4)]).id)
    assert [e.code for e in batch.errors.data] == ["too_many_tasks"]


def test_empty_and_missing_files(harness: Harness) -> None:
    batch = harness.settle(harness.submit([]).id)
    assert [e.code for e in batch.errors.data] == ["empty_file"]
    file_id = harness.upload([chat_line(1)])
    harness.client.files.delete(file_id)
    batch = harness.client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = harness.settle(batch.id)
    assert [(e.code, e.line) for e in batch.errors.data] == [("invalid_request", None)]


@pytest.mark.parametrize(
    "harness",
    [{"limits": Limits(enqueued_token_limit=100), "timing": Timing(per_line=10.0)}],
    indirect=True,
)
def test_enqueued_token_budget(harness: Harness) -> None:
    first = harness.submit([chat_line(i) for i in range(5)])  # about 60 tokens
    harness.clock.advance(0.6)
    assert harness.client.batches.retrieve(first.id).status == "in_progress"
    second = harness.settle(harness.submit([chat_line(i) for i in range(5)]).id, seconds=1, steps=3)
    assert second.status == "failed"
    [error] = second.errors.data
    assert (error.code, error.line, error.param) == ("token_limit_exceeded", None, None)
    assert "Limit: 100 enqueued tokens" in error.message
