"""enrich's local OpenAI Files + Batches API server, for offline runs, tests and self-hosting.

from enrich.server import ServerConfig, serve_in_thread
with serve_in_thread(ServerConfig(data_dir=path, api_key="k")) as server:
    client = OpenAI(base_url=server.base_url, api_key=server.api_key)
"""

from __future__ import annotations

from .clock import ManualClock, ScaledClock
from .config import Faults, Limits, ServerConfig, Timing
from .engine import Engine
from .serve import (
    Running,
    config_from_args,
    make_engine,
    offline,
    serve_forever,
    serve_in_thread,
)

__all__ = [
    "Engine",
    "Faults",
    "Limits",
    "ManualClock",
    "Running",
    "ScaledClock",
    "ServerConfig",
    "Timing",
    "config_from_args",
    "make_engine",
    "offline",
    "serve_forever",
    "serve_in_thread",
]
