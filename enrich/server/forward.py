"""The forward responder: each batch line sent to an upstream OpenAI-compatible server.

It reaches the upstream through :func:`enrich.batch.client.post_raw`, so the openai SDK stays the
only way anything here talks to an API. An upstream may answer anything: whatever is not the
object the endpoint promises (an empty body, an HTML page, a count that is not a count) becomes a
502 for that line alone, so the batch still completes and no line is sent twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..batch.client import post_raw
from .replies import Reply, error_reply

# More tokens than any model's context holds: a count past it is garbage, not usage.
MAX_TOKENS = 100_000_000
# What each endpoint's answer must be: its `object`, the list it carries, its usage counts.
_SHAPES = {
    "/v1/chat/completions": ("chat.completion", "choices", ("prompt_tokens", "completion_tokens")),
    "/v1/embeddings": ("list", "data", ("prompt_tokens", "total_tokens")),
    "/v1/responses": ("response", "output", ("input_tokens", "output_tokens")),
}


def forwarder(
    base_url: str, api_key: str | None
) -> Callable[[str, Mapping[str, Any], float], Reply]:
    """A responder that sends each request to the server at `base_url`."""
    post = post_raw(base_url, api_key)

    def respond(url: str, body: Mapping[str, Any], now: float) -> Reply:
        try:
            answer = post(url, body)
        except ValueError as err:  # a 200 whose body claims to be JSON and is not
            return _invalid(base_url, f"its body is not JSON ({err})")
        if answer.status == 0:
            message = f"Upstream {base_url} could not be reached."
            return error_reply(502, message, None, "upstream_unreachable")
        if answer.status != 200:
            return Reply(answer.status, _error_body(answer.body))
        problem = shape_problem(url, answer.body)
        if problem is not None:
            return _invalid(base_url, problem)
        return Reply(200, answer.body)

    return respond


def shape_problem(url: str, body: Any) -> str | None:
    """What makes `body` not the answer `url` promises, or None when it is one.

    >>> shape_problem("/v1/embeddings", "<html>Bad gateway</html>")
    'it is a str, not a JSON object'
    """
    if not isinstance(body, dict):
        return f"it is {_a(body)}, not a JSON object"
    try:
        json.dumps(body, allow_nan=False)
    except ValueError:
        return "it holds NaN or Infinity, which JSON does not allow"
    if url not in _SHAPES:
        return None
    kind, listed, counts = _SHAPES[url]
    if body.get("object") != kind:
        return f"its object is {body.get('object')!r}, not {kind!r}"
    if not isinstance(body.get(listed), list):
        return f"it has no {listed!r} list"
    return _usage_problem(body.get("usage"), counts)


def _usage_problem(usage: Any, counts: tuple[str, ...]) -> str | None:
    if not isinstance(usage, dict):
        return "it has no usage object"
    for name in counts:
        value = usage.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            return f"usage.{name} is {_a(value)}, not a whole number"
        if not 0 <= value <= MAX_TOKENS:
            return f"usage.{name} is {value}, outside 0 to {MAX_TOKENS}"
    return None


def _a(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _invalid(base_url: str, problem: str) -> Reply:
    return error_reply(
        502,
        f"Upstream {base_url} answered with something that is not a valid response: {problem}.",
        None,
        "upstream_invalid_response",
    )


def _error_body(body: Any) -> dict[str, Any]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body
    message = "The upstream server answered with an error."
    return {"error": {"message": message, "type": "upstream_error", "param": None, "code": None}}
