"""Talking to an OpenAI-compatible API: the only module that imports the openai SDK.

:class:`BatchClient` is what enrich needs of the Files and Batches APIs, returning plain
:class:`BatchState` records so nothing else sees SDK types. SDK errors become :class:`ApiError`
with a message that says what to do and never contains the key.

Reads (retrieve, list, download) keep the SDK's own retries. Calls that create something (file
upload, batch create) are made with ``max_retries=0``: the SDK sends no idempotency key, so its
retry of a POST that reached the server creates a second object. A create that fails in a way
that may have acted (no answer, 408/409/429/5xx) raises an ``ApiError`` with ``ambiguous=True``;
the caller reconciles with :meth:`BatchClient.find_batch` / :meth:`BatchClient.find_file`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NO_ROOM_ERRNOS, ApiError, no_room

if TYPE_CHECKING:
    import openai

# The SDK is imported when first needed (it takes most of a second), so commands that never
# talk to an API start fast. It is still imported nowhere but here.

DEFAULT_TIMEOUT = 600.0
OPENAI_BASE_URL = "https://api.openai.com/v1"
OFFLINE_SOURCE = "offline"  # what `enrich run --offline` answers count as coming from


def hash_salt(source: str) -> str:
    """What a request's hash mixes in besides what is sent: for the offline server's
    placeholders, their source, so they live beside real answers in the ledger instead of in
    their place (switching back and forth never overwrites a paid answer); nothing otherwise."""
    return source if source == OFFLINE_SOURCE else ""


# How far the API's clock may be behind ours when looking back for a batch or file we created.
CLOCK_SLACK = 3600.0
# Statuses after which a create may still have happened on the server.
_MAYBE_ACTED = frozenset({408, 409, 429})
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True)
class ApiConfig:
    """Where requests go. The key is kept out of ``repr`` so it cannot reach a log or traceback."""

    base_url: str | None = None  # None: the SDK's default (or OPENAI_BASE_URL)
    api_key: str | None = field(default=None, repr=False)
    max_retries: int = 2
    timeout: float = DEFAULT_TIMEOUT
    strict: bool = False  # validate every response against the SDK's types (tests)
    # Where answers come from, when the base URL does not say: "offline" for the local server
    # that --offline starts on a new port each time. Answers are reused only from the same source.
    answers_from: str | None = None

    @property
    def source(self) -> str:
        """The API answers come from: ``answers_from``, else the base URL."""
        return self.answers_from or (self.base_url or OPENAI_BASE_URL).rstrip("/")

    @classmethod
    def from_env(cls) -> ApiConfig:
        """``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``, read now."""
        return cls(os.environ.get("OPENAI_BASE_URL") or None, os.environ.get("OPENAI_API_KEY"))


@dataclass(frozen=True)
class BatchState:
    """What enrich keeps of a Batch object."""

    id: str
    status: str
    input_file_id: str
    output_file_id: str | None
    error_file_id: str | None
    total: int
    completed: int
    failed: int
    errors: tuple[Mapping[str, Any], ...]
    created_at: int
    metadata: Mapping[str, str]

    @property
    def done(self) -> bool:
        """The batch will not change any more."""
        return self.status in TERMINAL


def make_client(
    base_url: str | None,
    api_key: str | None,
    max_retries: int = 2,
    timeout: float = DEFAULT_TIMEOUT,
    strict: bool = False,
) -> openai.OpenAI:
    """An SDK client; None falls back to the SDK's own OPENAI_BASE_URL / OPENAI_API_KEY handling."""
    import openai

    return openai.OpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=max_retries,
        timeout=timeout,
        _strict_response_validation=strict,
    )


