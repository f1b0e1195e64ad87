"""The offline responder: deterministic answers in the shape a request asks for, no network.

``json_schema`` gets an object valid against the schema (:mod:`.sampling`: every type and format),
``json_object`` a JSON object, plain text a sentence built from the input (image URLs included),
embeddings a deterministic unit vector. Usage counts come from :mod:`enrich.tokens`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from ..batch import tokens
from .replies import Reply, error_reply
from .sampling import sample


def respond(url: str, body: Mapping[str, Any], now: float) -> Reply:
    """Answer one request to `url` (``/v1/chat/completions`` or ``/v1/embeddings``)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return error_reply(400, "you must provide a model parameter", "model", None)
    if url.endswith("/chat/completions"):
        return _chat(body, now)
    if url.endswith("/embeddings"):
        return _embeddings(body)
    if url.endswith("/responses"):
        return _responses(body, now)
    return error_reply(404, f"the offline responder does not serve {url}", None, "unknown_url")


def _chat(body: Mapping[str, Any], now: float) -> Reply:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return error_reply(400, "Messages parameter is required.", "messages", None)
    text, images = _inputs(messages)
    content = _content(body.get("response_format"), text, images)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "stop"
    if isinstance(limit, int) and tokens.estimate_text(content) > limit:
        content, finish = content[: limit * tokens.CHARS_PER_TOKEN], "length"
    prompt_tokens = tokens.estimate_prompt(body)
    completion_tokens = tokens.estimate_text(content)
    digest = _digest(json.dumps(body, sort_keys=True))
    return Reply(
        200,
        {
            "id": f"chatcmpl-{digest[:24]}",
            "object": "chat.completion",
            "created": int(now),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": _usage(prompt_tokens, completion_tokens),
            "system_fingerprint": "fp_enrich_offline",
        },
    )


def _responses(body: Mapping[str, Any], now: float) -> Reply:
    """A Responses API answer: the same content as chat, in ``output[].content[]``."""
    source = body.get("input")
    items = [{"role": "user", "content": source}] if isinstance(source, str) else source
    if not isinstance(items, list) or not items:
        return error_reply(400, "Missing required parameter: 'input'.", "input", None)
    text, images = _inputs([_as_chat(item) for item in items if isinstance(item, Mapping)])
    spec = (body.get("text") or {}).get("format") if isinstance(body.get("text"), Mapping) else None
    response_format = {"type": "json_schema", "json_schema": spec} if _is_schema(spec) else spec
    content = _content(response_format, text, images)
    limit = body.get("max_output_tokens")
    cap = limit if isinstance(limit, int) else None
    incomplete = cap is not None and tokens.estimate_text(content) > cap
    if cap is not None and incomplete:
        content = content[: cap * tokens.CHARS_PER_TOKEN]
    prompt, completion = tokens.estimate_prompt(body), tokens.estimate_text(content)
    digest = _digest(json.dumps(body, sort_keys=True))
    message = {"type": "output_text", "text": content, "annotations": [], "logprobs": []}
    return Reply(
        200,
        {
            "id": f"resp_{digest[:24]}",
            "object": "response",
            "created_at": int(now),
            "status": "incomplete" if incomplete else "completed",
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "model": body["model"],
            "output": [
                {
                    "type": "message",
                    "id": f"msg_{digest[24:48]}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [message],
                }
            ],
            "usage": {
                "input_tokens": prompt,
                "output_tokens": completion,
                "total_tokens": prompt + completion,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
            **_echoed(body),
        },
    )


def _echoed(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request settings a Response object repeats back (all required in its schema)."""
    return {
        "error": None,
        "instructions": body.get("instructions"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "temperature": body.get("temperature", 1.0),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
    }


def _as_chat(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """A Responses input item as a chat message, so both read the same way."""
    content = item.get("content")
    if not isinstance(content, list):
        return item
    parts = [
        {"type": "image_url", "image_url": {"url": p.get("image_url")}}
        if p.get("type") == "input_image"
        else {"type": "text", "text": p.get("text", "")}
        for p in content
        if isinstance(p, Mapping)
    ]
    return {"role": item.get("role"), "content": parts}


def _is_schema(spec: Any) -> bool:
    return isinstance(spec, Mapping) and spec.get("type") == "json_schema"


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _inputs(messages: Sequence[Any]) -> tuple[str, list[str]]:
    texts: list[str] = []
    images: list[str] = []
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") == "system":
            continue
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        for part in parts:
            if isinstance(part, Mapping) and part.get("type") == "image_url":
                image = part.get("image_url")
                images.append(
                    str(image.get("url", "")) if isinstance(image, Mapping) else str(image)
                )
            elif isinstance(part, Mapping):
                texts.append(str(part.get("text", "")))
    return " ".join(texts).strip(), images


def _content(response_format: Any, text: str, images: list[str]) -> str:
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") or {}
        return json.dumps(sample(schema, text), ensure_ascii=False)
    if kind == "json_object":
        return json.dumps({"answer": _sentence(text, images)}, ensure_ascii=False)
    return _sentence(text, images)


def _sentence(text: str, images: list[str]) -> str:
    shown = " ".join(text.split())[:160]
    seen = "".join(f" The image at {url} shows it." for url in images)
    return f"Offline answer about: {shown}.{seen}" if shown else f"Offline answer.{seen}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _embeddings(body: Mapping[str, Any]) -> Reply:
    source = body.get("input")
    inputs = source if isinstance(source, list) else [source]
    if not inputs or any(not isinstance(i, str | list) or not i for i in inputs):
        return error_reply(400, "'input' must be a non-empty string or array", "input", None)
    if all(isinstance(i, int) for i in inputs):  # one tokenized input
        inputs = [inputs]
    default = 3072 if "large" in str(body["model"]) else 1536
    dimensions = int(body.get("dimensions") or default)
    as_base64 = body.get("encoding_format") == "base64"
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _encoded(
                vector(x if isinstance(x, str) else json.dumps(x), dimensions), as_base64
            ),
        }
        for i, x in enumerate(inputs)
    ]
    prompt = sum(tokens.estimate_text(x if isinstance(x, str) else json.dumps(x)) for x in inputs)
    usage = {"prompt_tokens": prompt, "total_tokens": prompt}
    return Reply(200, {"object": "list", "data": data, "model": body["model"], "usage": usage})


def vector(text: str, dimensions: int) -> list[float]:
    """A unit vector chosen by `text`: a sine wave whose frequency and phase come from its sha256
    (:func:`.bulk_replies.vector_sql` is the same in SQL)."""
    digest = _digest(text)
    frequency = int(digest[:8], 16) / 2**32 * 1000 + 1
    phase = int(digest[8:16], 16) / 2**32 * 6.283185307179586
    raw = [math.sin((k + 1) * frequency + phase) for k in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


def _encoded(vector: list[float], as_base64: bool) -> list[float] | str:
    if as_base64:
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector
