"""Offline token estimates for request bodies: about four characters a token, 85 per image.

Good enough to budget enqueued tokens and estimate cost before anything is sent; the API's own
counts replace them once answers come back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

CHARS_PER_TOKEN = 4
TOKENS_PER_IMAGE = 85  # OpenAI's charge for a low-detail image
TOKENS_PER_MESSAGE = 4


def estimate_text(text: str) -> int:
    """Tokens in a piece of text.

    >>> estimate_text("Two imprisoned men bond over a number of years.")
    12
    """
    return max(1, -(-len(text) // CHARS_PER_TOKEN)) if text else 0


def estimate_prompt(body: Mapping[str, Any]) -> int:
    """Prompt tokens of a chat, embeddings or responses request body."""
    if "messages" in body:
        return sum(_message(m) for m in body["messages"] if isinstance(m, Mapping))
    source = body.get("input", "")
    if isinstance(source, list):
        return sum(estimate_text(x if isinstance(x, str) else json.dumps(x)) for x in source)
    return estimate_text(str(source))


def _message(message: Mapping[str, Any]) -> int:
    content = message.get("content")
    if isinstance(content, str):
        return TOKENS_PER_MESSAGE + estimate_text(content)
    parts = content if isinstance(content, list) else []
    return TOKENS_PER_MESSAGE + sum(_part(p) for p in parts if isinstance(p, Mapping))


def _part(part: Mapping[str, Any]) -> int:
    if part.get("type") == "image_url":
        return TOKENS_PER_IMAGE
    return estimate_text(str(part.get("text", "")))
