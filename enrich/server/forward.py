"""The forward responder: each batch line sent to an upstream OpenAI-compatible server.

It reaches the upstream through :func:`enrich.batch.client.post_raw`, so the openai SDK stays the
only way anything here talks to an API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..batch.client import post_raw
from .replies import Reply, error_reply


def forwarder(
    base_url: str, api_key: str | None
) -> Callable[[str, Mapping[str, Any], float], Reply]:
    """A responder that sends each request to the server at `base_url`."""
    post = post_raw(base_url, api_key)

    def respond(url: str, body: Mapping[str, Any], now: float) -> Reply:
        answer = post(url, body)
        if answer.status == 0:
            message = f"Upstream {base_url} could not be reached."
            return error_reply(502, message, None, "upstream_unreachable")
        if answer.status != 200:
            return Reply(answer.status, _error_body(answer.body))
        return Reply(200, answer.body if isinstance(answer.body, dict) else {"result": answer.body})

    return respond


def _error_body(body: Any) -> dict[str, Any]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body
    message = "The upstream server answered with an error."
    return {"error": {"message": message, "type": "upstream_error", "param": None, "code": None}}
