"""Every injected fault, as the table of field failures in the facts doc (§6) reads."""

from __future__ import annotations

import json
from typing import Any, cast

import openai
import pytest
from openai import OpenAI

from enrich.server import Faults

from .conftest import API_KEY, Harness, chat_line

N = 20


def _run(harness: Harness, faults: dict[str, Any], lines: int = N, **body: Any) -> Any:
    harness.engine.set_faults(**faults)
    batch = harness.submit([chat_line(i, **body) for i in range(lines)])
    return harness.settle(batch.id)


def test_fraction_of_lines_fail_with_http_errors(harness: Harness) -> None:
    batch = _run(harness, {"fail_fraction": 0.25, "fail_status": 500})
    errors = harness.lines_of(batch.error_file_id)
    assert len(errors) == 5 and len(harness.lines_of(batch.output_file_id)) == 15
    assert {e["response"]["status_code"] for e in errors} == {500}
    assert all(e["error"] is None and e["response"]["body"]["error"]["message"] for e in errors)
    assert (batch.request_counts.completed, batch.request_counts.failed) == (15, 5)


def test_all_failed_batch_completes_without_output_file(harness: Harness) -> None:
    batch = _run(harness, {"fail_fraction": 1.0, "fail_status": 400})
    assert batch.status == "completed" and batch.output_file_id is None
    assert len(harness.lines_of(batch.error_file_id)) == N


def test_expiry_after_a_fraction(harness: Harness) -> None:
    batch = _run(harness, {"expire_after_fraction": 0.4})
    assert batch.status == "expired"
    assert len(harness.lines_of(batch.output_file_id)) == 8
    expired = harness.lines_of(batch.error_file_id)
    assert len(expired) == 12 and {e["error"]["code"] for e in expired} == {"batch_expired"}


def test_token_limit_exceeded_after_create(harness: Harness) -> None:
    harness.engine.set_faults(token_limit_batches=1)
    created = harness.submit([chat_line(0)])
    assert created.status == "validating"
    assert harness.settle(created.id).errors.data[0].code == "token_limit_exceeded"
    assert harness.settle(harness.submit([chat_line(0)]).id).status == "completed"


def test_persistent_token_limit_fails_every_batch_until_switched_off(harness: Harness) -> None:
    harness.engine.set_faults(token_limit_batches=-1)
    for _ in range(3):
        batch = harness.settle(harness.submit([chat_line(0)]).id)
        assert batch.status == "failed" and batch.errors.data[0].code == "token_limit_exceeded"
    assert harness.engine.faults.token_limit_batches == -1
    harness.engine.set_faults(token_limit_batches=0)
    assert harness.settle(harness.submit([chat_line(0)]).id).status == "completed"


def test_invalid_file_fails_the_next_batches_without_line_numbers(harness: Harness) -> None:
    harness.engine.set_faults(invalid_file_batches=2)
    created = harness.submit([chat_line(i) for i in range(3)])
    assert created.status == "validating"
    failed = [harness.settle(created.id), harness.settle(harness.submit([chat_line(0)]).id)]
    for batch in failed:
        assert batch.status == "failed" and batch.failed_at is not None
        assert (batch.output_file_id, batch.error_file_id) == (None, None)
        [error] = batch.errors.data
        assert (error.code, error.line, error.param) == ("invalid_request", None, None)
        assert batch.input_file_id in error.message
    assert harness.settle(harness.submit([chat_line(0)]).id).status == "completed"


def test_queued_batch_faults_fail_batches_in_turn(harness: Harness) -> None:
    harness.engine.set_faults(invalid_file_batches=1, token_limit_batches=1)
    codes = [harness.settle(harness.submit([chat_line(0)]).id).errors for _ in range(3)]
    assert [e and e.data[0].code for e in codes] == [
        "invalid_request",
        "token_limit_exceeded",
        None,
    ]


def _batch_ids(harness: Harness) -> list[str]:
    return [b["id"] for b in harness.engine.list_batches(100, None)["data"]]


def test_lost_create_answer_makes_the_sdks_retry_create_a_second_batch(harness: Harness) -> None:
    file_id = harness.upload([chat_line(0)])
    harness.engine.set_faults(drop_after_create=1)
    with OpenAI(base_url=harness.base_url, api_key=API_KEY) as retrying:
        assert retrying.max_retries == 2  # the SDK's default
        batch = retrying.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    ids = _batch_ids(harness)
    assert len(ids) == 2 and ids[0] == batch.id  # the first, whose answer was lost, runs too
    assert [b.id for b in harness.client.batches.list()] == ids
    assert {harness.settle(i).status for i in ids} == {"completed"}


def test_lost_create_answer_without_retries_is_a_connection_error_and_one_batch(
    harness: Harness,
) -> None:
    file_id = harness.upload([chat_line(0)])
    harness.engine.set_faults(drop_after_create=1)
    with pytest.raises(openai.APIConnectionError):
        harness.client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    [batch_id] = _batch_ids(harness)
    assert harness.settle(batch_id).status == "completed"
    assert harness.engine.faults.drop_after_create == 0


