"""Validating a batch input file line by line, with the codes and messages OpenAI uses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import Limits

REQUIRED = ("custom_id", "method", "url", "body")


@dataclass
class Validated:
    """The parsed lines of an input file and every error found, with 1-based line numbers."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, code: str, message: str, param: str | None, line: int | None) -> None:
        """Record one error."""
        self.errors.append({"code": code, "message": message, "param": param, "line": line})


def validate(content: bytes, endpoint: str, limits: Limits) -> Validated:
    """Check every line of `content` against `endpoint`; collect all errors, not just the first."""
    result = Validated()
    seen: set[str] = set()
    model: str | None = None
    raw_lines = [line for line in content.split(b"\n") if line.strip()]
    for number, raw in enumerate(raw_lines, start=1):
        line = _parse(raw, number, result)
        if line is None or not _check_line(line, number, endpoint, limits, result):
            continue
        custom_id, line_model = str(line["custom_id"]), str(line["body"]["model"])
        if custom_id in seen:
            result.fail(
                "duplicate_custom_id",
                f"The custom_id '{custom_id}' for this request is a "
                "duplicate of another request. The custom_id parameter must be unique for "
                "each request in a batch.",
                "custom_id",
                number,
            )
        elif model is not None and line_model != model:
            result.fail(
                "mismatched_model",
                f"The model '{line_model}' for this request does not "
                "match the rest of the batch. Each batch must contain requests for a single "
                "model.",
                "body.model",
                number,
            )
        seen.add(custom_id)
        model = model or line_model
        result.lines.append(line)
    _check_file(len(raw_lines), limits, result)
    return result


def _parse(raw: bytes, number: int, result: Validated) -> dict[str, Any] | None:
    try:
        line = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        line = None
    if not isinstance(line, dict):
        result.fail("invalid_json_line", "This line is not parseable as valid JSON.", None, number)
        return None
    return line


def _check_line(
    line: Mapping[str, Any], number: int, endpoint: str, limits: Limits, result: Validated
) -> bool:
    before = len(result.errors)
    for key in REQUIRED:
        if key not in line:
            result.fail(
                "missing_required_parameter", f"Missing required parameter: '{key}'.", key, number
            )
    if len(result.errors) > before:
        return False
    body = line["body"]
    checks = [
        (line["method"] != "POST", "invalid_request", "Only POST is supported.", "method"),
        (
            line["url"] != endpoint,
            "invalid_url",
            "The URL provided for this request does not match the batch endpoint.",
            "url",
        ),
        (not isinstance(body, dict), "invalid_request", "The body must be a JSON object.", "body"),
    ]
    if isinstance(body, dict):
        checks += body_checks(body, endpoint, limits)
    for failed, code, message, param in checks:
        if failed:
            result.fail(code, message, param, number)
    return len(result.errors) == before


def body_checks(
    body: Mapping[str, Any], endpoint: str, limits: Limits
) -> list[tuple[bool, str, str, str]]:
    model = body.get("model")
    chat = endpoint.endswith("/chat/completions")
    return [
        (
            bool(body.get("stream")),
            "streaming_unsupported",
            "Chat Completions: Streaming is not supported in the Batch API.",
            "body.stream",
        ),
        (not model, "invalid_request", "Model parameter is required.", "body.model"),
        (
            chat and not body.get("messages"),
            "invalid_request",
            "Messages parameter is required.",
            "body.messages",
        ),
        (
            bool(model) and bool(limits.models) and model not in limits.models,
            "model_not_found",
            f"The provided model '{model}' is not supported by the Batch API.",
            "body.model",
        ),
    ]


def _check_file(count: int, limits: Limits, result: Validated) -> None:
    if count == 0:
        result.fail(
            "empty_file", "The input file is empty. Provide at least one request.", None, None
        )
    if count > limits.max_lines:
        result.fail(
            "too_many_tasks",
            f"The input file has {count} requests; a batch may have at most {limits.max_lines}.",
            None,
            None,
        )
