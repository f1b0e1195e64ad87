"""How enrich models reach the API in one run, and what they report while they work."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .client import ApiConfig


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class EnrichEvent:
    """Something an enrich model did that a person watching would want to know."""

    node: str
    message: str
    batch_id: str | None = None
    status: str | None = None
    completed: int = 0
    failed: int = 0
    total: int = 0


@dataclass(frozen=True)
class Wording:
    """How messages name what a person can change: the CLI's words unless a host (dbt) that
    runs enrich has its own. ``add_price`` is a template over ``{model}``."""

    offline: str = "run with --offline to use the local Batch API server"
    max_cost: str = "--max-cost (or max_cost_usd)"
    add_price: str = (
        '[tool.enrich.prices."{model}"] input = ..., output = ... (USD per million tokens at '
        "batch prices) to pyproject.toml"
    )
    failures: str = "see enrich status"


@dataclass(frozen=True)
class EnrichOptions:
    """How enrich models talk to the API in this run; clocks and sleeps are injectable."""

    api: ApiConfig | None = None  # None: OPENAI_BASE_URL / OPENAI_API_KEY, read when needed
    wait: bool = True  # follow batches to the end; False: submit, collect what is done, return
    dry_run: bool = False
    resend: bool = False  # send answered requests again (``enrich run --resend``)
    full_refresh: bool = False  # rebuild tables even when nothing they are made of changed
    max_cost_usd: float | None = None  # overrides the max_cost_usd setting
    poll_seconds: tuple[float, float] | None = None  # overrides [tool.enrich.batch] backoff
    sleep: Callable[[float], None] = time.sleep
    on_event: Callable[[EnrichEvent], None] | None = None
    # Called with the name of each step as it completes (see pipeline.STEPS): crash tests stop
    # the process at exact points through it.
    on_step: Callable[[str], None] | None = None
    run_id: str = ""
    # Asked before each submit, create and collect: True stops the build (Ctrl-C).
    should_stop: Callable[[], bool] | None = None
    wording: Wording = field(default_factory=Wording)
