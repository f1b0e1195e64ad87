"""Every lifecycle branch, through the real SDK over HTTP, with the clock moved by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import openai
import pytest

from enrich.server import Timing

from .conftest import API_KEY, Harness, chat_line, make_harness

SLOW = {
    "timing": Timing(validating=2.0, per_line=1.0, finalizing=3.0, cancelling=2.0, window=100.0)
}


@pytest.mark.parametrize("harness", [SLOW], indirect=True)
def test_states_timestamps_and_counts_move_with_the_clock(harness: Harness) -> None:
    batch = harness.submit([chat_line(i) for i in range(4)], metadata={"project": "p"})
    created = batch.created_at
    assert (batch.status, batch.request_counts.total, batch.expires_at) == (
        "validating",
        0,
        created + 100,
    )
    harness.clock.advance(2)
    batch = harness.client.batches.retrieve(batch.id)
    assert batch.request_counts is not None
    assert (batch.status, batch.in_progress_at, batch.request_counts.total) == (
        "in_progress",
        created + 2,
        4,
    )
    harness.clock.advance(2)
    counts = harness.client.batches.retrieve(batch.id).request_counts
    assert counts is not None and counts.completed == 2
    harness.clock.advance(2)
    batch = harness.client.batches.retrieve(batch.id)
    assert (batch.status, batch.finalizing_at, batch.output_file_id) == (
        "finalizing",
        created + 6,
        None,
    )
    harness.clock.advance(3)
    batch = harness.client.batches.retrieve(batch.id)
    assert (batch.status, batch.completed_at) == ("completed", created + 9)
    assert batch.request_counts is not None and batch.usage is not None
    assert batch.output_file_id is not None
    assert batch.request_counts.completed == 4 and batch.error_file_id is None
    assert batch.metadata == {"project": "p"} and batch.usage.total_tokens > 0
    output = harness.client.files.retrieve(batch.output_file_id)
    assert output.purpose == "batch_output"


@pytest.mark.parametrize("harness", [SLOW], indirect=True)
def test_expiry_keeps_finished_lines_and_marks_the_rest(harness: Harness) -> None:
    batch = harness.submit([chat_line(i) for i in range(200)])
    harness.clock.advance(150)
    batch = harness.client.batches.retrieve(batch.id)
    assert batch.status == "expired" and batch.expired_at == batch.expires_at
    done, rest = harness.lines_of(batch.output_file_id), harness.lines_of(batch.error_file_id)
    assert len(done) == 98 and len(rest) == 102
    assert {r["error"]["code"] for r in rest} == {"batch_expired"}
    assert all(r["response"] is None for r in rest)
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (98, 0)


@pytest.mark.parametrize("harness", [SLOW], indirect=True)
def test_cancel_gives_partial_results_and_409_when_finished(harness: Harness) -> None:
    batch = harness.submit([chat_line(i) for i in range(10)])
    harness.clock.advance(5)  # three lines done
    cancelling = harness.client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    assert harness.client.batches.cancel(batch.id).status == "cancelling"  # allowed again
    harness.clock.advance(2)
    batch = harness.client.batches.retrieve(batch.id)
    assert batch.status == "cancelled"
    assert len(harness.lines_of(batch.output_file_id)) == 3
    assert {r["error"]["code"] for r in harness.lines_of(batch.error_file_id)} == {
        "batch_cancelled"
    }
    done = harness.settle(harness.submit([chat_line(1)]).id)
    with pytest.raises(openai.ConflictError) as info:
        harness.client.batches.cancel(done.id)
    assert (
        cast("dict[str, Any]", info.value.body)["message"]
        == "Cannot cancel a batch with status 'completed'."
    )


def test_unknown_ids_are_404_with_the_envelope(harness: Harness) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        harness.client.batches.retrieve("batch_nope")
    assert info.value.body == {
        "message": "No batch found with id 'batch_nope'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.NotFoundError, match="No such File object: file-nope"):
        harness.client.files.retrieve("file-nope")


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"endpoint": "/v1/invalid/endpoint"}, "endpoint"),
        ({"completion_window": "48h"}, "completion_window"),
        ({"metadata": {"tags": ["a"]}}, "metadata.tags"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k"),
    ],
)
def test_create_rejects_bad_parameters_with_400(
    harness: Harness, params: dict[str, Any], param: str
) -> None:
    file_id = harness.upload([chat_line(1)])
    arguments = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    } | params
    with pytest.raises(openai.BadRequestError) as info:
        harness.client.batches.create(**arguments)
    assert cast("dict[str, Any]", info.value.body)["param"] == param
    assert harness.client.batches.list().data == []


def test_pagination_over_several_pages(harness: Harness) -> None:
    ids = [harness.submit([chat_line(i)]).id for i in range(5)]
    page = harness.client.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
    assert [b.id for b in harness.client.batches.list(limit=2)] == ids[::-1]  # auto-paginates
    files = harness.client.files.list(purpose="batch", limit=2, order="asc")
    assert len(files.data) == 2 and files.has_more
    assert len(list(harness.client.files.list(purpose="batch", limit=2))) == 5


def test_auth_is_required(harness: Harness) -> None:
    bad = openai.OpenAI(base_url=harness.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.batches.list()
    assert cast("dict[str, Any]", info.value.body)["code"] == "invalid_api_key"
    assert "wrong" not in str(info.value)


def test_file_rules_and_delete(harness: Harness) -> None:
    path = harness.folder / "tasks.csv"
    path.write_text("a,b\n")
    with path.open("rb") as handle, pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        harness.client.files.create(file=handle, purpose="batch")
    file_id = harness.upload([chat_line(1)])
    assert harness.client.files.delete(file_id).deleted
    with pytest.raises(openai.NotFoundError):
        harness.client.files.content(file_id)


def test_restarted_server_finishes_earlier_batches(tmp_path: Path) -> None:
    context, clock = make_harness(tmp_path)
    with context as running:
        client = openai.OpenAI(base_url=running.base_url, api_key=API_KEY, max_retries=0)
        path = tmp_path / "in.jsonl"
        path.write_text("\n".join(__import__("json").dumps(chat_line(i)) for i in range(3)))
        with path.open("rb") as handle:
            file_id = client.files.create(file=handle, purpose="batch").id
        batch_id = client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id
    clock.advance(60)
    context, _ = make_harness(tmp_path, clock=clock)
    with context as running:
        client = openai.OpenAI(
            base_url=running.base_url,
            api_key=API_KEY,
            max_retries=0,
            _strict_response_validation=True,
        )
        batch = client.batches.retrieve(batch_id)
        assert batch.request_counts is not None
        assert batch.status == "completed" and batch.request_counts.completed == 3
        assert len(running.engine.requests_received()) == 3
