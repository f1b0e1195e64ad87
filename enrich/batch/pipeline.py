"""One build of an enrich model, as a pipeline whose steps are declared as data.

:data:`BUILD` is the whole build: read and check the rows (a bad row stops here, nothing sent);
settle what an earlier run left half-done (:mod:`.recovery`); choose what to send and estimate
it; stop for a dry run or over the cost limit; submit, follow and collect (:mod:`.following`);
rebuild the target table from the ledger; report. :data:`PREVIEW` answers a model's first rows
synchronously instead. Each step takes the :class:`~.session.Session` and returns ``None`` to go
on, or what the build is :class:`~.session.Done` with.

:data:`STEPS` are the named points a build passes, in order: the ledger is written before and
after every one that talks to the API, so a crash at any of them leads the next run to follow the
same batches rather than send them again (crash tests stop the process exactly there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from ..errors import ApiError, CostLimitError
from ..warehouse import sql
from ..warehouse.db import Database, Table
from . import answers, costs, ledger, lifecycle, request_lines
from .client import BatchClient
from .following import choose, follow
from .options import EnrichOptions
from .recovery import recover
from .session import Done, Job, Plan, Session

STEPS = (
    "planned",
    "submission_recorded",
    "shard_written",
    "uploaded",
    "upload_recorded",
    "created",
    "created_recorded",
    "state_recorded",
    "downloaded",
    "half_merged",
    "merged",
    "target_built",
)

# The points a preview passes: after planning, and after each answer is in the ledger.
PREVIEW_STEPS = ("planned", "answered")

Step = Callable[[Session], Done | None]


def _skip_if_settled(session: Session) -> Done | None:
    """Stop before planning anything when the model's last build left every row answered and
    nothing it depends on moved since: the same rows, prompt, output and API (one scan of the
    query, no request built), its table still there, and a ledger no run has written to. A
    no-change refresh then costs a scan, not the hashing of every request."""
    options, db, job = session.options, session.db, session.job
    if options.dry_run:
        return None
    found = request_lines.inputs(db, job.sql, session.spec, session.salt)
    spec = session.spec
    session.starting = (
        ":".join((found.digest, session.source, ".".join(job.relation), ",".join(spec.unique_key)))
        + f":{spec.keep_removed}:{spec.max_attempts}"
    )
    if not options.resend and not options.full_refresh and _still_settled(session):
        return _settled(session, found.rows)
    # Planned and built again from here: until this build ends with every row answered, nothing
    # may be taken as settled, whatever stops it halfway.
    ledger.record_settled(db, job.name, None)
    return None


def _still_settled(session: Session) -> bool:
    db, job = session.db, session.job
    last = ledger.settled(db, job.name)
    if last is None or last != f"{session.starting}|{ledger.ledger_mark(db)}":
        return False
    if db.relation_kind(*reversed(job.relation)) != "base table":
        return False
    return not ledger.sent_and_open(db, job.name)  # no batch of its own left to collect


def _settled(session: Session, rows: int) -> Done:
    answered = request_lines.Counts(rows, rows, rows, 0, 0, 0)
    figures, message = _recorded(session, answered, 0.0, 0.0)
    message += "; nothing changed since the last run"
    extra = {k: v for k, v in vars(figures).items() if k not in _NOT_REPORTED}
    return Done(rows, message, extra | {"batch_ids": [], "settled": True})


def _read_rows(session: Session) -> None:
    session.frame = request_lines.plan_rows(
        session.db, session.job.sql, session.spec, salt=session.salt
    )
    request_lines.validate_rows(session.db, session.spec, session.job.batch)
    session.before = session.counts()


def _recover(session: Session) -> None:
    if not session.options.dry_run:
        recover(session)


def _choose(session: Session) -> None:
    session.shards = choose(session)
    session.step("planned")
    session.plan = _estimate(session)


def _stop_for_dry_run(session: Session) -> Done | None:
    if not session.options.dry_run:
        return None
    assert session.plan is not None
    figures = {"dry_run": True, **_dry_run_figures(session.plan)}
    return Done(None, "dry run: " + session.plan.describe(), figures)


def _check_cost(session: Session) -> None:
    plan, limit = session.plan, session.options.max_cost_usd or session.job.max_cost_usd
    if limit is None or plan is None or plan.requests == 0:
        return
    words = session.options.wording
    if plan.cost_usd is None:
        model = session.spec.model
        raise CostLimitError(
            f"no price for model {model!r}, so the cost limit ${limit} cannot be checked; add "
            + words.add_price.format(model=model)
        )
    if plan.cost_usd > limit:
        raise CostLimitError(
            f"the estimated cost ${plan.cost_usd:.4f} of {plan.requests} requests is over the "
            f"limit of ${limit}; nothing was sent. Raise {words.max_cost} or select fewer rows"
        )


def _send(session: Session) -> None:
    if session.options.resend and session.shards and session.plan is not None:
        session.say(f"re-sending {session.plan.requests} requests")
    follow(session)


def _build_target(session: Session) -> None:
    db, name, target = session.db, session.job.name, session.job.relation
    assert session.frame is not None
    existed = db.relation_kind(*reversed(target))
    made_of = answers.fingerprint(db, session.spec, session.frame.digest, session.source)
    made_of += ":" + ".".join(target)
    session.mark = ledger.ledger_mark(db)
    unchanged = ledger.target_fingerprint(db, name) == made_of
    if existed == "base table" and unchanged and not session.options.full_refresh:
        return  # nothing it is made of changed: a no-change refresh writes nothing
    with db.transaction():
        if existed == "view":
            db.execute(sql.fill("DROP VIEW {v}", v=sql.relation(target)))
        answers.build_target(db, session.spec, existed == "base table", session.source, target)
        ledger.record_target(db, name, made_of, session.clock())
    session.step("target_built")


def _report(session: Session) -> Done:
    after = session.counts()
    before, plan = session.before, session.plan
    assert before is not None and plan is not None
    price = costs.price_for(session.spec.model, session.job.prices)
    spent = (
        None if price is None else costs.cost(after.prompt_tokens, after.completion_tokens, price)
    )
    figures, message = _recorded(session, after, plan.cost_usd, spent)
    settled = f"{session.starting}|{session.mark}" if _answered(session, after) else None
    ledger.record_settled(session.db, session.job.name, settled)
    extra = {k: v for k, v in vars(figures).items() if k not in _NOT_REPORTED}
    status, said = _judge(session, after.failed, after.rows)
    return Done(after.succeeded, message + said, extra | {"batch_ids": session.batch_ids}, status)


def _recorded(
    session: Session, after: request_lines.Counts, estimated: float | None, spent: float | None
) -> tuple[ledger.RunFigures, str]:
    """Keep the run's figures in ``_enrich.runs``; them, and the model's line for people."""
    figures = ledger.RunFigures(
        run_id=session.options.run_id,
        node=session.job.name,
        started_at=session.started,
        finished_at=session.clock(),
        rows=after.rows,
        requests_submitted=session.submitted,
        rows_cached=after.cached,
        rows_succeeded=after.succeeded,
        rows_failed=after.failed,
        rows_pending=after.pending,
        prompt_tokens=after.prompt_tokens,
        completion_tokens=after.completion_tokens,
        estimated_cost_usd=estimated,
        cost_usd=spent,
    )
    ledger.record_run(session.db, figures)
    sent = "sent again" if session.options.resend else "sent"
    message = (
        f"{after.rows} rows: {after.cached} cached, {session.submitted} {sent}, "
        f"{after.succeeded} succeeded, {after.failed} failed, {after.pending} pending"
    )
    return figures, message


def _answered(session: Session, after: request_lines.Counts) -> bool:
    """Every row has its answer and nothing of the model is in flight (a ``--resend`` keeps the
    answers it replaces until the new ones come)."""
    if session.starting is None or after.succeeded != after.rows:
        return False
    return not ledger.open_submissions(session.db, session.job.name)


Verdict = Literal["success", "warn", "error"]
_JUDGED: tuple[tuple[Verdict, str], ...] = (
    ("error", "error_if_failed"),
    ("warn", "warn_if_failed"),
)


def _judge(session: Session, failed: int, rows: int) -> tuple[Verdict, str]:
    """The model's status by its failure thresholds, and what to add to its message."""
    for status, key in _JUDGED:
        threshold = getattr(session.spec, key)
        if threshold.reached(failed, rows):
            said = f"; {failed} failed rows reach {key} = {threshold}"
            return status, f"{said} ({session.options.wording.failures})"
    return "success", ""


