"""The API endpoints a model can enrich through, declared as data: one :class:`Endpoint` each.

An endpoint says under which key rows go in a request body and how a row becomes its part there
(SQL over the plan's ``_prompt``, ``_system`` and ``_images`` columns; everything else in the body
is the same for every row), how many prompt tokens that is estimated at,
how a structured-output schema goes into the body, and how an answer, its completeness, a refusal
and token usage are read back out of a response body (SQL over ``body``, read as the type the
endpoint declares).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import tokens

# The per-row part of a body, as JSON text: after the constant head, before the constant tail.
# A row's own system prompt (`_system`) comes first; a model-wide one is in the head.
_ROW_SYSTEM = """CASE WHEN _system IS NULL THEN ''
         ELSE json_object('role', 'system', 'content', _system)::VARCHAR || ',' END"""

_CHAT_ROW = f"""{_ROW_SYSTEM} || json_object('role', 'user', 'content',
    CASE WHEN coalesce(len(_images), 0) = 0 THEN to_json(_prompt)
         ELSE to_json(list_prepend(
             json_object('type', 'text', 'text', _prompt),
             list_transform(_images, lambda u:
                 json_object('type', 'image_url', 'image_url', json_object('url', u)))))
    END)::VARCHAR"""

_RESPONSES_ROW = f"""{_ROW_SYSTEM} || json_object('role', 'user', 'content', to_json(list_concat(
    [json_object('type', 'input_text', 'text', _prompt)],
    list_transform(coalesce(_images, []), lambda u:
        json_object('type', 'input_image', 'image_url', u)))))::VARCHAR"""

_MESSAGE_TOKENS = f"""(
    CASE WHEN _system IS NULL THEN 0
         ELSE {tokens.TOKENS_PER_MESSAGE} + ceil(length(_system) / {tokens.CHARS_PER_TOKEN}) END
    + {tokens.TOKENS_PER_MESSAGE} + ceil(length(_prompt) / {tokens.CHARS_PER_TOKEN})
    + {tokens.TOKENS_PER_IMAGE} * coalesce(len(_images), 0))::BIGINT"""

# What is read of a response body, as a DuckDB type: the JSON reader fills it in one pass
# (missing or mistyped values become NULL, other keys are skipped), so no answer is parsed twice.
_CHAT_BODY = """STRUCT(
    choices STRUCT(finish_reason VARCHAR, message STRUCT(content VARCHAR, refusal VARCHAR))[],
    usage STRUCT(prompt_tokens BIGINT, completion_tokens BIGINT),
    error STRUCT(message VARCHAR))"""

_CHAT_ANSWER = """
    body.choices[1].message.content AS answer,
    coalesce(body.choices[1].finish_reason, '') = 'stop' AS complete,
    body.choices[1].message.refusal AS refusal,
    body.usage.prompt_tokens AS prompt_tokens,
    body.usage.completion_tokens AS completion_tokens"""

_EMBEDDING_BODY = """STRUCT(
    data STRUCT(embedding JSON)[],
    usage STRUCT(prompt_tokens BIGINT),
    error STRUCT(message VARCHAR))"""

_EMBEDDING_ANSWER = """
    body.data[1].embedding::VARCHAR AS answer,
    body.data[1].embedding IS NOT NULL AS complete,
    NULL::VARCHAR AS refusal,
    body.usage.prompt_tokens AS prompt_tokens,
    0::BIGINT AS completion_tokens"""

_RESPONSES_BODY = """STRUCT(
    status VARCHAR,
    output STRUCT(content STRUCT(text VARCHAR, refusal VARCHAR)[])[],
    usage STRUCT(input_tokens BIGINT, output_tokens BIGINT),
    error STRUCT(message VARCHAR))"""

# The answer is the text of every output content part, in order.
_RESPONSES_ANSWER = """
    coalesce(array_to_string(flatten(list_transform(body.output,
        lambda o: list_transform(o.content, lambda c: c.text))), ''), '') AS answer,
    coalesce(body.status, '') = 'completed' AS complete,
    list_filter(flatten(list_transform(body.output,
        lambda o: list_transform(o.content, lambda c: c.refusal))),
        lambda r: r IS NOT NULL)[1] AS refusal,
    body.usage.input_tokens AS prompt_tokens,
    body.usage.output_tokens AS completion_tokens"""


def _chat_format(name: str, schema: Mapping[str, Any] | None, json_object: bool) -> dict[str, Any]:
    if json_object:
        return {"response_format": {"type": "json_object"}}
    if schema is None:
        return {}
    spec = {"name": name, "strict": True, "schema": dict(schema)}
    return {"response_format": {"type": "json_schema", "json_schema": spec}}


def _responses_format(
    name: str, schema: Mapping[str, Any] | None, json_object: bool
) -> dict[str, Any]:
    if json_object:
        return {"text": {"format": {"type": "json_object"}}}
    if schema is None:
        return {}
    return {
        "text": {"format": {"type": "json_schema", "name": name, "strict": True, "schema": schema}}
    }


def _no_format(name: str, schema: Mapping[str, Any] | None, json_object: bool) -> dict[str, Any]:
    return {"encoding_format": "float"}


@dataclass(frozen=True)
class Endpoint:
    """How rows become requests to one URL, and answers come back out of its responses."""

    url: str
    container: str  # the body key rows go under: "messages" or "input"
    listed: bool  # the container is a list (messages) rather than one value
    row_part: str  # SQL: the JSON text of a row's part of the container
    row_tokens: str  # SQL: estimated prompt tokens of a row's part
    body: str  # the DuckDB type a response body is read as; it has `error.message`
    answer: str  # SQL select list over `body`: answer, complete, refusal, token counts
    answer_type: str  # the column type of an answer when the model declares no `output`
    default_column: str  # that column's default name
    format: Callable[[str, Mapping[str, Any] | None, bool], dict[str, Any]]
    structured: bool  # takes `output` and response formats
    images: bool  # takes image URLs


ENDPOINTS: Mapping[str, Endpoint] = {
    e.url: e
    for e in (
        Endpoint(
            "/v1/chat/completions",
            "messages",
            True,
            _CHAT_ROW,
            _MESSAGE_TOKENS,
            _CHAT_BODY,
            _CHAT_ANSWER,
            "VARCHAR",
            "response",
            _chat_format,
            structured=True,
            images=True,
        ),
        Endpoint(
            "/v1/embeddings",
            "input",
            False,
            "to_json(_prompt)::VARCHAR",
            f"ceil(length(_prompt) / {tokens.CHARS_PER_TOKEN})::BIGINT",
            _EMBEDDING_BODY,
            _EMBEDDING_ANSWER,
            "FLOAT[]",
            "embedding",
            _no_format,
            structured=False,
            images=False,
        ),
        Endpoint(
            "/v1/responses",
            "input",
            True,
            _RESPONSES_ROW,
            _MESSAGE_TOKENS,
            _RESPONSES_BODY,
            _RESPONSES_ANSWER,
            "VARCHAR",
            "response",
            _responses_format,
            structured=True,
            images=True,
        ),
    )
}
