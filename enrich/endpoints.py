"""The API endpoints a model can enrich through, declared as data: one :class:`Endpoint` each.

An endpoint says under which key rows go in a request body and how a row becomes its part there
(SQL over the plan's ``_prompt``, ``_system`` and ``_images`` columns; everything else in the body
is the same for every row), how many prompt tokens that is estimated at,
how a structured-output schema goes into the body, and how an answer, its completeness, a refusal
and token usage are read back out of a response body (SQL over a JSON column ``body``).
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

_CHAT_ANSWER = """
    body -> 'choices' -> 0 -> 'message' ->> 'content' AS answer,
    coalesce(body -> 'choices' -> 0 ->> 'finish_reason', '') = 'stop' AS complete,
    body -> 'choices' -> 0 -> 'message' ->> 'refusal' AS refusal,
    (body -> 'usage' ->> 'prompt_tokens')::BIGINT AS prompt_tokens,
    (body -> 'usage' ->> 'completion_tokens')::BIGINT AS completion_tokens"""

_EMBEDDING_ANSWER = """
    (body -> 'data' -> 0 -> 'embedding')::VARCHAR AS answer,
    (body -> 'data' -> 0 -> 'embedding') IS NOT NULL AS complete,
    NULL::VARCHAR AS refusal,
    (body -> 'usage' ->> 'prompt_tokens')::BIGINT AS prompt_tokens,
    0::BIGINT AS completion_tokens"""

_RESPONSES_ANSWER = """
    array_to_string(json_extract_string(body, '$.output[*].content[*].text'), '') AS answer,
    coalesce(body ->> 'status', '') = 'completed' AS complete,
    list_filter(json_extract_string(body, '$.output[*].content[*].refusal'),
                lambda r: r IS NOT NULL)[1] AS refusal,
    (body -> 'usage' ->> 'input_tokens')::BIGINT AS prompt_tokens,
    (body -> 'usage' ->> 'output_tokens')::BIGINT AS completion_tokens"""


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
            _RESPONSES_ANSWER,
            "VARCHAR",
            "response",
            _responses_format,
            structured=True,
            images=True,
        ),
    )
}
