"""What a responder returns for one request: an HTTP status and a JSON body, or a non-HTTP error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status and JSON body (an OpenAI object, or ``{"error": {...}}``)."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class LineError:
    """A failure with no HTTP response, as batch error lines carry (``request_timeout`` …)."""

    code: str
    message: str


def error_body(status: int, message: str, param: str | None, code: str | None) -> dict[str, Any]:
    """OpenAI's error envelope."""
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_reply(status: int, message: str, param: str | None, code: str | None) -> Reply:
    """A Reply carrying OpenAI's error envelope."""
    return Reply(status, error_body(status, message, param, code))


class ApiError(Exception):
    """An HTTP error answered with OpenAI's envelope."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.body = error_body(status, message, param, code)
