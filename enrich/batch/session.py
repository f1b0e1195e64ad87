"""One build of one enrich model: what it is given (:class:`Job`) and what its steps share
(:class:`Session`): the connection, the API client, the options, the shards left, the figures."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from ..errors import Interrupted
from ..warehouse.db import Database
from . import request_lines
from .client import OFFLINE_SOURCE, ApiConfig, BatchClient, BatchState, hash_salt
from .costs import Price
from .lifecycle import Rules
from .options import EnrichEvent, EnrichOptions
from .request_lines import BatchSettings, Counts, Frame, Shard
from .spec import EnrichSpec

INTERRUPTED = (
    "interrupted; batches already submitted keep running, and the next run collects them "
    "without sending anything again"
)

# Waits short enough to keep the database file open through: closing and opening it again costs
# more than the wait, and a reader waiting on us (they retry) waits no longer than this.
LONG_WAIT_SECONDS = 2.0
LARGE_TRANSFER_LINES = 10_000  # an upload or download of this many lines takes a while
NO_TOKEN_LIMIT = 2**62
OFFLINE_SHARD_LINES = 10_000


@dataclass(frozen=True)
class Job:
    """An enrich model as the batch pipeline needs it."""

    name: str
    sql: str  # the model's rendered DuckDB query
    spec: EnrichSpec
    batch: BatchSettings
    prices: Mapping[str, Price]
    max_cost_usd: float | None
    folder: Path  # where its request and answer files are kept while batches are out
    # Groups of APIs whose answers the project takes as the same (their first names the group).
    interchangeable: tuple[tuple[str, ...], ...] = ()
    # The table to build, as [[catalog.]schema.]name parts; empty: the model's name.
    target: tuple[str, ...] = ()

    @property
    def relation(self) -> tuple[str, ...]:
        """The parts of the table this job builds."""
        return self.target or (self.name,)

    def source(self, api: ApiConfig) -> str:
        """Which API answers reached through `api` count as coming from."""
        name = api.source
        return next((group[0] for group in self.interchangeable if name in group), name)


@dataclass(frozen=True)
class Plan:
    """What a run would send, for ``--dry-run`` and the cost check."""

    rows: int
    cached: int
    requests: int
    shards: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None

    def describe(self) -> str:
        """One line for people."""
        cost = "unknown cost" if self.cost_usd is None else f"~${self.cost_usd:.4f}"
        return (
            f"{self.rows} rows, {self.cached} cached, {self.requests} requests to send in "
            f"{self.shards} batch(es), ~{self.prompt_tokens} prompt + ~{self.completion_tokens} "
            f"completion tokens, {cost} at batch prices"
        )


@dataclass(frozen=True)
class Done:
    """What building one model did: rows in its table, a line for people, figures for machines,
    and whether its failed rows reach its thresholds (``warn`` or ``error``)."""

    rows: int | None
    message: str
    figures: Mapping[str, object]
    status: Literal["success", "warn", "error"] = "success"


@dataclass
class Session:
    """The state one build's steps share; each step reads and sets named fields."""

    job: Job
    db: Database
    options: EnrichOptions
    clock: Callable[[], datetime]
    started: datetime
    frame: Frame | None = None
    before: Counts | None = None
    shards: list[Shard] = field(default_factory=list)
    plan: Plan | None = None
    batch_ids: list[str] = field(default_factory=list)
    submitted: int = 0
    blocked_since: datetime | None = None  # the enqueued-token limit refused us, since then
    retry_at: datetime | None = None  # when to try again while refused and nothing is in flight
    backoff: float = 0.0  # seconds, doubling with each refusal up to the poll maximum
    client: BatchClient | None = None
    output_waits: dict[str, datetime] = field(default_factory=dict)  # batch id: first seen bare
    preview_limit: int | None = None  # a preview answers this many first rows, synchronously
    starting: str | None = None  # what this build starts from (see pipeline._skip_if_settled)
    mark: str | None = None  # where the ledger stood when the table was built from it

    @property
    def spec(self) -> EnrichSpec:
        """The model's resolved config."""
        return self.job.spec

    @property
    def rules(self) -> Rules:
        """What this run may claim."""
        return Rules(self.spec.max_attempts, self.options.run_id, self.options.resend, self.source)

    @property
    def source(self) -> str:
        """The API this build's answers come from (see :meth:`Job.source`)."""
        return self.job.source(self.options.api or ApiConfig.from_env())

    @property
    def batch(self) -> BatchSettings:
        """How this build shards and follows. The offline server has no enqueued-token limit: a
        tier's budget would only chop offline work into many small batches, each paying its own
        round of calls and statements. Offline shards are capped by lines instead, two at a time,
        since the server in this process holds the lines of its batches in memory."""
        if self.source != OFFLINE_SOURCE:
            return self.job.batch
        return dataclasses.replace(
            self.job.batch,
            enqueued_tokens={"default": NO_TOKEN_LIMIT},
            max_lines=min(self.job.batch.max_lines, OFFLINE_SHARD_LINES),
            batches_in_flight=2,
        )

    @property
    def salt(self) -> str:
        """What this build's request hashes mix in (see :func:`client.hash_salt`)."""
        return hash_salt(self.source)

    def refused_for_tokens(self, now: datetime) -> None:
        """The enqueued-token limit refused a batch: back off, capped, and remember since when."""
        low, high = self.poll_bounds
        self.backoff = min(max(self.backoff * 2, low), high)
        self.blocked_since = self.blocked_since or now
        self.retry_at = now + timedelta(seconds=self.backoff)

    def accepted(self) -> None:
        """A batch of ours was accepted: the token limit no longer holds us back."""
        self.blocked_since = self.retry_at = None
        self.backoff = 0.0

    @property
    def poll_bounds(self) -> tuple[float, float]:
        """Seconds between polls: from the first, doubling while nothing changes, to the second."""
        batch = self.job.batch
        return self.options.poll_seconds or (batch.poll_min_seconds, batch.poll_max_seconds)

    def api(self) -> BatchClient:
        """The API client, made on first use (a dry run never needs a key)."""
        if self.client is None:
            api = self.options.api or ApiConfig.from_env()
            self.client = BatchClient(api, self.options.wording.offline)
        return self.client

    def check_stop(self) -> None:
        """Stop here if the run was interrupted: nothing more is sent or merged."""
        if self.options.should_stop is not None and self.options.should_stop():
            raise Interrupted(INTERRUPTED)

    def waiting(self, seconds: float) -> AbstractContextManager[None]:
        """Around a wait: a long one lets go of the database file, so other processes can read."""
        return self.db.released() if seconds >= LONG_WAIT_SECONDS else nullcontext()

    def transferring(self, lines: int) -> AbstractContextManager[None]:
        """Around an upload or a download: a large one lets go of the database file."""
        return self.db.released() if lines >= LARGE_TRANSFER_LINES else nullcontext()

    def counts(self) -> Counts:
        """Where the model's rows stand now (see :func:`request_lines.counts`)."""
        assert self.frame is not None
        return request_lines.counts(self.db, self.frame, self.options.run_id, self.source)

    def close(self) -> None:
        """Close the API client's connections and drop the working tables."""
        if self.client is not None:
            self.client.close()
        if self.frame is not None:
            request_lines.drop_work(self.db, self.frame)

    def step(self, name: str) -> None:
        """A named point of the pipeline has passed (crash tests stop here)."""
        if self.options.on_step is not None:
            self.options.on_step(name)

    def say(self, text: str) -> None:
        """Tell whoever watches."""
        self._emit(EnrichEvent(self.job.name, text))

    def report(self, state: BatchState, text: str) -> None:
        """Tell whoever watches about one batch."""
        self._emit(
            EnrichEvent(
                self.job.name,
                text,
                state.id,
                state.status,
                state.completed,
                state.failed,
                state.total,
            )
        )

    def _emit(self, event: EnrichEvent) -> None:
        if self.options.on_event is not None:
            self.options.on_event(event)
