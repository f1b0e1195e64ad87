"""The Files and Batches the server holds, and the lifecycle that moves each batch along.

Time is read from an injected clock. :meth:`Engine.tick` brings every batch up to the clock's
present, so the same calls give the same results whether the server is polled every second or once
a day; every timestamp is the moment the step would have happened, never later than now.

Two locks: ``_lock`` guards the tables of files and batches (and the faults), and is only ever held
briefly; ``_ticking`` is held while batches move along, their lines read, answered and written
(seconds, for big batches). Only what reads or changes a batch's state waits for a tick (retrieve,
list, cancel): uploads, creates and downloads go on meanwhile, as they do at the real API. Always
take ``_ticking`` before ``_lock``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import string
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from . import bulk_replies
from .bodies import BodyCheck
from .bulk import Bulk, Work
from .bulk_replies import Answer
from .clock import Clock
from .config import Faults, ServerConfig
from .objects import batch_object, check_create, file_object, page, public_file
from .offline import respond as offline_respond
from .outcomes import distort, gone, line_faults, usage
from .replies import ApiError, LineError, Reply, error_reply
from .store import Store, body_hash

Respond = Callable[[str, Mapping[str, Any], float], Reply]

ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
THIRTY_DAYS = 30 * 86_400
_BASE62 = string.ascii_letters + string.digits
_EXPIRED = LineError(
    "batch_expired", "This request could not be executed before the completion window expired."
)
_CANCELLED = LineError("batch_cancelled", "The batch was cancelled before this request executed.")
_TIMEOUT = bulk_replies.TIMEOUT
_SERVER_ERROR = "The server had an error while processing your request."


def new_file_id() -> str:
    """A new id shaped like OpenAI's: ``file-`` and 22 base62 characters."""
    return "file-" + "".join(secrets.choice(_BASE62) for _ in range(22))