_NOT_REPORTED = frozenset({"run_id", "node", "started_at", "finished_at"})

BUILD: tuple[Step, ...] = (
    _skip_if_settled,
    _read_rows,
    _recover,
    _choose,
    _stop_for_dry_run,
    _check_cost,
    _send,
    _build_target,
    _report,
)


def build(
    job: Job,
    db: Database,
    options: EnrichOptions,
    clock: Callable[[], datetime],
) -> Done:
    """Build one ``materialized='enrich'`` model: run :data:`BUILD` until a step is done."""
    session = Session(job, db, options, clock, clock())
    return _run(BUILD, session)


def _run(steps: tuple[Step, ...], session: Session) -> Done:
    try:
        for step in steps:
            done = step(session)
            if done is not None:
                return done
    finally:
        session.close()
    raise AssertionError("a pipeline ends with a step that returns Done")


# Previews: the first rows answered now, through the synchronous API, into the same ledger.


def _read_first_rows(session: Session) -> None:
    limit = session.preview_limit
    session.frame = request_lines.plan_rows(
        session.db, session.job.sql, session.spec, limit, session.salt
    )
    request_lines.validate_rows(session.db, session.spec, session.job.batch)
    session.before = session.counts()


def _answer_now(session: Session) -> None:
    assert session.frame is not None
    client = session.api()
    path = session.job.folder / f"preview-{session.options.run_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        for shard in session.shards:
            for request_hash, body in request_lines.shard_bodies(session.db, session.frame, shard):
                line = {
                    "custom_id": request_hash,
                    **_respond(client, session.spec.endpoint.url, body),
                }
                path.write_text(json.dumps(line) + "\n", encoding="utf-8")
                answers.load_results(session.db, session.spec, [path])
                spec = session.spec
                lifecycle.answer(
                    session.db,
                    session.clock(),
                    session.rules,
                    session.job.name,
                    spec.endpoint.url,
                    spec.model,
                )
                session.step("answered")
    finally:
        path.unlink(missing_ok=True)


