"""Talking to an OpenAI-compatible API: the only module that imports the openai SDK.

The SDK already retries 408/409/429/5xx with backoff (``max_retries``); enrich adds no retry layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import openai

from .server.replies import Reply, error_reply

DEFAULT_TIMEOUT = 600.0


def make_client(
    base_url: str | None,
    api_key: str | None,
    max_retries: int = 2,
    timeout: float = DEFAULT_TIMEOUT,
) -> openai.OpenAI:
    """An SDK client; None falls back to the SDK's own OPENAI_BASE_URL / OPENAI_API_KEY handling."""
    return openai.OpenAI(
        base_url=base_url, api_key=api_key, max_retries=max_retries, timeout=timeout
    )


def forwarder(
    base_url: str, api_key: str | None
) -> Callable[[str, Mapping[str, Any], float], Reply]:
    """A responder that sends each request to an upstream OpenAI-compatible server."""
    client = make_client(base_url, api_key or "none")

    def respond(url: str, body: Mapping[str, Any], now: float) -> Reply:
        path = url.removeprefix("/v1")
        try:
            answer = client.post(path, body=dict(body), cast_to=object)
        except openai.APIStatusError as err:
            return Reply(err.status_code, _error_json(err))
        except openai.APIConnectionError as err:
            return error_reply(
                502,
                f"Upstream {base_url} could not be reached: {err}",
                None,
                "upstream_unreachable",
            )
        return Reply(200, answer if isinstance(answer, dict) else {"result": answer})

    return respond


def _error_json(err: openai.APIStatusError) -> dict[str, Any]:
    try:
        body = err.response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body
    return {
        "error": {"message": err.message, "type": "upstream_error", "param": None, "code": None}
    }