class Engine:
    """Every operation of the Files and Batches API, over a :class:`Store`, thread-safe."""

    def __init__(self, config: ServerConfig, clock: Clock, respond: Respond) -> None:
        self.config, self.clock, self.respond = config, clock, respond
        self.faults = config.faults
        self.bodies = BodyCheck()  # a body the API would refuse never reaches the responder
        self.store = Store(config.data_dir)
        # The offline responder's answers come from SQL for whole shapes of requests at once.
        self.sql_answers = respond is offline_respond
        self.bulk = Bulk(self.store)
        self._lock = threading.RLock()
        self._ticking = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=max(config.concurrency, 1))
        self._files = {f["id"]: f for f in self.store.files()}
        self._batches = {r["batch"]["id"]: r for r in self.store.batches()}
        for record in self._batches.values():
            record["executed"] = self.store.count_results(record["batch"]["id"])
        seqs = [r["seq"] for r in self._batches.values()] + [
            f.get("_seq", 0) for f in self._files.values()
        ]
        self._seq = max(seqs, default=0)

    def close(self) -> None:
        """Stop the worker threads and let go of the lines in flight."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._ticking:
            self.bulk.close()

    def set_faults(self, **changes: Any) -> Faults:
        """Switch faults on or off from now on; returns the faults in force."""
        with self._lock:
            self.faults = dataclasses.replace(self.faults, **changes)
            return self.faults

    def take_http_fault(self) -> int | None:
        """The status to answer the current HTTP call with, when an HTTP fault is pending."""
        with self._lock:
            return self.faults.http_error_status if self._count_down("http_error_calls") else None

    def take_stall(self) -> float:
        """Seconds the current call should wait before answering (a pending stall fault)."""
        with self._lock:
            return self.faults.stall_seconds if self._count_down("stall_calls") else 0.0

    def take_reset_download(self) -> bool:
        """Whether the current download should stop halfway (a pending reset fault)."""
        with self._lock:
            return self._count_down("reset_downloads")

    def take_lost_answer(self) -> int | None:
        """After a create was carried out: None to answer it, else the status that replaces the
        answer, 0 meaning the connection drops (a pending ``drop_after_create`` fault)."""
        with self._lock:
            if not self._count_down("drop_after_create"):
                return None
            return self.faults.drop_after_create_status

    def _count_down(self, name: str) -> bool:
        """Whether counted fault `name` applies now, using one up; a negative count never runs out
        (a persistent fault). Call with the lock held."""
        left = int(getattr(self.faults, name))
        if left > 0:
            used: dict[str, Any] = {name: left - 1}
            self.faults = dataclasses.replace(self.faults, **used)
        return left != 0

    # Files

    def upload(
        self, filename: str, purpose: str, source: BinaryIO, size: int, expires_after: int | None
    ) -> dict[str, Any]:
        """Store an uploaded file and return its File object."""
        limits = self.config.limits
        if purpose not in ("assistants", "batch", "fine-tune", "vision", "user_data", "evals"):
            raise ApiError(
                400, f"Invalid value for 'purpose': {purpose!r}.", "purpose", "invalid_value"
            )
        if purpose == "batch" and not filename.endswith(limits.batch_file_suffix):
            raise ApiError(
                400,
                "Invalid file format for Batch API. Must be .jsonl",
                "file",
                "invalid_file_format",
            )
        if purpose == "batch" and size > limits.max_file_bytes:
            raise ApiError(
                400,
                f"File is too large: {size} bytes; the Batch API accepts files up to "
                f"{limits.max_file_bytes} bytes.",
                "file",
                "file_too_large",
            )
        now = int(self.clock())
        lifetime = expires_after or (THIRTY_DAYS if purpose == "batch" else None)
        with self._lock:
            self._seq += 1
            meta = file_object(new_file_id(), filename, purpose, size, now, lifetime) | {
                "_seq": self._seq
            }
        self.store.put_file(meta, source=source)  # no one knows its id yet: no lock needed
        with self._lock:
            self._files[meta["id"]] = meta
        return public_file(meta)

    def get_file(self, file_id: str) -> dict[str, Any]:
        """A File object, or 404."""
        with self._lock:
            if file_id not in self._files:
                raise ApiError(404, f"No such File object: {file_id}", "id", None)
            return public_file(self._files[file_id])

    def list_files(
        self, purpose: str | None, order: str, limit: int, after: str | None
    ) -> dict[str, Any]:
        """Files, newest first (or oldest first), after a cursor."""
        with self._lock:
            files = [f for f in self._files.values() if purpose is None or f["purpose"] == purpose]
        files.sort(key=lambda f: (f["created_at"], f.get("_seq", 0)), reverse=order == "desc")
        return page([public_file(f) for f in files], limit, after)

    def delete_file(self, file_id: str) -> dict[str, Any]:
        """Delete a file."""
        # A batch still to read its input file keeps it until it has read it.
        reading = self._ticking if self._read_by_active_batch(file_id) else contextlib.nullcontext()
        with reading, self._lock:
            self.get_file(file_id)
            self.store.delete_file(file_id)
            del self._files[file_id]
        return {"id": file_id, "object": "file", "deleted": True}

    def _read_by_active_batch(self, file_id: str) -> bool:
        with self._lock:
            records = list(self._batches.values())
        return any(
            r["batch"]["input_file_id"] == file_id and r["batch"]["status"] in ACTIVE
            for r in records
        )

    def file_content(self, file_id: str) -> Path:
        """Where a file's bytes are."""
        self.get_file(file_id)
        return self.store.file_path(file_id)

    # Batches

    def create_batch(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Create a batch in ``validating``; bad parameters are a 400, bad lines fail it later."""
        check_create(params)
        exact = self.clock()
        now = int(exact)
        with self._lock:
            self._seq += 1
            # A batch takes at most one forced failure, so queued faults fail batches in turn.
            invalid_file = self._count_down("invalid_file_batches")
            force_limit = not invalid_file and self._count_down("token_limit_batches")
            batch = batch_object(params, now, self.config.timing.window)
            record = {
                "batch": batch,
                "seq": self._seq,
                "faults": dataclasses.asdict(self.faults),
                "force_token_limit": force_limit,
                "force_invalid_file": invalid_file,
                "lines": 0,
                "executed": 0,
                "tokens": 0,
                "line_faults": {},
                # Exact server times of each step (the Batch's timestamps round down), and when a
                # retrieve first showed the batch ended ("seen"): the server's record of scheduling.
                "at": {"created": exact},
                "retrieves": 0,
                "null_polls_left": 0,
                "output_expires_after": (params.get("output_expires_after") or {}).get("seconds"),
            }
            self._batches[batch["id"]] = record
            self.store.put_batch(record)
            return dict(batch)

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        """A Batch object as of now, or 404."""
        with self._ticking:
            self.tick()
            record = self._visible(batch_id)
            record["retrieves"] += 1
            if record["batch"]["status"] not in ACTIVE:
                record["at"].setdefault("seen", self.clock())
            batch = dict(record["batch"])
            if batch["status"] == "completed" and record["null_polls_left"] > 0:
                record["null_polls_left"] -= 1
                batch["output_file_id"] = None
            self.store.put_batch(record)
            return batch

    def list_batches(self, limit: int, after: str | None) -> dict[str, Any]:
        """Batches, newest first, after a cursor."""
        with self._ticking:
            self.tick()
            with self._lock:
                records = [r for r in self._batches.values() if not gone(r)]
            records.sort(key=lambda r: r["seq"], reverse=True)
            return page([dict(r["batch"]) for r in records], limit, after)

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        """Start cancelling; 409 for a batch already finished."""
        with self._ticking:
            self.tick()
            record = self._visible(batch_id)
            batch = record["batch"]
            if batch["status"] in ("completed", "failed", "expired"):
                raise ApiError(409, f"Cannot cancel a batch with status '{batch['status']}'.")
            if batch["status"] not in ("cancelling", "cancelled"):
                record["at"]["cancelling"] = self.clock()
                batch.update(status="cancelling", cancelling_at=int(record["at"]["cancelling"]))
                self.store.put_batch(record)
            return dict(batch)

    def _visible(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._batches.get(batch_id)
        if record is None or gone(record):
            raise ApiError(404, f"No batch found with id '{batch_id}'.")
        return record

    def requests_received(self) -> list[dict[str, Any]]:
        """The server's record of every request it ran: batch id, custom_id, body hash."""
        return self.store.executions()

    def respond_now(self, url: str, body: Mapping[str, Any]) -> Reply:
        """Answer a synchronous request with the batch responder."""
        if body.get("stream"):
            return error_reply(
                400, "Streaming is not supported by the local server.", "stream", None
            )
        refused = self.bodies.check(url, body)
        if refused is not None:
            return refused
        limits = self.config.limits
        if limits.models and body.get("model") not in limits.models:
            return error_reply(
                404, f"The model '{body.get('model')}' does not exist.", "model", "model_not_found"
            )
        reply = self.respond(url, body, self.clock())
        self.store.log_executions(
            [{"batch_id": None, "custom_id": None, "body_sha256": body_hash(body)}]
        )
        return reply

    # Lifecycle

    def tick(self) -> None:
        """Bring every unfinished batch up to the clock's present."""
        with self._ticking:
            with self._lock:
                now = self.clock()
                records = list(self._batches.values())
            for record in records:
                if record["batch"]["status"] in ACTIVE:
                    before = json.dumps(record)
                    self._advance(record, now)
                    if json.dumps(record) != before:  # most ticks move nothing: skip the write
                        self.store.put_batch(record)

    def _advance(self, record: dict[str, Any], now: float) -> None:
        batch, timing = record["batch"], self.config.timing
        if batch["status"] == "validating" and now >= batch["created_at"] + timing.validating:
            self._validate(record, batch["created_at"] + timing.validating)
        if batch["status"] == "in_progress":
            self._run(record, now)
        slow = record["faults"]["slow_finalizing"]
        if (
            batch["status"] == "finalizing"
            and now >= record["at"]["finalizing"] + timing.finalizing + slow
        ):
            self._finish(record, "completed", record["at"]["finalizing"] + timing.finalizing + slow)
        cancelled_at = record["at"].get("cancelling", now) + timing.cancelling
        if batch["status"] == "cancelling" and now >= cancelled_at:
            self._finish(record, "cancelled", cancelled_at)

    def _validate(self, record: dict[str, Any], at: float) -> None:
        batch = record["batch"]
        with self._lock:
            source = self._files.get(batch["input_file_id"])
        if source is None or source["purpose"] != "batch":
            return self._fail(record, at, [_missing_input(batch["input_file_id"])])
        if record.get("force_invalid_file"):  # absent from batches stored by older servers
            return self._fail(record, at, [_unreadable_input(source["id"])])
        path, limits = self.store.file_path(source["id"]), self.config.limits
        loaded = self.bulk.load(batch["id"], path, batch["endpoint"], limits)
        if loaded.errors:
            return self._fail(record, at, loaded.errors)
        model, tokens = loaded.model, loaded.tokens
        if record["force_token_limit"] or self._over_token_limit(model, tokens):
            self.bulk.forget(batch["id"])
            return self._fail(
                record, at, [_token_limit(model, limits.enqueued_token_limit or tokens)]
            )
        record["at"]["in_progress"] = at
        record.update(
            lines=loaded.lines,
            tokens=tokens,
            model=model,
            line_faults=line_faults(record, loaded.lines, self.config.seed),
        )
        batch.update(
            status="in_progress",
            in_progress_at=int(at),
            model=model,
            request_counts={"total": loaded.lines, "completed": 0, "failed": 0},
        )

    def _over_token_limit(self, model: str, tokens: int) -> bool:
        limit = self.config.limits.enqueued_token_limit
        if limit is None:
            return False
        with self._lock:
            records = list(self._batches.values())
        queued = sum(
            r["tokens"]
            for r in records
            if r.get("model") == model and r["batch"]["status"] in ("in_progress", "finalizing")
        )
        return bool(queued + tokens > limit)

    def _fail(self, record: dict[str, Any], at: float, errors: list[dict[str, Any]]) -> None:
        record["batch"].update(
            status="failed", failed_at=int(at), errors={"object": "list", "data": errors}
        )

    def _run(self, record: dict[str, Any], now: float) -> None:
        batch, per_line = record["batch"], self.config.timing.per_line
        start, total = record["at"]["in_progress"], record["lines"]
        horizon = min(now, batch["expires_at"])
        due = total if per_line <= 0 else min(total, int((horizon - start) / per_line))
        expire_share = record["faults"]["expire_after_fraction"]
        stop_at = int(total * expire_share) if expire_share is not None else None
        if stop_at is not None:
            due = min(due, stop_at)
        self._execute(record, record["executed"], due, now)
        if stop_at is not None and record["executed"] >= stop_at:
            return self._finish(record, "expired", min(now, start + stop_at * per_line))
        if now >= batch["expires_at"] and record["executed"] < total:
            return self._finish(record, "expired", batch["expires_at"])
        if record["executed"] >= total:
            record["at"]["finalizing"] = min(now, start + total * per_line)
            batch.update(status="finalizing", finalizing_at=int(record["at"]["finalizing"]))

    def _execute(self, record: dict[str, Any], first: int, last: int, now: float) -> None:
        if self.config.responder == "forward":
            # Upstream calls are slow: a few rounds per tick keep the server answering meanwhile.
            last = min(last, first + 4 * max(self.config.concurrency, 1))
        if last <= first:
            return
        batch = record["batch"]
        self._ensure(record)
        url, status = batch["endpoint"], int(record["faults"]["fail_status"])
        kinds = {
            int(i): kind for i, kind in record["line_faults"].items() if first <= int(i) < last
        }
        fail = error_reply(status, _SERVER_ERROR, None, None) if kinds else None
        work = Work(
            kinds,
            plan=lambda shape: self._plan(url, shape, fail, now),
            answer=lambda lines: list(
                self._pool.map(lambda x: self._answer(url, x[0], x[1], status, now), lines)
            ),
        )
        ok, ran = self.bulk.execute(batch["id"], first, last, work)
        record["executed"] = last
        counts = batch["request_counts"]
        counts.update(completed=counts["completed"] + ok, failed=counts["failed"] + ran - ok)

    def _plan(
        self, url: str, shape: Mapping[str, Any], fail: Reply | None, now: float
    ) -> Answer | None:
        """SQL answering every line of this shape, when the offline responder answers and the
        API would accept it (a refused body is answered line by line, with its own error);
        `fail` is the reply of a ``fail`` fault, None when no line has a fault."""
        if not self.sql_answers or self.bodies.check(url, shape) is not None:
            return None
        return bulk_replies.answer(url, shape, self.respond(url, shape, now), fail, now)

    def _answer(
        self, url: str, line: Mapping[str, Any], kind: str | None, fail_status: int, now: float
    ) -> Reply | LineError:
        # The real API answers a body it refuses in the line's result, and runs the rest.
        refused = self.bodies.check(url, line["body"])
        if refused is not None:
            return refused
        if kind == "fail":
            return error_reply(fail_status, _SERVER_ERROR, None, None)
        if kind == "timeout":
            return _TIMEOUT
        if kind == "zero":
            return Reply(0, {})
        return distort(kind, self.respond(url, line["body"], now))

    def _ensure(self, record: dict[str, Any]) -> None:
        """The batch's lines, read again after a restart."""
        batch = record["batch"]
        path = self.store.file_path(batch["input_file_id"])
        self.bulk.ensure(batch["id"], path, batch["endpoint"], self.config.limits)

    def _finish(self, record: dict[str, Any], status: str, at: float) -> None:
        batch, faults = record["batch"], record["faults"]
        if record["lines"]:
            self._ensure(record)
        output_id, error_id = new_file_id(), new_file_id()
        done = self.bulk.finish(
            batch["id"],
            (record["executed"], record["lines"]),
            _EXPIRED if status == "expired" else _CANCELLED,
            faults["lost_fraction"],
            f"{self.config.seed}:{batch['id']}",
            (self.store.file_path(output_id), self.store.file_path(error_id)),
        )
        if faults["malformed_output_line"] and done.completed:
            with self.store.file_path(output_id).open("a") as out:
                out.write('{"id": "batch_req_broken", "custom_id": "\n')
        expiry = record["output_expires_after"] or THIRTY_DAYS
        output = self._register(output_id, f"{batch['id']}_output.jsonl", at, expiry)
        errors = self._register(error_id, f"{batch['id']}_error.jsonl", at, expiry)
        if errors is None and faults["empty_error_file_id"]:
            errors = ""
        counts = {"total": record["lines"], "completed": done.completed, "failed": done.failed}
        if faults["wrong_request_counts"]:
            counts = {"total": record["lines"], "completed": record["lines"], "failed": 0}
        batch.update(
            status=status,
            output_file_id=output,
            error_file_id=errors,
            request_counts=counts,
            usage=usage(done.prompt_tokens, done.completion_tokens),
            **{f"{status}_at": int(at)},
        )
        record["at"].update({status: at, "written": self.clock()})
        record["null_polls_left"] = faults["null_output_polls"] if status == "completed" else 0
        self.bulk.forget(batch["id"])

    def _register(self, file_id: str, filename: str, at: float, expiry: int) -> str | None:
        """The File object of an output file written at its place, if it was written."""
        path = self.store.file_path(file_id)
        if not path.exists():
            return None
        size = path.stat().st_size
        with self._lock:
            self._seq += 1
            meta = file_object(file_id, filename, "batch_output", size, int(at), expiry)
            self.store.put_file_meta(meta | {"_seq": self._seq})
            self._files[file_id] = meta | {"_seq": self._seq}
        return file_id


def _file_error(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """A validation error about the whole input file: no line to blame."""
    return {"code": code, "message": message, "param": param, "line": None}


def _missing_input(file_id: str) -> dict[str, Any]:
    return _file_error(
        "invalid_request",
        f"Cannot find file {file_id}, or it was not uploaded with purpose 'batch'.",
        "input_file_id",
    )


def _unreadable_input(file_id: str) -> dict[str, Any]:
    # The real API's wording for file-level failures varies and is not documented; this follows
    # its style: what went wrong, with the file's id, and no line number.
    return _file_error(
        "invalid_request",
        f"The input file {file_id} could not be processed: it is not a valid JSONL file of "
        "batch requests. Check the file's encoding and format, upload it again and create a new "
        "batch.",
    )


def _token_limit(model: str, limit: int) -> dict[str, Any]:
    return _file_error(
        "token_limit_exceeded",
        f"Enqueued token limit reached for {model} in organization org-local. Limit: "
        f"{limit:,} enqueued tokens. Please try again once some in_progress batches have been "
        "completed.",
    )
