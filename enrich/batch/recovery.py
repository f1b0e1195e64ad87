"""Settling submissions an earlier run left half-done, before anything else is sent.

A submission recorded but without a batch id may or may not have become a batch: the run may have
died (or the API gone silent) between any two of record, upload, create and record again. The
batch is looked for by the ``enrich_submission`` id in its metadata, as far back as the
submission's own creation; found, it is followed like any other. Not found, it never existed: its
uploaded file (by recorded id, else by file name) is deleted, the local shard goes too, and its
requests are released, uncounted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ..errors import ApiError
from . import ledger, lifecycle
from .lifecycle import Submission
from .session import Session

METADATA_KEY = "enrich_submission"


def recover(session: Session) -> None:
    """Settle every submission of an earlier run that holds this model's requests and has no
    batch id yet; then remove files a crash left in the model's folder."""
    for record in ledger.open_submissions(session.db, session.job.name):
        if record.batch_id is None and record.run_id != session.options.run_id:
            settle(session, record)
    sweep(session)


def sweep(session: Session) -> None:
    """Delete request and answer files no open submission needs (a crash mid-write or
    mid-download leaves them; a file the API refused whole is kept until the next run)."""
    folder = session.job.folder
    if not folder.is_dir():
        return
    still_open = ledger.open_submissions(session.db, session.job.name)
    needed = {r.submission_id for r in still_open} | {r.batch_id for r in still_open if r.batch_id}
    for path in folder.iterdir():
        if path.is_file() and not any(name in path.name for name in needed):
            path.unlink(missing_ok=True)


def settle(session: Session, record: Submission) -> bool:
    """Find the batch `record` may have become; True if it exists (now recorded as created)."""
    client = session.api()
    sent_to = ledger.base_url(session.db, record.submission_id)
    if sent_to is not None and sent_to != client.base_url:
        # Its file went to another API: asking this one would wrongly conclude it never existed.
        raise ApiError(
            f"{session.spec.path}: an interrupted submission was uploaded to {sent_to}, not to "
            f"{client.base_url}; run again with OPENAI_BASE_URL (and the key) it was sent with, "
            "so it is settled there (its state is kept)"
        )
    since = epoch(record.created_at)
    found = client.find_batch(METADATA_KEY, record.submission_id, since)
    now = session.clock()
    if found is not None:
        lifecycle.created(session.db, record.submission_id, found.id, found.status, now)
        session.say(f"found batch {found.id}, created before an interruption; following it")
        return True
    file_id = record.input_file_id or client.find_file(Path(record.input_path).name, since)
    if file_id is not None:
        client.delete_file(file_id)
    record.discard_input()
    lifecycle.release(session.db, record.submission_id, now)
    return False


def epoch(moment: datetime) -> float:
    """Unix seconds of a ledger timestamp (stored in UTC, read back without a zone)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
