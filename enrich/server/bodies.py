"""Request bodies the API refuses with a 400, checked before any responder sees them.

First OpenAI's own schema for the endpoint (:mod:`.schemas`), then the rules the API enforces that
the schema does not say (``../shared/docs/openai-batch-api.md`` §8): no unknown top-level
parameter, no sampling parameters for reasoning models, the word "json" with JSON mode, and
structured-output schemas it can compile (:mod:`.strict`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .replies import Reply, error_reply
from .schemas import RequestSchemas
from .strict import check_format

# o1, o3 and o4 models and the gpt-5 family, with their dated and sized variants.
_REASONING = re.compile(r"^(o1|o3|o4|gpt-5)([-.]|$)")
# Sampling parameters reasoning models take only at their default value.
_DEFAULTS_ONLY = (
    ("temperature", 1),
    ("top_p", 1),
    ("presence_penalty", 0),
    ("frequency_penalty", 0),
)
# Parameters reasoning models do not take at all.
_UNSUPPORTED = ("logprobs", "top_logprobs", "logit_bias")


class BodyCheck:
    """Every check on a request body; the schema validators are built once, here."""

    def __init__(self) -> None:
        self.schemas = RequestSchemas()

    def check(self, url: str, body: Mapping[str, Any]) -> Reply | None:
        """The API's 400 for the first rule `body` breaks, or None when it would be accepted."""
        allowed = self.schemas.parameters(url)
        if allowed is None:
            return None
        return (
            unknown_parameters(body, allowed)
            or self.schemas.problem(url, body)
            or reasoning_parameters(body)
            or json_mode_without_json(url, body)
            or check_format(url, body)
        )


def unknown_parameters(body: Mapping[str, Any], allowed: frozenset[str]) -> Reply | None:
    """A 400 naming every top-level parameter the endpoint does not have."""
    unknown = [str(key) for key in body if key not in allowed]
    if not unknown:
        return None
    many = "s" if len(unknown) > 1 else ""
    return error_reply(
        400,
        f"Unrecognized request argument{many} supplied: {', '.join(unknown)}",
        unknown[0],
        "unknown_parameter",
    )


def is_reasoning(model: Any) -> bool:
    """Whether `model` names a reasoning model (``o4-mini-2025-04-16``, ``gpt-5-mini`` …).

    >>> [is_reasoning(m) for m in ("o3", "o4-mini-2025-04-16", "gpt-5.1", "gpt-4o", "o10")]
    [True, True, True, False, False]
    """
    return isinstance(model, str) and bool(_REASONING.match(model))


def reasoning_parameters(body: Mapping[str, Any]) -> Reply | None:
    """A 400 for a parameter a reasoning model does not take, when the body asks one."""
    if not is_reasoning(body.get("model")):
        return None
    if body.get("max_tokens") is not None:
        return error_reply(
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
            "'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        )
    for name, default in _DEFAULTS_ONLY:
        value = body.get(name)
        if value is not None and value != default:
            return error_reply(
                400,
                f"Unsupported value: '{name}' does not support {value} with this model. Only the "
                f"default ({default}) value is supported.",
                name,
                "unsupported_value",
            )
    for name in _UNSUPPORTED:
        if body.get(name) not in (None, False):
            return error_reply(
                400,
                f"Unsupported parameter: '{name}' is not supported with this model.",
                name,
                "unsupported_parameter",
            )
    return None


def json_mode_without_json(url: str, body: Mapping[str, Any]) -> Reply | None:
    """A 400 for JSON mode when no message says "json": the API insists the prompt asks for it."""
    if url.endswith("/chat/completions"):
        return _chat_json_mode(body)
    if url.endswith("/responses"):
        return _responses_json_mode(body)
    return None


def _chat_json_mode(body: Mapping[str, Any]) -> Reply | None:
    if _kind(body.get("response_format")) != "json_object":
        return None
    if _mentions_json(_texts(body.get("messages"))):
        return None
    return error_reply(
        400,
        "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
        "'json_object'.",
        "messages",
        None,
    )


def _responses_json_mode(body: Mapping[str, Any]) -> Reply | None:
    text = body.get("text")
    if _kind(text.get("format") if isinstance(text, Mapping) else None) != "json_object":
        return None
    if _mentions_json([*_texts(body.get("input")), *_texts(body.get("instructions"))]):
        return None
    return error_reply(
        400,
        "Response input messages must contain the word 'json' in some form to use 'text.format' "
        "of type 'json_object'.",
        "input",
        None,
    )


def _kind(value: Any) -> Any:
    return value.get("type") if isinstance(value, Mapping) else None


def _mentions_json(texts: Iterable[str]) -> bool:
    return any("json" in text.lower() for text in texts)


def _texts(value: Any) -> Iterator[str]:
    """The text of a prompt: a string, or messages whose content is a string or text parts."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            content = item.get("content") if isinstance(item, Mapping) else None
            if isinstance(content, str):
                yield content
            for part in content if isinstance(content, list) else ():
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    yield part["text"]