def test_lost_upload_answer_replaced_by_a_gateway_error(harness: Harness) -> None:
    harness.engine.set_faults(drop_after_create=1, drop_after_create_status=502)
    with pytest.raises(openai.InternalServerError) as raised:
        harness.upload([chat_line(0)])
    assert raised.value.status_code == 502
    assert cast("dict[str, Any]", raised.value.body)["code"] == "injected_fault"
    [stored] = harness.client.files.list().data
    assert stored.filename == "tasks.jsonl" and stored.purpose == "batch"
    assert harness.upload([chat_line(0)]) != stored.id  # the fault is used up


def test_rejected_create_does_not_use_up_a_lost_answer(harness: Harness) -> None:
    harness.engine.set_faults(drop_after_create=1, drop_after_create_status=502)
    with pytest.raises(openai.BadRequestError):
        harness.client.batches.create(
            input_file_id="file-x",
            endpoint="/v1/nowhere",  # type: ignore[arg-type]  # an endpoint the API refuses
            completion_window="24h",
        )
    assert harness.engine.faults.drop_after_create == 1


def test_http_errors_on_the_next_calls(harness: Harness) -> None:
    harness.engine.set_faults(http_error_calls=2, http_error_status=429)
    with pytest.raises(openai.RateLimitError):
        harness.client.batches.list()
    with pytest.raises(openai.RateLimitError):
        harness.client.files.list()
    assert harness.client.batches.list().data == []


def test_output_file_id_momentarily_null(harness: Harness) -> None:
    batch = _run(harness, {"null_output_polls": 2})
    assert batch.status == "completed" and batch.output_file_id is None
    assert harness.client.batches.retrieve(batch.id).output_file_id is None
    assert harness.client.batches.retrieve(batch.id).output_file_id is not None


def test_empty_string_error_file_id(harness: Harness) -> None:
    assert _run(harness, {"empty_error_file_id": True}).error_file_id == ""


def test_status_code_zero_lines(harness: Harness) -> None:
    batch = _run(harness, {"status_zero_fraction": 0.1})
    errors = harness.lines_of(batch.error_file_id)
    assert [e["response"] for e in errors] == [{"status_code": 0, "request_id": "", "body": {}}] * 2


def test_request_timeouts(harness: Harness) -> None:
    batch = _run(harness, {"timeout_fraction": 0.1})
    errors = harness.lines_of(batch.error_file_id)
    assert [e["error"]["code"] for e in errors] == ["request_timeout"] * 2


def test_unparseable_line_in_output(harness: Harness) -> None:
    batch = _run(harness, {"malformed_output_line": True})
    text = harness.client.files.content(batch.output_file_id).text.splitlines()
    assert len(text) == N + 1
    with pytest.raises(json.JSONDecodeError):
        [json.loads(line) for line in text]


def test_truncated_json_and_refusals(harness: Harness) -> None:
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "x",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"summary": {"type": "string"}},
                "required": ["summary"],
                "additionalProperties": False,
            },
        },
    }
    batch = _run(
        harness, {"truncated_fraction": 0.1, "refusal_fraction": 0.1}, response_format=schema
    )
    choices = [x["response"]["body"]["choices"][0] for x in harness.lines_of(batch.output_file_id)]
    truncated = [c for c in choices if c["finish_reason"] == "length"]
    refused = [c for c in choices if c["message"]["refusal"]]
    assert len(truncated) == 2 and len(refused) == 2
    for choice in truncated:
        with pytest.raises(json.JSONDecodeError):
            json.loads(choice["message"]["content"])
    assert all(c["message"]["content"] is None for c in refused)


def test_request_counts_that_disagree_with_the_files(harness: Harness) -> None:
    batch = _run(harness, {"wrong_request_counts": True, "fail_fraction": 0.5})
    assert (batch.request_counts.completed, batch.request_counts.failed) == (N, 0)
    assert len(harness.lines_of(batch.error_file_id)) == N // 2


def test_batch_that_disappears(harness: Harness) -> None:
    harness.engine.set_faults(disappear_after_polls=1)
    batch = harness.submit([chat_line(0)])
    harness.client.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError, match="No batch found"):
        harness.client.batches.retrieve(batch.id)
    assert harness.client.batches.list().data == []


def test_slow_finalizing(harness: Harness) -> None:
    harness.engine.set_faults(slow_finalizing=3600)
    batch = harness.submit([chat_line(0)])
    harness.clock.advance(600)
    assert harness.client.batches.retrieve(batch.id).status == "finalizing"
    harness.clock.advance(3600)
    assert harness.client.batches.retrieve(batch.id).status == "completed"


def test_faults_parse_from_the_command_line() -> None:
    faults = Faults.parse(["fail_fraction=0.1", "empty_error_file_id=true", "http_error_calls=3"])
    assert (faults.fail_fraction, faults.empty_error_file_id, faults.http_error_calls) == (
        0.1,
        True,
        3,
    )
    faults = Faults.parse(
        [
            "drop_after_create=2",
            "drop_after_create_status=502",
            "invalid_file_batches=1",
            "token_limit_batches=-1",
        ]
    )
    assert (faults.drop_after_create, faults.drop_after_create_status) == (2, 502)
    assert (faults.invalid_file_batches, faults.token_limit_batches) == (1, -1)
    from enrich import ProjectError

    with pytest.raises(ProjectError, match="did you mean 'fail_fraction'"):
        Faults.parse(["fail_fractoin=1"])
