"""Serving the app over real HTTP with uvicorn: in a background thread, or in the foreground.

The only module that imports uvicorn. It and the app (starlette) are imported when a server
starts, so importing enrich, or running a command that serves nothing, does not pay for them.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import ProjectError
from .clock import Clock, ScaledClock
from .config import Faults, ServerConfig, Timing
from .engine import Engine, Respond
from .offline import respond as offline_respond


def make_engine(config: ServerConfig, clock: Clock | None = None) -> Engine:
    """The engine with the responder the config names."""
    respond: Respond = offline_respond
    if config.responder == "forward":
        from .forward import forwarder

        respond = forwarder(config.upstream or "", config.upstream_api_key)
    return Engine(config, clock or ScaledClock(), respond)


def config_from_args(
    *,
    project_dir: str,
    data_dir: str | None,
    responder: str,
    upstream: str | None,
    api_key: str | None,
    upstream_api_key: str | None,
    realistic: bool,
    faults: Sequence[str],
) -> ServerConfig:
    """A ServerConfig from ``enrich serve-local`` arguments; bad ones raise ProjectError."""
    if responder == "forward" and not upstream:
        raise ProjectError(
            "--responder forward needs --upstream URL (an OpenAI-compatible base URL)"
        )
    folder = Path(data_dir) if data_dir else Path(project_dir) / "target" / "local-batch-api"
    return ServerConfig(
        data_dir=folder,
        api_key=api_key or "sk-local-" + secrets.token_hex(12),
        responder=responder,
        upstream=upstream,
        upstream_api_key=upstream_api_key,
        timing=Timing.realistic() if realistic else Timing(),
        faults=Faults.parse(faults),
    )


@dataclass(frozen=True)
class Running:
    """A server answering at `base_url` (ends in ``/v1``) with key `api_key`."""

    base_url: str
    api_key: str
    engine: Engine


@contextmanager
def serve_in_thread(
    config: ServerConfig,
    clock: Clock | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    tick_every: float | None = 0.2,
) -> Iterator[Running]:
    """Serve on a free port in a daemon thread until the block ends."""
    import uvicorn

    from .app import create_app

    engine = make_engine(config, clock)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(
        uvicorn.Config(create_app(engine, tick_every), log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.01)
    bound = sock.getsockname()[1]
    try:
        yield Running(f"http://{host}:{bound}/v1", config.api_key, engine)
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
        engine.close()


@contextmanager
def offline(project_dir: str | Path, clock: Clock | None = None) -> Iterator[Running]:
    """The local server with the offline responder, in this process, for ``enrich run --offline``.

    Its files and batches live in ``target/local-batch-api`` like ``enrich serve-local``'s, so
    batches left in flight by ``--no-wait`` are still there on the next offline run.
    """
    config = ServerConfig(
        data_dir=Path(project_dir) / "target" / "local-batch-api",
        api_key="sk-offline-" + secrets.token_hex(12),
        timing=Timing.instant(),
    )
    with serve_in_thread(config, clock) as running:
        yield running


def serve_forever(config: ServerConfig, host: str, port: int, clock: Clock | None = None) -> None:
    """Serve in the foreground until interrupted."""
    import uvicorn

    from .app import create_app

    engine = make_engine(config, clock)
    try:
        uvicorn.run(create_app(engine), host=host, port=port, log_level="info")
    finally:
        engine.close()