class BatchClient:
    """Upload, create, follow and download batches; answer single requests for previews."""

    def __init__(
        self,
        config: ApiConfig,
        offline_hint: str = "run with --offline to use the local Batch API server",
    ) -> None:
        if not config.api_key:
            raise ApiError(f"OPENAI_API_KEY is not set; export it, or {offline_hint}")
        self._sdk = make_client(
            config.base_url, config.api_key, config.max_retries, config.timeout, config.strict
        )
        self.base_url = str(self._sdk.base_url).rstrip("/")

    def close(self) -> None:
        """Close the HTTP connections."""
        self._sdk.close()

    def upload(self, path: Path) -> str:
        """Upload a JSONL file for batch use; returns its file id."""
        once = self._sdk.with_options(max_retries=0)
        with self._calling(f"uploading {path.name}", creates=True), path.open("rb") as handle:
            return once.files.create(file=handle, purpose="batch").id

    def create(self, input_file_id: str, endpoint: str, metadata: Mapping[str, str]) -> BatchState:
        """Create a batch over an uploaded file, with a 24h completion window."""
        once = self._sdk.with_options(max_retries=0)
        with self._calling("creating a batch", creates=True):
            batch = once.batches.create(
                input_file_id=input_file_id,
                endpoint=endpoint,  # type: ignore[arg-type]
                completion_window="24h",
                metadata=dict(metadata),
            )
        return _state(batch)

    def retrieve(self, batch_id: str) -> BatchState:
        """The batch as it is now."""
        with self._calling(f"reading batch {batch_id}", batch_id):
            return _state(self._sdk.batches.retrieve(batch_id))

    def find_batch(self, key: str, value: str, since: float) -> BatchState | None:
        """The batch whose metadata has ``key: value``, looking back to `since` (unix seconds).

        Batches are listed newest first, a page at a time, until one was created before `since`
        (less :data:`CLOCK_SLACK`), however many batches the account holds.
        """
        with self._calling("listing batches"):
            for batch in self._sdk.batches.list(limit=100):
                if (batch.metadata or {}).get(key) == value:
                    return _state(batch)
                if batch.created_at < since - CLOCK_SLACK:
                    return None
        return None

    def find_file(self, filename: str, since: float) -> str | None:
        """The id of a batch input file named `filename`, uploaded since `since` (unix seconds)."""
        with self._calling("listing files"):
            for item in self._sdk.files.list(purpose="batch", order="desc", limit=1000):
                if item.filename == filename:
                    return item.id
                if item.created_at < since - CLOCK_SLACK:
                    return None
        return None

    def cancel(self, batch_id: str) -> BatchState:
        """Ask the API to stop a batch."""
        with self._calling(f"cancelling batch {batch_id}", batch_id):
            return _state(self._sdk.batches.cancel(batch_id))

    def download(self, file_id: str, path: Path) -> Path:
        """Stream a file's content to `path` (written whole or not at all)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        try:
            with (
                self._calling(f"downloading file {file_id}"),
                self._sdk.files.with_streaming_response.content(file_id) as response,
            ):
                response.stream_to_file(tmp)
            tmp.replace(path)
        except OSError as err:
            if err.errno in NO_ROOM_ERRNOS:
                raise no_room(str(path.parent), err.strerror or str(err)) from err
            raise
        finally:
            tmp.unlink(missing_ok=True)  # a partial download is never kept
        return path

    def delete_file(self, file_id: str) -> None:
        """Delete an uploaded file that is no longer needed; a file already gone is fine."""
        import openai

        try:
            self._sdk.files.delete(file_id)
        except openai.NotFoundError:
            return
        except openai.OpenAIError as err:
            raise _api_error(err, f"deleting file {file_id}", self.base_url) from err

    def respond(self, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One synchronous request (``/v1/chat/completions`` …), its response body as JSON.

        Sent once: a retried call that had reached the model would be paid for twice."""
        once = self._sdk.with_options(max_retries=0)
        with self._calling(f"calling {url}"):
            answer = once.post(url.removeprefix("/v1"), body=dict(body), cast_to=object)
        return answer if isinstance(answer, dict) else {}

    @contextmanager
    def _calling(
        self, doing: str, batch_id: str | None = None, creates: bool = False
    ) -> Iterator[None]:
        import httpx2  # the SDK's transport: a streamed download can fail outside its calls
        import openai

        try:
            yield
        except openai.OpenAIError as err:
            error = _api_error(err, doing, self.base_url, batch_id)
            error.ambiguous = creates and (error.status is None or _maybe_acted(error.status))
            raise error from err
        except httpx2.TransportError as err:  # e.g. the connection dropped mid-download
            error = ApiError(
                f"the connection to {self.base_url} failed while {doing} "
                f"({err.__class__.__name__}); run again: nothing sent is lost"
            )
            error.ambiguous = creates
            raise error from err


def _maybe_acted(status: int) -> bool:
    return status >= 500 or status in _MAYBE_ACTED


def _state(batch: Any) -> BatchState:
    counts = batch.request_counts
    errors = batch.errors.data if batch.errors and batch.errors.data else []
    return BatchState(
        id=batch.id,
        status=batch.status,
        input_file_id=batch.input_file_id,
        output_file_id=batch.output_file_id or None,
        error_file_id=batch.error_file_id or None,
        total=counts.total if counts else 0,
        completed=counts.completed if counts else 0,
        failed=counts.failed if counts else 0,
        errors=tuple(
            {"code": e.code, "message": e.message, "line": e.line, "param": e.param} for e in errors
        ),
        created_at=batch.created_at,
        metadata=dict(batch.metadata or {}),
    )


def _api_error(
    err: openai.OpenAIError, doing: str, base_url: str, batch_id: str | None = None
) -> ApiError:
    import openai

    if isinstance(err, openai.AuthenticationError):
        return ApiError(
            f"{base_url} rejected the API key while {doing} (401); check OPENAI_API_KEY",
            status=401,
        )
    if isinstance(err, openai.NotFoundError) and batch_id:
        return ApiError(
            f"batch {batch_id} is not found at {base_url} (404): it belongs to another API key, "
            "project or base URL; run again with the key it was created with (its state is kept)",
            status=404,
        )
    if isinstance(err, openai.APIStatusError):
        return ApiError(
            f"{base_url} answered {err.status_code} while {doing}: {err.message}",
            status=err.status_code,
        )
    if isinstance(err, openai.APIConnectionError):
        return ApiError(
            f"cannot reach {base_url} while {doing} ({err.__class__.__name__}); check "
            "OPENAI_BASE_URL and the network, then run again: nothing sent is lost"
        )
    return ApiError(f"{doing} failed: {err}")


def post_raw(base_url: str, api_key: str | None) -> Callable[[str, Mapping[str, Any]], RawReply]:
    """A function posting a body to a path of an OpenAI-compatible server, once, and returning
    its status and JSON body whatever they are; an unreachable server is status 0."""
    client = make_client(base_url, api_key or "none", max_retries=0)

    def post(url: str, body: Mapping[str, Any]) -> RawReply:
        import openai

        try:
            answer = client.post(url.removeprefix("/v1"), body=dict(body), cast_to=object)
        except openai.APIStatusError as err:
            return RawReply(err.status_code, _error_json(err))
        except openai.APIConnectionError as err:
            return RawReply(0, {"error": {"message": f"{base_url} could not be reached: {err}"}})
        return RawReply(200, answer)

    return post


@dataclass(frozen=True)
class RawReply:
    """What an upstream server answered: its HTTP status (0: no answer) and its JSON body."""

    status: int
    body: Any


def _error_json(err: openai.APIStatusError) -> Any:
    try:
        return err.response.json()
    except ValueError:
        return {"error": {"message": err.message}}
