"""An independent count of what crosses the wire between the openai SDK and a Batch API server.

Tests that must prove "sent once" cannot trust enrich's ledger (the code under test) nor the
server's own record (the fake). :func:`wire_proxy` puts a logging reverse proxy between them:
give its ``base_url`` to the SDK (or enrich) instead of the server's, and it forwards every
request as is, answers with the server's answer, and remembers both.

    with serve_in_thread(config) as server, wire_proxy(server.base_url) as wire:
        client = OpenAI(base_url=wire.base_url, api_key=server.api_key)
        ...
        assert wire.sent_for_execution() == Counter({"task-0": 1, "task-1": 1})

A dropped connection upstream is dropped downstream too, so faults pass through faithfully.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import hashlib
import json
import socket
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

SYNC_PATHS = ("/v1/chat/completions", "/v1/embeddings", "/v1/responses")
# Headers about one connection, or recomputed by whoever sends the bytes on.
_REQUEST_SKIP = {
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
}
_RESPONSE_SKIP = _REQUEST_SKIP | {"content-encoding", "date", "server"}
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class UnseenFile(LookupError):
    """A batch create named an input file whose content never crossed the wire."""


@dataclass(frozen=True)
class Call:
    """One request that crossed the wire; `status` is None when the connection dropped."""

    method: str
    path: str
    status: int | None


@dataclass(frozen=True)
class _Exchange:
    call: Call
    content_type: str
    request_body: bytes
    answer: Any  # the JSON answer, None when there was none or it was not JSON


class Wire:
    """What crossed the wire so far; safe to read while the SDK calls from other threads."""

    def __init__(self, upstream_base_url: str) -> None:
        self.upstream = upstream_base_url.rstrip("/")
        self.base_url = ""  # set once the proxy listens
        self._exchanges: list[_Exchange] = []
        self._lock = threading.Lock()

    def calls(self) -> list[Call]:
        """Every request in the order it was answered (or dropped), for debugging."""
        return [e.call for e in self._snapshot()]

    def batch_creates(self) -> int:
        """POST /v1/batches requests sent, whatever the answer."""
        return len(self._posts("/v1/batches"))

    def uploads(self) -> int:
        """POST /v1/files requests sent, whatever the answer."""
        return len(self._posts("/v1/files"))

    def sent_for_execution(self) -> Counter[str]:
        """How many times each request was sent to run.

        Batch lines count under their ``custom_id``, once per POST /v1/batches that crossed the
        wire (whatever its answer), read from the upload of the file it names. Synchronous POSTs to
        /v1/chat/completions, /v1/embeddings and /v1/responses count under ``"sync:"`` and the
        sha256 of the body's canonical JSON (``json.dumps(body, sort_keys=True)``, the hash the
        local server records as ``body_sha256``). Lines that are not JSON objects with a
        ``custom_id`` cannot run and are not counted. Raises :class:`UnseenFile` when a create names
        a file whose upload did not cross the wire.
        """
        exchanges = self._snapshot()
        contents = _file_contents(exchanges)
        sent: Counter[str] = Counter()
        for create in _matching(exchanges, "POST", "/v1/batches"):
            sent.update(_custom_ids(_input_of(create, contents)))
        for path in SYNC_PATHS:
            sent.update(
                "sync:" + _body_hash(e.request_body) for e in _matching(exchanges, "POST", path)
            )
        return sent

    def _record(self, exchange: _Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    def _snapshot(self) -> list[_Exchange]:
        with self._lock:
            return list(self._exchanges)

    def _posts(self, path: str) -> list[_Exchange]:
        return list(_matching(self._snapshot(), "POST", path))


@contextlib.contextmanager
def wire_proxy(upstream_base_url: str) -> Iterator[Wire]:
    """A logging reverse proxy to `upstream_base_url`, on a free local port, until the block ends.

    ``wire.base_url`` has the upstream's path (``…/v1``) on the proxy's host and port.
    """
    wire = Wire(upstream_base_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    # No log_config: uvicorn's loggers are global, and stay as the server under test set them.
    config = uvicorn.Config(_app(wire), log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.01)
    port = sock.getsockname()[1]
    wire.base_url = f"http://127.0.0.1:{port}{urlsplit(wire.upstream).path}"
    try:
        yield wire
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def _app(wire: Wire) -> Starlette:
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(wire.upstream))
    state: dict[str, httpx2.AsyncClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # No timeout of its own: the client's timeout decides, as it would without the proxy.
        async with httpx2.AsyncClient(timeout=None) as client:
            state["client"] = client
            yield

    async def forward(request: Request) -> Response:
        return await _forward(wire, state["client"], origin, request)

    route = Route("/{path:path}", forward, methods=_METHODS)
    return Starlette(routes=[route], lifespan=lifespan)


async def _forward(
    wire: Wire, client: httpx2.AsyncClient, origin: str, request: Request
) -> Response:
    body = await request.body()
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _REQUEST_SKIP]
    url = origin + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        answer = await client.request(request.method, url, headers=headers, content=body)
    except httpx2.TransportError:
        answer = None
    call = Call(request.method, request.url.path, answer.status_code if answer else None)
    kind = request.headers.get("content-type", "")
    wire._record(_Exchange(call, kind, body, _json_or_none(answer)))
    if answer is None:
        return _dropped()
    kept = {k: v for k, v in answer.headers.items() if k.lower() not in _RESPONSE_SKIP}
    return Response(answer.content, status_code=answer.status_code, headers=kept)


def _dropped() -> Response:
    """Start an answer, then fail before its body, so uvicorn drops the client's connection."""

    async def nothing() -> AsyncIterator[bytes]:
        raise ConnectionResetError("the upstream dropped the connection")
        yield b""  # makes this an async generator

    return StreamingResponse(nothing(), headers={"content-length": "1"})


