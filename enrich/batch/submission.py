"""Sending one shard: record and claim, write, upload, create; every step recorded first.

The order is what makes a crash or an ambiguous failure safe at any line: the submission and its
claimed requests are in the ledger before its file exists; the file id before the batch is
created; the batch id as soon as it is known. A create that fails after it may have acted (no
answer, or 408/409/429/5xx) is reconciled at once: the upload by file name, the batch by the
``enrich_submission`` id in its metadata. When the API cannot even be asked, the submission is
left ``unresolved`` for the next run's recovery, which settles it before sending anything.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import ApiError
from . import lifecycle, request_lines
from .lifecycle import Submission
from .recovery import METADATA_KEY, epoch
from .request_lines import Shard
from .session import Session

T = TypeVar("T")


def submit(session: Session, shard: Shard) -> None:
    """Send one shard as a batch (or nothing, when other submissions hold all its requests)."""
    record, lines = _record(session, shard)
    if lines == 0:
        lifecycle.close(session.db, record.submission_id, session.clock())
        return
    session.step("submission_recorded")
    assert session.frame is not None
    path = Path(record.input_path)
    partial = None if lines == shard.lines else record.submission_id
    request_lines.write_shard(session.db, session.frame, shard, path, partial)
    session.step("shard_written")
    with session.transferring(lines):  # a large upload takes minutes: readers may have the file
        file_id = _upload(session, record)
    session.step("uploaded")
    lifecycle.uploaded(session.db, record.submission_id, file_id, session.api().base_url)
    session.step("upload_recorded")
    session.check_stop()  # an upload is free; the batch is what costs: not after Ctrl-C
    _create(session, record, file_id)
    session.submitted += lines


def _record(session: Session, shard: Shard) -> tuple[Submission, int]:
    submission_id = uuid.uuid4().hex
    spec = session.spec
    record = Submission(
        submission_id=submission_id,
        node=session.job.name,
        model=spec.model,
        endpoint=spec.endpoint.url,
        shard_hash=shard.shard_hash,
        input_path=str(session.job.folder / f"{submission_id}.jsonl"),
        status=lifecycle.PREPARING,
        lines=shard.lines,
        estimated_tokens=shard.tokens,
        created_at=session.clock(),
        run_id=session.options.run_id,
    )
    rows = (shard.first, shard.last, shard.ledger_end)
    claim = lifecycle.record(session.db, record, rows, session.rules)
    return dataclasses.replace(
        record, lines=claim.lines, estimated_tokens=claim.tokens
    ), claim.lines


def _upload(session: Session, record: Submission) -> str:
    client, path = session.api(), Path(record.input_path)
    try:
        return client.upload(path)
    except ApiError as err:
        found = _reconcile(
            session, record, err, lambda: client.find_file(path.name, _since(record))
        )
        if found is None:
            _give_back(session, record)
            raise
        return found


def _create(session: Session, record: Submission, file_id: str) -> None:
    client = session.api()
    metadata = {
        METADATA_KEY: record.submission_id,
        "enrich_model": record.node[:512],
        "enrich_shard": record.shard_hash,
    }
    try:
        state = client.create(file_id, record.endpoint, metadata)
    except ApiError as err:
        batch = _reconcile(
            session,
            record,
            err,
            lambda: client.find_batch(METADATA_KEY, record.submission_id, _since(record)),
        )
        if batch is None:
            client.delete_file(file_id)
            _give_back(session, record)
            raise
        state = batch
    session.step("created")
    lifecycle.created(session.db, record.submission_id, state.id, state.status, session.clock())
    session.step("created_recorded")
    session.batch_ids.append(state.id)
    session.report(state, f"submitted {record.lines} requests")


def _reconcile(
    session: Session, record: Submission, err: ApiError, look: Callable[[], T | None]
) -> T | None:
    """After a failed create: what it made anyway, if anything; None when it made nothing."""
    if not err.ambiguous:
        return None
    try:
        return look()
    except ApiError:
        lifecycle.unresolved(session.db, record.submission_id, session.clock())
        raise err from None


def _give_back(session: Session, record: Submission) -> None:
    record.discard_input()
    lifecycle.release(session.db, record.submission_id, session.clock())


def _since(record: Submission) -> float:
    return epoch(record.created_at)
