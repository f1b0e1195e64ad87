"""Reading a batch's state and, once it has ended, bringing its answers into the ledger.

A batch that ran (completed, expired, cancelled) has its output and error files streamed to disk,
read and classified (:mod:`.answers`) together with those of the batches seen ended beside it, and
merged on its own in one transaction under the write lock; its uploaded input file and local
files are then deleted. A batch the API refused at validation is
:func:`refused`: lines it blames fail; the rest go back uncounted and are sent again, except when
nothing can be blamed on a line (a file-level error), which stops the model with the API's words.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

from ..errors import ApiError
from . import answers, lifecycle
from .client import BatchState
from .lifecycle import Submission
from .session import Session

TOKEN_LIMIT = "token_limit_exceeded"


def observe(session: Session, record: Submission, state: BatchState) -> bool:
    """Mirror a batch's state in the ledger; True when its status changed since last seen
    (counts moving is progress, not a change that calls for polling sooner)."""
    db = session.db
    statement = "SELECT status, completed, failed FROM {ledger}.batches WHERE submission_id = ?"
    row = db.fetchone(db.in_ledger(statement), [record.submission_id])
    first_sight = state.id not in session.batch_ids
    if first_sight:
        session.batch_ids.append(state.id)
    if row is not None and tuple(row) == (state.status, state.completed, state.failed):
        if first_sight:  # a batch a run finds as an earlier one left it is still shown
            session.report(state, state.status)
        return False
    errors = json.dumps(list(state.errors)) if state.errors else None
    seen = lifecycle.Seen(
        state.status,
        state.completed,
        state.failed,
        state.output_file_id,
        state.error_file_id,
        errors,
    )
    lifecycle.seen(session.db, record.submission_id, seen, session.clock())
    session.step("state_recorded")
    session.report(state, state.status)
    return row is None or row[0] != state.status


# How long a completed batch may show no output file before its lines are taken as lost (and so
# sent again, while attempts remain) rather than waited for.
OUTPUT_FILE_WAIT = timedelta(hours=1)


def ready(session: Session, state: BatchState) -> bool:
    """The batch has ended and its files can be read (or waiting longer for them is pointless)."""
    # Completed batches can show output_file_id null for a while before the file is attached.
    missing = state.status == "completed" and state.completed and not state.output_file_id
    if not state.done:
        return False
    if not missing:
        return True
    first = session.output_waits.setdefault(state.id, session.clock())
    if session.clock() - first < OUTPUT_FILE_WAIT:
        return False
    session.say(
        f"batch {state.id}: completed, but no output file after {OUTPUT_FILE_WAIT}; "
        "its lines are taken as lost and sent again"
    )
    return True


# Batches seen ended together are read by one statement, up to this many lines at a time: the
# reader's cost per file is most of what a small batch costs, and memory stays flat.
GROUP_LINES = 50_000

Ended = tuple[Submission, BatchState]


def collect(session: Session, ended: list[Ended]) -> None:
    """Bring ended batches' answers into the ledger, each once: their files are read and
    classified together, a group at a time, and each batch is merged on its own."""
    for group in _groups(ended):
        _collect_group(session, group)


def _groups(ended: list[Ended]) -> list[list[Ended]]:
    groups: list[list[Ended]] = []
    lines = 0
    for item in ended:
        if not groups or lines + item[0].lines > GROUP_LINES:
            groups.append([])
            lines = 0
        groups[-1].append(item)
        lines += item[0].lines
    return groups


def _collect_group(session: Session, group: list[Ended]) -> None:
    fetched: list[tuple[Submission, BatchState, list[Path]]] = []
    for record, state in group:
        if state.status != "failed":
            session.check_stop()
            fetched.append((record, state, _download(session, record, state)))
    files = [path for _, _, got in fetched for path in got]
    if files:
        answers.load_results(session.db, session.spec, files)
    for record, state, got in fetched:
        _merge(session, record, state, got)
    # Last: a batch refused for its whole file stops the model, once the others are merged.
    for record, state in group:
        if state.status == "failed":
            session.check_stop()
            refused(session, record, state)


def _download(session: Session, record: Submission, state: BatchState) -> list[Path]:
    """A batch's output and error files on disk; its uploaded input file deleted."""
    # Into this run's own folder: the batch may be another run's (a shared ledger's other
    # target, another checkout), whose folder is not this run's to write.
    client, folder = session.api(), session.job.folder
    # Named for this collector alone: another thread may be collecting the same batch (the
    # ledger lets only one of them merge it).
    mine = uuid.uuid4().hex[:8]
    with session.transferring(record.lines):  # a large download takes minutes
        files = [
            client.download(file_id, folder / f"{state.id}-{kind}-{mine}.jsonl")
            for kind, file_id in (
                ("output", state.output_file_id),
                ("errors", state.error_file_id),
            )
            if file_id
        ]
    session.step("downloaded")
    # The input file is no longer needed once the answers are on disk. Deleted before the merge
    # closes the submission, so no crash in between can leave it on the server for good.
    _delete_upload(session, record)
    return files


def _merge(session: Session, record: Submission, state: BatchState, files: list[Path]) -> None:
    """Apply one batch's lines of the group's classified answers to its requests."""
    done = lifecycle.collect(
        session.db,
        record,
        session.clock(),
        session.rules,
        bool(files),
        midway=lambda: session.step("half_merged"),
    )
    session.step("merged")
    if done:
        session.report(state, "collected")
    record.discard_input()
    for path in files:
        path.unlink(missing_ok=True)


def refused(session: Session, record: Submission, state: BatchState) -> None:
    """The API refused the batch at validation; nothing in it ran."""
    now, codes = session.clock(), {str(e.get("code")) for e in state.errors}
    blamed = [] if TOKEN_LIMIT in codes else _blamed_lines(Path(record.input_path), state)
    _delete_upload(session, record)  # first: once refused and closed, nothing would come back
    lifecycle.refuse(session.db, record.submission_id, now, session.options.run_id, blamed)
    if TOKEN_LIMIT in codes:
        record.discard_input()
        session.refused_for_tokens(now)
        session.say(f"batch {state.id}: enqueued-token limit reached; resubmitting later")
        return
    described = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in state.errors[:3])
    if not blamed:
        raise ApiError(
            f"{session.spec.path}: batch {state.id} was refused at validation, not for any one "
            f"line: {described or 'no reason given'}. Nothing ran and nothing was charged; its "
            f"input file is kept at {record.input_path}: fix what the API names and run again"
        )
    record.discard_input()
    session.say(f"batch {state.id}: {len(blamed)} line(s) failed validation: {described}")


def _blamed_lines(path: Path, state: BatchState) -> list[tuple[str, str, str]]:
    wanted = {int(e["line"]): e for e in state.errors if isinstance(e.get("line"), int)}
    if not wanted or not path.is_file():
        return []
    blamed = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if number in wanted:
                error = wanted[number]
                custom_id = json.loads(line)["custom_id"]
                blamed.append((custom_id, str(error.get("code")), str(error.get("message"))))
    return blamed


def _delete_upload(session: Session, record: Submission) -> None:
    if record.input_file_id is None:
        return
    try:
        session.api().delete_file(record.input_file_id)
    except ApiError as err:
        session.say(f"could not delete uploaded file {record.input_file_id}: {err}")
