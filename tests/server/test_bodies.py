"""Request bodies the real API refuses are refused here too: synchronously with its 400, and in a
batch as that line's result in the error file while the rest of the batch runs."""

from __future__ import annotations

import copy
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from .conftest import Harness, batch_line

CHAT, EMBEDDINGS, RESPONSES = "/v1/chat/completions", "/v1/embeddings", "/v1/responses"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hi."}]


def chat(model: str = "gpt-4o-mini", **params: Any) -> dict[str, Any]:
    return {"model": model, "messages": copy.deepcopy(HI), **params}


def embed(**params: Any) -> dict[str, Any]:
    return {"model": "text-embedding-3-small", "input": "a lighthouse", **params}


def respond(model: str = "gpt-4o-mini", **params: Any) -> dict[str, Any]:
    return {"model": model, "input": "Say hi.", **params}


def _post(client: openai.OpenAI, url: str, body: dict[str, Any]) -> Any:
    """Send `body` as it is, through the SDK's own request machinery."""
    return client.post(url.removeprefix("/v1"), body=body, cast_to=object)


def _refusal(client: openai.OpenAI, url: str, body: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as raised:
        _post(client, url, body)
    assert raised.value.status_code == 400
    error = raised.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error"
    return error


# (url, body, code, param, words in the message)
SCHEMA_CASES = [
    (CHAT, chat(foo=1), "unknown_parameter", "foo", "Unrecognized request argument supplied: foo"),
    (CHAT, chat(reasoning_efort="low"), "unknown_parameter", "reasoning_efort", "supplied"),
    (EMBEDDINGS, embed(temperature=0), "unknown_parameter", "temperature", "supplied"),
    (RESPONSES, respond(max_tokens=50), "unknown_parameter", "max_tokens", "supplied"),
    (RESPONSES, respond(reasoning_effort="low"), "unknown_parameter", "reasoning_effort", ""),
    (CHAT, chat(temperature=5), "invalid_value", "temperature", "Expected a value <= 2"),
    (CHAT, chat(temperature="hot"), "invalid_type", "temperature", "expected a decimal"),
    (CHAT, chat(top_p=-0.1), "invalid_value", "top_p", "below minimum value"),
    (CHAT, chat(n=0), "invalid_value", "n", "Expected a value >= 1"),
    (CHAT, chat(stop=["a", "b", "c", "d", "e"]), "invalid_value", "stop", "array too long"),
    (CHAT, {"messages": HI}, "missing_required_parameter", "model", "'model'"),
    (CHAT, chat(messages=[]), "invalid_value", "messages", "array too short"),
    (
        CHAT,
        chat(messages=[{"role": "usr", "content": "x"}]),
        "invalid_value",
        "messages[0].role",
        "Invalid value: 'usr'",
    ),
    (
        CHAT,
        chat(messages=[{"role": "user", "content": 5}]),
        "invalid_type",
        "messages[0].content",
        "but got an integer instead",
    ),
    (
        CHAT,
        chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
        "missing_required_parameter",
        "messages[0].content[0].image_url.url",
        "Missing required parameter",
    ),
    (
        CHAT,
        chat(response_format={"type": "jsonschema"}),
        "invalid_value",
        "response_format.type",
        "'json_schema'",
    ),
    (EMBEDDINGS, embed(input=[]), "invalid_value", "input", "array too short"),
    (EMBEDDINGS, embed(dimensions=0), "invalid_value", "dimensions", "minimum"),
    (EMBEDDINGS, embed(encoding_format="int8"), "invalid_value", "encoding_format", "'base64'"),
    (RESPONSES, respond(max_output_tokens=5), "invalid_value", "max_output_tokens", ">= 16"),
    (
        RESPONSES,
        respond(input=[{"role": "user", "content": [{"type": "input_txt", "text": "x"}]}]),
        "invalid_value",
        "input[0].content[0].type",
        "'input_text'",
    ),
    (RESPONSES, respond(reasoning={"effort": "huge"}), "invalid_value", "reasoning.effort", ""),
]

REASONING_MODELS = ["o1", "o3-mini", "o4-mini-2025-04-16", "gpt-5", "gpt-5-mini", "gpt-5.1"]
REASONING_CASES = [
    ({"max_tokens": 100}, "unsupported_parameter", "max_tokens", "max_completion_tokens"),
    ({"temperature": 0.2}, "unsupported_value", "temperature", "Only the default (1)"),
    ({"top_p": 0.5}, "unsupported_value", "top_p", "Only the default (1)"),
    ({"presence_penalty": 0.5}, "unsupported_value", "presence_penalty", "default (0)"),
    ({"frequency_penalty": -1}, "unsupported_value", "frequency_penalty", "default (0)"),
    ({"logprobs": True}, "unsupported_parameter", "logprobs", "not supported"),
    ({"top_logprobs": 2}, "unsupported_parameter", "top_logprobs", "not supported"),
    ({"logit_bias": {"50256": -100}}, "unsupported_parameter", "logit_bias", "not supported"),
]

JSON_MODE = {"type": "json_object"}
JSON_WORD_CASES = [
    (CHAT, chat(response_format=JSON_MODE), "messages", "'messages' must contain the word 'json'"),
    (
        RESPONSES,
        respond(text={"format": JSON_MODE}),
        "input",
        "must contain the word 'json' in some form",
    ),
]


@pytest.mark.parametrize(("url", "body", "code", "param", "words"), SCHEMA_CASES)
def test_body_against_the_official_schema_is_refused(
    harness: Harness,
    url: str,
    body: dict[str, Any],
    code: str | None,
    param: str | None,
    words: str,
) -> None:
    error = _refusal(harness.client, url, body)
    assert (error["code"], error["param"]) == (code, param)
    assert words in error["message"]


@pytest.mark.parametrize("model", REASONING_MODELS)
@pytest.mark.parametrize(("params", "code", "param", "words"), REASONING_CASES)
def test_reasoning_models_refuse_sampling_parameters(
    harness: Harness,
    model: str,
    params: dict[str, Any],
    code: str | None,
    param: str | None,
    words: str,
) -> None:
    error = _refusal(harness.client, CHAT, chat(model, **params))
    assert (error["code"], error["param"]) == (code, param)
    assert words in error["message"]


def test_reasoning_models_take_their_own_parameters(harness: Harness) -> None:
    body = chat("o4-mini-2025-04-16", max_completion_tokens=200, temperature=1, top_p=1)
    answer = harness.client.chat.completions.create(**body, reasoning_effort="low")
    assert answer.choices[0].message.content
    error = _refusal(harness.client, RESPONSES, respond("gpt-5-mini", temperature=0.5))
    assert (error["code"], error["param"]) == ("unsupported_value", "temperature")
    assert harness.client.responses.create(**respond("o3", reasoning={"effort": "high"})).output


def test_other_models_keep_sampling_parameters(harness: Harness) -> None:
    for model in ("gpt-4o-mini", "gpt-4.1", "o1x"):
        body = chat(model, max_tokens=50, temperature=0.2, logprobs=True, top_logprobs=2)
        assert _post(harness.client, CHAT, body)["object"] == "chat.completion"


def test_typed_sdk_calls_meet_the_same_refusals(harness: Harness) -> None:
    client = harness.client
    with pytest.raises(openai.BadRequestError, match="max_completion_tokens"):
        client.chat.completions.create(model="o4-mini", max_tokens=10, messages=HI)
    with pytest.raises(openai.BadRequestError, match="Expected a value <= 2"):
        client.chat.completions.create(model="gpt-4o-mini", temperature=5, messages=HI)
    with pytest.raises(openai.BadRequestError, match="supplied: temperature"):
        client.embeddings.create(
            model="text-embedding-3-small", input="x", extra_body={"temperature": 0}
        )


@pytest.mark.parametrize(("url", "body", "param", "words"), JSON_WORD_CASES)
def test_json_mode_needs_the_word_json(
    harness: Harness, url: str, body: dict[str, Any], param: str | None, words: str
) -> None:
    error = _refusal(harness.client, url, body)
    assert (error["param"], error["code"]) == (param, None)
    assert words in error["message"]


def test_json_mode_with_the_word_json_anywhere(harness: Harness) -> None:
    system = {"role": "system", "content": "Answer as a JSON object."}
    body = chat(response_format=JSON_MODE, messages=[system, *HI])
    assert _post(harness.client, CHAT, body)["object"] == "chat.completion"
    parts = [{"role": "user", "content": [{"type": "text", "text": "Give me json."}]}]
    assert _post(harness.client, CHAT, chat(response_format=JSON_MODE, messages=parts))
    body = respond(text={"format": JSON_MODE}, instructions="Reply in Json.")
    assert _post(harness.client, RESPONSES, body)["status"] == "completed"


def test_a_batch_runs_its_good_lines_and_answers_bad_ones_in_the_error_file(
    harness: Harness,
) -> None:
    bad = {
        "unknown": chat(foo=1),
        "hot": chat(temperature=5),
        "no-json-word": chat(response_format=JSON_MODE),
        "open-schema": chat(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "strict": True, "schema": {"type": "object"}},
            }
        ),
    }
    lines = [batch_line(f"ok-{i}", CHAT, chat()) for i in range(3)]
    lines += [batch_line(name, CHAT, body) for name, body in bad.items()]
    batch = harness.settle(harness.submit(lines).id)
    assert batch.status == "completed"
    assert (batch.request_counts.completed, batch.request_counts.failed) == (3, 4)
    assert sorted(x["custom_id"] for x in harness.lines_of(batch.output_file_id)) == [
        "ok-0",
        "ok-1",
        "ok-2",
    ]
    errors = {x["custom_id"]: x for x in harness.lines_of(batch.error_file_id)}
    assert set(errors) == set(bad)
    for entry in errors.values():
        assert entry["error"] is None and entry["response"]["status_code"] == 400
        assert entry["response"]["body"]["error"]["type"] == "invalid_request_error"
    codes = {k: e["response"]["body"]["error"]["code"] for k, e in errors.items()}
    assert codes == {
        "unknown": "unknown_parameter",
        "hot": "invalid_value",
        "no-json-word": None,
        "open-schema": "invalid_value",
    }


@pytest.mark.parametrize(
    ("url", "good", "bad", "code"),
    [
        (CHAT, chat("o4-mini"), chat("o4-mini", max_tokens=10), "unsupported_parameter"),
        (EMBEDDINGS, embed(), embed(temperature=0), "unknown_parameter"),
        (RESPONSES, respond(), respond(text={"format": JSON_MODE}), None),
    ],
)
def test_each_endpoint_refuses_bad_lines_in_a_batch(
    harness: Harness, url: str, good: dict[str, Any], bad: dict[str, Any], code: str | None
) -> None:
    lines = [batch_line("good", url, good), batch_line("bad", url, bad)]
    batch = harness.settle(harness.submit(lines, endpoint=url).id)
    assert batch.status == "completed"
    [ok] = harness.lines_of(batch.output_file_id)
    [refused] = harness.lines_of(batch.error_file_id)
    assert (ok["custom_id"], refused["custom_id"]) == ("good", "bad")
    assert refused["response"]["status_code"] == 400 and refused["error"] is None
    assert refused["response"]["body"]["error"]["code"] == code