def _show(session: Session) -> Done:
    query, params = answers.preview_query(session.db, session.spec)
    table = session.db.read_table(query, session.preview_limit or 0, params)
    return Done(len(table.rows), "preview", {"table": table})


PREVIEW: tuple[Step, ...] = (_read_first_rows, _choose, _answer_now, _show)


def preview(
    job: Job, db: Database, options: EnrichOptions, limit: int, clock: Callable[[], datetime]
) -> Table:
    """Send a model's first `limit` rows as synchronous requests; inputs beside answers.

    Answers go into the ledger like batch answers, so the batch run does not pay for them again;
    no batch state is touched and the model's table is not rebuilt.
    """
    session = Session(job, db, options, clock, clock(), preview_limit=limit)
    table = _run(PREVIEW, session).figures["table"]
    assert isinstance(table, Table)
    return table


# Statuses that say the request itself is wrong: its answer, like a batch's error line.
_THE_REQUESTS_FAULT = frozenset({400, 413, 422})


def _respond(client: BatchClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One synchronous answer in the shape of a batch output line."""
    try:
        answer = client.respond(url, body)
    except ApiError as err:
        if err.status not in _THE_REQUESTS_FAULT:
            raise  # the key, the account or the service: nothing was judged, nothing counts
        error = {"error": {"message": str(err), "code": None}}
        return {"response": {"status_code": err.status, "body": error}, "error": None}
    return {"response": {"status_code": 200, "body": answer}, "error": None}


def _estimate(session: Session) -> Plan:
    assert session.before is not None
    shards, spec = session.shards, session.spec
    requests = sum(s.lines for s in shards)
    prompt = sum(s.tokens for s in shards)
    per_request = spec.completion_budget if spec.endpoint.answer_type == "VARCHAR" else 0
    completion = requests * (
        costs.DEFAULT_COMPLETION_TOKENS if per_request is None else per_request
    )
    price = costs.price_for(spec.model, session.job.prices)
    cost = None if price is None else costs.cost(prompt, completion, price)
    rows, cached = session.before.rows, session.before.cached
    return Plan(rows, cached, requests, len(shards), prompt, completion, cost)


def _dry_run_figures(plan: Plan) -> dict[str, Any]:
    return {
        "rows": plan.rows,
        "rows_cached": plan.cached,
        "requests_to_send": plan.requests,
        "batches": plan.shards,
        "estimated_prompt_tokens": plan.prompt_tokens,
        "estimated_completion_tokens": plan.completion_tokens,
        "estimated_cost_usd": plan.cost_usd,
    }
