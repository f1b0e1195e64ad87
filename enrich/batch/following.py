"""Following a model's batches to the end: submit what fits, poll with capped backoff, collect
what ended, plan again. Every wait is bounded.

Shards go out while the model's enqueued-token budget allows. A batch the token limit refused
is sent again once this model's batches in flight finish, or, with none in flight, after a
backoff that doubles up to the poll maximum; refused for longer than ``token_limit_wait_seconds``
the model stops and says so. Submissions of other models or threads holding this model's requests
are followed and collected too: the ledger shares answers by request hash.
"""

from __future__ import annotations

from ..errors import ApiError
from . import ledger, lifecycle, request_lines
from .client import OFFLINE_SOURCE, BatchState
from .collection import collect, observe, ready
from .lifecycle import Submission
from .request_lines import Shard
from .session import Session
from .submission import submit

_ACCEPTED = frozenset(
    {"in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"}
)


def follow(session: Session) -> None:
    """Submit, poll and collect until nothing is left to send or in flight (or once, without
    waiting)."""
    low, high = session.poll_bounds
    delay = low
    while True:
        session.check_stop()
        _submit_fitting(session)
        changed, ended = _poll(session, delay)
        # A batch seen ended no longer holds budget: the next shard goes before its answers are
        # downloaded and merged.
        _submit_fitting(session)
        collect(session, ended)
        for record, _ in ended:
            session.shards += _resends(session, record.submission_id)
        if ended:  # what the batches left to retry goes out now, not after a sleep
            continue
        waiting = _waiting_on(session)
        if not waiting and not session.shards:
            # Another model or thread may have collected requests of ours that need sending
            # again: one full look before stopping.
            session.shards = choose(session)
            if not session.shards:
                return
            continue
        if not session.options.wait:
            if waiting:
                session.say(f"{len(waiting)} batch(es) in flight; run again to collect them")
            return
        _check_token_wait(session)
        with session.waiting(delay):  # batches take hours: readers get the file meanwhile
            session.options.sleep(delay)
        delay = low if changed else min(delay * 2, high)


def choose(session: Session) -> list[Shard]:
    """The requests to send now, in shards (see :func:`request_lines.plan_sends`)."""
    assert session.frame is not None
    return request_lines.plan_sends(
        session.db, session.spec, session.frame, session.batch, session.rules
    )


def _resends(session: Session, submission_id: str) -> list[Shard]:
    assert session.frame is not None
    return request_lines.plan_resends(
        session.db,
        session.spec,
        session.frame,
        session.batch,
        session.rules,
        submission_id,
    )


def _submit_fitting(session: Session) -> None:
    limit, most = session.batch.token_limit(session.spec.model), session.batch.batches_in_flight
    while session.shards:
        in_flight = ledger.tokens_in_flight(session.db, session.spec.model)
        if not _may_submit(session, session.shards[0], in_flight, limit):
            return
        if most is not None and len(_waiting_on(session)) >= most:
            return
        session.check_stop()
        submit(session, session.shards.pop(0))


def _may_submit(session: Session, shard: Shard, in_flight: int, limit: int) -> bool:
    if session.blocked_since is None:
        return not in_flight or in_flight + shard.tokens <= limit
    if in_flight:  # refused: let ours finish first
        return False
    return session.retry_at is None or session.clock() >= session.retry_at


def _poll(session: Session, delay: float) -> tuple[bool, list[tuple[Submission, BatchState]]]:
    """Look at every batch in flight; returns whether any changed, and those ready to collect."""
    changed, ended = False, []
    # Those another thread is still creating have no batch id yet.
    records = [r for r in _waiting_on(session) if r.batch_id is not None]
    with session.waiting(delay):  # polling slowly: the file is free while the API answers
        found = [_retrieve(session, r) for r in records]
    for record, state in zip(records, found, strict=True):
        if state is None:
            changed = True
            continue
        if state.status in _ACCEPTED and record.node == session.job.name:
            session.accepted()
        changed = observe(session, record, state) or changed
        if ready(session, state):
            ended.append((record, state))
            changed = True
    return changed, ended


def _retrieve(session: Session, record: Submission) -> BatchState | None:
    """The batch as it is now; None when the offline server no longer has it (its folder under
    target/ was removed): nothing of it can come back, so its requests go back to be sent, and
    no attempt counts."""
    try:
        return session.api().retrieve(str(record.batch_id))
    except ApiError as err:
        if err.status != 404 or session.source != OFFLINE_SOURCE:
            raise
    session.say(
        f"batch {record.batch_id} is gone from the offline server; its requests are sent again"
    )
    lifecycle.refuse(session.db, record.submission_id, session.clock(), session.options.run_id)
    return None


def _waiting_on(session: Session) -> list[Submission]:
    open_now = ledger.open_submissions(session.db, session.job.name)
    return [s for s in open_now if s.status != lifecycle.UNRESOLVED]


def _check_token_wait(session: Session) -> None:
    since, limit = session.blocked_since, session.batch.token_limit_wait_seconds
    if since is None or not session.shards:
        return
    waited = (session.clock() - since).total_seconds()
    if waited > limit:
        raise ApiError(
            f"{session.spec.path}: the API's enqueued-token limit for {session.spec.model} kept "
            f"refusing batches for {waited:.0f} s (token_limit_wait_seconds = {limit:.0f}); "
            "nothing refused was charged. Run again later, or lower [tool.enrich.batch] "
            "enqueued_tokens to send smaller batches"
        )
