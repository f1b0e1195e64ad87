"""The HTTP face of the server: OpenAI's Files, Batches, chat completions and embeddings routes.

The only module that imports starlette. Every error is OpenAI's envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .engine import Engine
from .replies import ApiError

Endpoint = Callable[[Request], Awaitable[Response]]


def create_app(engine: Engine, tick_every: float | None = 0.2) -> Starlette:
    """The ASGI app over `engine`; `tick_every` real seconds a background task advances batches."""
    routes = [
        Route("/health", _health, methods=["GET"]),
        Route("/v1/files", _with(engine, _upload), methods=["POST"]),
        Route("/v1/files", _with(engine, _list_files), methods=["GET"]),
        Route("/v1/files/{file_id}", _with(engine, _get_file), methods=["GET"]),
        Route("/v1/files/{file_id}", _with(engine, _delete_file), methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", _with(engine, _file_content), methods=["GET"]),
        Route("/v1/batches", _with(engine, _create_batch), methods=["POST"]),
        Route("/v1/batches", _with(engine, _list_batches), methods=["GET"]),
        Route("/v1/batches/{batch_id}", _with(engine, _get_batch), methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", _with(engine, _cancel_batch), methods=["POST"]),
        Route("/v1/chat/completions", _with(engine, _respond), methods=["POST"]),
        Route("/v1/embeddings", _with(engine, _respond), methods=["POST"]),
        Route("/v1/responses", _with(engine, _respond), methods=["POST"]),
    ]
    middleware = [Middleware(BaseHTTPMiddleware, dispatch=_guard(engine))]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_ticker(engine, tick_every)) if tick_every else None
        yield
        if task:
            task.cancel()

    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


async def _ticker(engine: Engine, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await run_in_threadpool(engine.tick)


def _guard(engine: Engine) -> Callable[[Request, Any], Awaitable[Response]]:
    """Auth, injected HTTP faults and body size limits, before any route."""

    async def dispatch(request: Request, call_next: Any) -> Response:
        if request.url.path == "/health":
            return await call_next(request)  # type: ignore[no-any-return]
        if request.headers.get("authorization") != f"Bearer {engine.config.api_key}":
            return _error(
                ApiError(
                    401,
                    "Incorrect API key provided. The local server expects the key "
                    "it was started with.",
                    None,
                    "invalid_api_key",
                )
            )
        stall = engine.take_stall()
        if stall:
            await asyncio.sleep(stall)  # a client with a shorter timeout gives up first
        status = engine.take_http_fault()
        if status is not None:
            fault = ApiError(status, f"Injected fault: HTTP {status}.", None, "injected_fault")
            return _error(fault, {"retry-after-ms": "0"})
        limit = engine.config.limits.max_file_bytes + 1024 * 1024
        if int(request.headers.get("content-length") or 0) > limit:
            return _error(
                ApiError(413, f"Request body over {limit} bytes.", None, "request_too_large")
            )
        return await call_next(request)  # type: ignore[no-any-return]

    return dispatch


def _with(engine: Engine, handler: Callable[[Engine, Request], Awaitable[Response]]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(engine, request)
        except ApiError as err:
            return _error(err)

    return endpoint


def _error(err: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(err.body, status_code=err.status, headers=headers)


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _json(engine: Engine, request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > engine.config.limits.max_json_bytes:
        raise ApiError(413, f"Request body over {engine.config.limits.max_json_bytes} bytes.")
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError as err:
        raise ApiError(400, f"We could not parse the JSON body of your request: {err}.") from err
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


async def _upload(engine: Engine, request: Request) -> Response:
    async with request.form(max_files=1, max_fields=10) as form:
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, UploadFile) or not isinstance(purpose, str):
            raise ApiError(
                400,
                "Missing required parameter: 'file' and 'purpose'.",
                "file",
                "missing_required_parameter",
            )
        seconds = form.get("expires_after[seconds]")
        lifetime = int(seconds) if isinstance(seconds, str) and seconds.isdigit() else None
        if lifetime is not None and not 3600 <= lifetime <= 2_592_000:
            raise ApiError(
                400,
                "expires_after[seconds] must be between 3600 and 2592000.",
                "expires_after.seconds",
                "invalid_value",
            )
        size = upload.size if upload.size is not None else 0
        meta = await run_in_threadpool(
            engine.upload, upload.filename or "upload.jsonl", purpose, upload.file, size, lifetime
        )
    return _created(engine, meta)


async def _list_files(engine: Engine, request: Request) -> Response:
    query = request.query_params
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ApiError(
            400, f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.", "order"
        )
    limit = _limit(query.get("limit"), 10_000)
    page = await run_in_threadpool(
        engine.list_files, query.get("purpose"), order, limit, query.get("after")
    )
    return JSONResponse(page)


async def _get_file(engine: Engine, request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(engine.get_file, request.path_params["file_id"]))


async def _delete_file(engine: Engine, request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(engine.delete_file, request.path_params["file_id"]))


async def _file_content(engine: Engine, request: Request) -> Response:
    path = await run_in_threadpool(engine.file_content, request.path_params["file_id"])
    if engine.take_reset_download():
        return _cut_short(path)
    return FileResponse(path, media_type="application/octet-stream")


def _cut_short(path: Path) -> Response:
    """Announce the whole file, send half, then drop the connection (a reset mid-download)."""
    data = path.read_bytes()
    return _broken(data, len(data) // 2, "application/octet-stream")


def _broken(data: bytes, sent: int, media_type: str) -> Response:
    """Announce `data` whole, send its first `sent` bytes, then fail, so uvicorn drops the
    connection: the client sees a short body and the SDK raises APIConnectionError."""

    async def part() -> AsyncIterator[bytes]:
        if sent:
            yield data[:sent]
        raise ConnectionResetError("injected fault: connection reset before the whole answer")

    headers = {"content-length": str(len(data))}
    return StreamingResponse(part(), media_type=media_type, headers=headers)


def _created(engine: Engine, made: dict[str, Any]) -> Response:
    """The answer to a create the engine has carried out, unless a fault loses it: then the client
    cannot tell whether the object exists, as after a real network failure or gateway error."""
    status = engine.take_lost_answer()
    if status is None:
        return JSONResponse(made)
    if status == 0:
        return _broken(json.dumps(made).encode(), 0, "application/json")
    what = "File" if made.get("object") == "file" else "Batch"
    return _error(
        ApiError(
            status,
            f"Injected fault: HTTP {status} after the {what} was created.",
            None,
            "injected_fault",
        )
    )


async def _create_batch(engine: Engine, request: Request) -> Response:
    params = await _json(engine, request)
    return _created(engine, await run_in_threadpool(engine.create_batch, params))


async def _list_batches(engine: Engine, request: Request) -> Response:
    limit = _limit(request.query_params.get("limit"), 100, default=20)
    page = await run_in_threadpool(engine.list_batches, limit, request.query_params.get("after"))
    return JSONResponse(page)


async def _get_batch(engine: Engine, request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(engine.get_batch, request.path_params["batch_id"]))


async def _cancel_batch(engine: Engine, request: Request) -> Response:
    return JSONResponse(
        await run_in_threadpool(engine.cancel_batch, request.path_params["batch_id"])
    )


async def _respond(engine: Engine, request: Request) -> Response:
    body = await _json(engine, request)
    reply = await run_in_threadpool(engine.respond_now, request.url.path, body)
    return JSONResponse(reply.body, status_code=reply.status)


def _limit(raw: str | None, maximum: int, default: int | None = None) -> int:
    if raw is None:
        return default or maximum
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ApiError(
            400, f"Invalid 'limit': must be an integer between 1 and {maximum}.", "limit"
        )
    return int(raw)