def _json_or_none(answer: httpx2.Response | None) -> Any:
    if answer is None or "json" not in answer.headers.get("content-type", ""):
        return None
    try:
        return answer.json()
    except ValueError:
        return None


def _matching(exchanges: Iterable[_Exchange], method: str, path: str) -> Iterator[_Exchange]:
    return (e for e in exchanges if e.call.method == method and e.call.path == path)


def _body_hash(raw: bytes) -> str:
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True).encode()
    except ValueError:
        canonical = raw
    return hashlib.sha256(canonical).hexdigest()


def _input_of(create: _Exchange, contents: dict[str, bytes]) -> bytes:
    try:
        file_id = json.loads(create.request_body).get("input_file_id")
    except (ValueError, AttributeError):
        file_id = None
    if file_id not in contents:
        raise UnseenFile(
            f"a batch create named input file {file_id!r}, but no upload of it crossed the wire; "
            "send the upload through the proxy too"
        )
    return contents[file_id]


def _file_contents(exchanges: list[_Exchange]) -> dict[str, bytes]:
    """File id → the bytes uploaded for it.

    An upload's own answer ties its content to a file id. When that answer was lost (a dropped
    connection or an error status after the server stored the file), a File object seen later on
    the wire (a files list or retrieve) ties its id to the lost uploads with the same filename and
    size, if they all sent the same bytes.
    """
    known: dict[str, bytes] = {}
    lost: list[tuple[str, bytes]] = []
    for upload in _matching(exchanges, "POST", "/v1/files"):
        filename, content = _uploaded(upload)
        answer = upload.answer
        if upload.call.status == 200 and isinstance(answer, dict) and "id" in answer:
            known[answer["id"]] = content
        else:
            lost.append((filename, content))
    for seen in _file_objects(exchanges):
        candidates = {c for name, c in lost if name == seen.get("filename")}
        candidates = {c for c in candidates if len(c) == seen.get("bytes")}
        if seen.get("id") not in known and len(candidates) == 1:
            known[seen["id"]] = candidates.pop()
    return known


def _file_objects(exchanges: list[_Exchange]) -> Iterator[dict[str, Any]]:
    for exchange in exchanges:
        answer = exchange.answer
        items = answer.get("data") if isinstance(answer, dict) else None
        for item in [answer, *items] if isinstance(items, list) else [answer]:
            if isinstance(item, dict) and item.get("object") == "file":
                yield item


def _uploaded(upload: _Exchange) -> tuple[str, bytes]:
    """The filename and bytes of the ``file`` part of a multipart upload."""
    head = f"Content-Type: {upload.content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        head + upload.request_body
    )
    for part in message.iter_parts() if message.is_multipart() else []:
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            return part.get_filename() or "", payload if isinstance(payload, bytes) else b""
    return "", b""


def _custom_ids(content: bytes) -> Iterator[str]:
    for raw in content.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and isinstance(line.get("custom_id"), str):
            yield line["custom_id"]
