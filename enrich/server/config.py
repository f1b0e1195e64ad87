"""Settings of the local Batch API server, and the faults it can inject."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ProjectError
from ..suggest import did_you_mean

MB = 1024 * 1024


@dataclass(frozen=True)
class Timing:
    """How long each step of a batch takes, in server seconds (see the clock's time scale)."""

    validating: float = 0.5
    per_line: float = 0.0  # no delay per line unless asked for (realistic(), or a test)
    finalizing: float = 0.5
    cancelling: float = 0.5
    window: float = 86_400.0  # the 24h completion window

    @classmethod
    def instant(cls) -> Timing:
        """No delay at all: a batch has ended by the first look at it (``--offline``)."""
        return cls(validating=0.0, finalizing=0.0, cancelling=0.0)

    @classmethod
    def realistic(cls) -> Timing:
        """Delays like the real API's: seconds to validate, minutes to run, a long finalize."""
        return cls(validating=3.0, per_line=0.1, finalizing=120.0, cancelling=60.0)


@dataclass(frozen=True)
class Limits:
    """What the server accepts."""

    max_file_bytes: int = 200 * MB  # batch input files
    max_json_bytes: int = 20 * MB  # request bodies other than uploads
    max_lines: int = 50_000
    batch_file_suffix: str = ".jsonl"
    models: tuple[str, ...] = ()  # models the Batch API accepts; empty: any
    enqueued_token_limit: int | None = None  # per model, over batches not yet finished


@dataclass(frozen=True)
class Faults:
    """Field failures to inject (``../shared/docs/openai-batch-api.md`` §6); all off by default.

    Fractions pick lines deterministically from each batch; counts apply to the next batches or
    calls after they are set. A negative count (``*_calls``, ``*_batches``, ``reset_downloads``,
    ``drop_after_create``) makes the fault persistent: it hits every batch or call until it is set
    back to 0.
    """

    fail_fraction: float = 0.0  # lines answered with HTTP `fail_status`
    fail_status: int = 500
    timeout_fraction: float = 0.0  # lines failing with request_timeout (no HTTP response)
    status_zero_fraction: float = 0.0  # error lines with status_code 0 and an empty body
    truncated_fraction: float = 0.0  # finish_reason "length" with the JSON cut short
    refusal_fraction: float = 0.0  # the model refuses
    expire_after_fraction: float | None = None  # the batch expires once this share is done
    token_limit_batches: int = 0  # the next N batches fail with token_limit_exceeded
    invalid_file_batches: int = 0  # the next N batches fail: a file-level invalid_request
    http_error_calls: int = 0  # the next N HTTP calls (any endpoint) answer `http_error_status`
    http_error_status: int = 500
    reset_downloads: int = 0  # the next N file downloads stop halfway: the connection drops
    # The next N creates (POST /v1/files, /v1/batches) are carried out, but their answer is lost:
    # the connection drops (status 0) or the status is answered instead; the SDK's retry then
    # creates the object again (it sends no idempotency key).
    drop_after_create: int = 0
    drop_after_create_status: int = 0
    stall_calls: int = 0  # the next N HTTP calls answer only after `stall_seconds` (wall clock)
    stall_seconds: float = 30.0
    null_output_polls: int = 0  # a completed batch shows output_file_id null for N retrieves
    empty_error_file_id: bool = False  # "" instead of null when there is no error file
    malformed_output_line: bool = False  # one unparseable line in the output file
    lost_fraction: float = 0.0  # answered lines left out of both files, as if the API lost them
    wrong_request_counts: bool = False  # request_counts say every line succeeded
    disappear_after_polls: int | None = None  # batches 404 after N retrieves
    slow_finalizing: float = 0.0  # extra server seconds spent finalizing

    @classmethod
    def parse(cls, assignments: Sequence[str]) -> Faults:
        """Faults from ``NAME=VALUE`` strings, as given to ``enrich serve-local --fault``."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for assignment in assignments:
            name, _, raw = assignment.partition("=")
            if name not in fields:
                raise ProjectError(
                    f"unknown fault {name!r}{did_you_mean(name, fields)}; "
                    f"faults: {', '.join(sorted(fields))}"
                )
            values[name] = _convert(name, raw, str(fields[name].type))
        return cls(**values)


def _convert(name: str, raw: str, kind: str) -> Any:
    try:
        if kind.startswith("bool"):
            return raw.lower() in ("1", "true", "yes", "on", "")
        if kind.startswith("int"):
            return int(raw)
        return float(raw)
    except ValueError as err:
        raise ProjectError(f"fault {name}={raw!r}: expected a {kind.split(' ')[0]}") from err


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to start."""

    data_dir: Path
    api_key: str
    responder: str = "offline"  # "offline" or "forward"
    upstream: str | None = None  # base URL of an OpenAI-compatible server, for "forward"
    upstream_api_key: str | None = None
    concurrency: int = 8  # lines sent upstream at once by "forward"
    timing: Timing = field(default_factory=Timing)
    limits: Limits = field(default_factory=Limits)
    faults: Faults = field(default_factory=Faults)
    seed: int = 0  # shuffles output lines and picks faulty lines
