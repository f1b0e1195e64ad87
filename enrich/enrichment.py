"""The ``enrich`` materialization: a model's rows → Batch API → a typed table, exactly once.

One build is a short pipeline over the model's own connection:

1. plan and validate rows (:mod:`enrich.batch_requests`); a bad row stops here, nothing sent;
2. recover submissions a crash left half-done: a batch created but not recorded is found again by
   the ``enrich_submission`` id in its metadata; one never created is released;
3. pick what to send (new, changed, retried) and shard it; check the estimated cost;
4. submit shards while the model's enqueued-token budget allows, follow every open batch with
   capped backoff, collect each as it ends (:mod:`enrich.batch_results`) and send retries;
5. rebuild the target table from the ledger's answers in one transaction.

The ledger is written before and after every step that talks to the API, so a crash anywhere
leads, on the next run, to the same batches being followed rather than sent again.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import batch_requests, batch_results, costs, ledger, sql
from .batch_requests import Counts, Shard
from .client import ApiConfig, BatchClient, BatchState
from .db import Table
from .errors import ApiError, CostLimitError
from .materializations import BuildContext, EnrichEvent, Outcome
from .spec import EnrichSpec

if TYPE_CHECKING:
    from .project import Model

METADATA_KEY = "enrich_submission"
# The points an enrich build passes, in order, reported to EnrichOptions.on_step.
STEPS = (
    "planned",
    "shard_written",
    "submission_recorded",
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
        cost = "unknown cost" if self.cost_usd is None else f"~${self.cost_usd:.4f}"
        return (
            f"{self.rows} rows, {self.cached} cached, {self.requests} requests to send in "
            f"{self.shards} batch(es), ~{self.prompt_tokens} prompt + ~{self.completion_tokens} "
            f"completion tokens, {cost} at batch prices"
        )


def preview(model: Model, ctx: BuildContext, limit: int) -> Table:
    """Send a model's first `limit` rows as synchronous requests and show inputs beside answers.

    Answers are cached in the ledger like batch answers, so the batch run does not pay for them
    again; the model's table is not touched.
    """
    assert model.enrich is not None
    with _Build(model, model.enrich, ctx) as builder:
        return builder.preview(limit)


def build(model: Model, ctx: BuildContext) -> Outcome:
    """Build one ``materialized='enrich'`` model."""
    assert model.enrich is not None  # set by load_project for every enrich model
    with _Build(model, model.enrich, ctx) as builder:
        return builder.run()


class _Build:
    def __init__(self, model: Model, spec: EnrichSpec, ctx: BuildContext) -> None:
        self.model, self.spec, self.ctx, self.db = model, spec, ctx, ctx.db
        self.settings = ctx.project.settings
        self.options = ctx.options
        self.started = ctx.clock()
        self.run_id = ctx.options.run_id or uuid.uuid4().hex
        self.folder = self.settings.target_path / "enrich" / model.name
        self._client: BatchClient | None = None
        self.batch_ids: list[str] = []
        self.submitted = 0
        self.blocked = False  # the API reported its enqueued-token limit reached

    def __enter__(self) -> _Build:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()

    # The pipeline

    def run(self) -> Outcome:
        self.frame = batch_requests.plan_rows(self.db, self.model, self.spec)
        batch_requests.validate_rows(self.db, self.spec, self.settings.batch)
        before = batch_requests.counts(self.db, self.run_id)
        if not self.options.dry_run:
            self._recover()
        shards = self._plan()
        self._step("planned")
        plan = self._estimate(before, shards)
        if self.options.dry_run:
            return Outcome(
                None, "dry run: " + plan.describe(), {"dry_run": True, **_dry_run_figures(plan)}
            )
        self._check_cost(plan)
        if self.ctx.full_refresh and shards:
            self._say(f"full refresh: re-sending {plan.requests} requests")
        self._follow_until_done(shards)
        return self._finish(before, plan)

    def preview(self, limit: int) -> Table:
        self.frame = batch_requests.plan_rows(self.db, self.model, self.spec, limit)
        batch_requests.validate_rows(self.db, self.spec, self.settings.batch)
        for shard in self._plan():
            self._answer_now(shard)
        query, params = batch_results.preview_query(self.spec)
        return self.db.read_table(query, limit, params)

    def _answer_now(self, shard: Shard) -> None:
        submission_id = "preview-" + uuid.uuid4().hex
        now = self.ctx.clock()
        path = self.folder / f"{submission_id}-output.jsonl"
        record = self._record(submission_id, shard, path, "preview", now)
        ledger.start_submission(self.db, record, (shard.first, shard.last), self.run_id)
        ledger.record_created(self.db, submission_id, "preview", "completed", now)
        client = self._api()
        bodies = batch_requests.shard_bodies(self.db, self.frame, shard)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for request_hash, body in bodies:
                response = _respond(client, self.spec.endpoint.url, body)
                out.write(json.dumps({"custom_id": request_hash, **response}) + "\n")
        with self.db.transaction():
            batch_results.load_results(self.db, self.spec, [path])
            batch_results.merge_results(
                self.db, self.spec, submission_id, self.ctx.clock(), True, self.run_id
            )
            ledger.close(self.db, submission_id, self.ctx.clock())
        path.unlink(missing_ok=True)

    def _plan(self) -> list[Shard]:
        return batch_requests.plan_sends(
            self.db,
            self.spec,
            self.frame,
            self.settings.batch,
            self.run_id,
            self.ctx.full_refresh,
        )

    def _estimate(self, counts: Counts, shards: list[Shard]) -> Plan:
        requests = sum(s.lines for s in shards)
        prompt = sum(s.tokens for s in shards)
        per_request = self.spec.completion_budget
        if self.spec.endpoint.answer_type != "VARCHAR":
            per_request = 0
        completion = requests * (
            costs.DEFAULT_COMPLETION_TOKENS if per_request is None else per_request
        )
        price = costs.price_for(self.spec.model, self.settings.prices)
        cost = None if price is None else costs.cost(prompt, completion, price)
        return Plan(counts.rows, counts.cached, requests, len(shards), prompt, completion, cost)

    def _check_cost(self, plan: Plan) -> None:
        limit = self.options.max_cost_usd or self.settings.max_cost_usd
        if limit is None or plan.requests == 0:
            return
        if plan.cost_usd is None:
            raise CostLimitError(
                f"no price for model {self.spec.model!r}, so the cost limit ${limit} cannot be "
                f'checked; add [tool.enrich.prices."{self.spec.model}"] input = ..., output = ... '
                "(USD per million tokens at batch prices) to pyproject.toml"
            )
        if plan.cost_usd > limit:
            raise CostLimitError(
                f"the estimated cost ${plan.cost_usd:.4f} of {plan.requests} requests is over the "
                f"limit of ${limit}; nothing was sent. Raise --max-cost (or max_cost_usd) or "
                "select fewer rows"
            )

    # Submitting

    def _submit_fitting(self, shards: list[Shard]) -> list[Shard]:
        limit = self.settings.batch.token_limit(self.spec.model)
        while shards:
            in_flight = ledger.tokens_in_flight(self.db, self.spec.model)
            if in_flight and (self.blocked or in_flight + shards[0].tokens > limit):
                break
            self.blocked = False
            self._submit(shards.pop(0))
        return shards

    def _submit(self, shard: Shard) -> None:
        submission_id = uuid.uuid4().hex
        path = batch_requests.write_shard(
            self.db, self.frame, shard, self.folder / f"{submission_id}.jsonl"
        )
        self._step("shard_written")
        record = self._record(submission_id, shard, path, "preparing", self.ctx.clock())
        ledger.start_submission(self.db, record, (shard.first, shard.last), self.run_id)
        self._step("submission_recorded")
        client = self._api()
        file_id = client.upload(path)
        self._step("uploaded")
        ledger.record_upload(self.db, submission_id, file_id, client.base_url)
        self._step("upload_recorded")
        state = client.create(file_id, self.spec.endpoint.url, self._metadata(record))
        self._step("created")
        ledger.record_created(self.db, submission_id, state.id, state.status, self.ctx.clock())
        self._step("created_recorded")
        self.batch_ids.append(state.id)
        self.submitted += shard.lines
        self._report(state, f"submitted {shard.lines} requests")

    def _record(
        self, submission_id: str, shard: Shard, path: Path, status: str, now: datetime
    ) -> ledger.Submission:
        """A shard as the ledger records it before it is sent."""
        return ledger.Submission(
            submission_id,
            self.model.name,
            self.spec.model,
            self.spec.endpoint.url,
            shard.shard_hash,
            str(path),
            None,
            None,
            status,
            shard.lines,
            shard.tokens,
            now,
        )

    def _metadata(self, record: ledger.Submission) -> dict[str, str]:
        return {
            METADATA_KEY: record.submission_id,
            "enrich_project": self.settings.root.name[:512],
            "enrich_model": record.node[:512],
            "enrich_shard": record.shard_hash,
        }

    # Following

    def _follow_until_done(self, shards: list[Shard]) -> None:
        batch = self.settings.batch
        low, high = self.options.poll_seconds or (batch.poll_min_seconds, batch.poll_max_seconds)
        delay = low
        while True:
            shards = self._submit_fitting(shards)
            changed, collected = self._poll_open()
            if collected:
                shards = self._plan()
            open_now = ledger.open_submissions(self.db, self.model.name)
            if not open_now and not shards:
                return
            if not self.options.wait:
                if open_now:
                    self._say(f"{len(open_now)} batch(es) in flight; run again to collect them")
                return
            if not open_now and self.blocked:
                self.blocked = False  # nothing of ours is queued: wait, then try the wave again
            self.options.sleep(delay)
            delay = low if changed else min(delay * 2, high)

    def _poll_open(self) -> tuple[bool, bool]:
        changed = collected = False
        for record in ledger.open_submissions(self.db, self.model.name):
            if record.batch_id is None:
                continue
            state = self._api().retrieve(record.batch_id)
            if record.batch_id not in self.batch_ids:
                self.batch_ids.append(record.batch_id)
            if self._seen(record, state):
                changed = True
            if state.done and not _output_pending(state):
                self._collect(record, state)
                changed = collected = True
        return changed, collected

    def _seen(self, record: ledger.Submission, state: BatchState) -> bool:
        row = self.db.fetchone(
            "SELECT status, completed, failed FROM _enrich.batches WHERE submission_id = ?",
            [record.submission_id],
        )
        now = (state.status, state.completed, state.failed)
        if row is not None and tuple(row) == now:
            return False
        errors = json.dumps(list(state.errors)) if state.errors else None
        values = (*now, state.output_file_id, state.error_file_id, errors)
        ledger.record_state(self.db, record.submission_id, values, self.ctx.clock())
        self._step("state_recorded")
        self._report(state, state.status)
        return True

    # Collecting

    def _collect(self, record: ledger.Submission, state: BatchState) -> None:
        now = self.ctx.clock()
        if state.status == "failed":
            self._refused(record, state, now)
            return
        client = self._api()
        files = [
            client.download(file_id, self.folder / f"{state.id}-{kind}.jsonl")
            for kind, file_id in (("output", state.output_file_id), ("errors", state.error_file_id))
            if file_id
        ]
        self._step("downloaded")
        with self.db.transaction():
            if files:
                batch_results.load_results(self.db, self.spec, files)
            batch_results.merge_results(
                self.db, self.spec, record.submission_id, now, bool(files), self.run_id
            )
            self._step("half_merged")
            ledger.close(self.db, record.submission_id, now)
        self._step("merged")
        self._report(state, "collected")
        self._clean_up(record, files)

    def _refused(self, record: ledger.Submission, state: BatchState, now: datetime) -> None:
        codes = {str(e.get("code")) for e in state.errors}
        if "token_limit_exceeded" in codes:
            self.blocked = True
            ledger.release(self.db, record.submission_id, now, ran=False)
            self._say(f"batch {state.id}: enqueued-token limit reached; resubmitting later")
            return
        failures = _line_failures(Path(record.input_path), state)
        ledger.fail_lines(self.db, record.submission_id, failures, self.run_id)
        ledger.release(self.db, record.submission_id, now, ran=False)
        described = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in state.errors[:3])
        self._say(f"batch {state.id} failed validation: {described or 'no reason given'}")

    def _clean_up(self, record: ledger.Submission, files: list[Path]) -> None:
        if record.input_file_id:
            try:
                self._api().delete_file(record.input_file_id)
            except ApiError as err:
                self._say(f"could not delete uploaded file {record.input_file_id}: {err}")
        for path in [Path(record.input_path), *files]:
            path.unlink(missing_ok=True)

    # Recovering from a crash

    def _recover(self) -> None:
        for record in ledger.open_submissions(self.db, self.model.name):
            if record.batch_id is not None:
                continue
            found = self._api().find(METADATA_KEY, record.submission_id)
            now = self.ctx.clock()
            if found is not None:
                ledger.record_created(self.db, record.submission_id, found.id, found.status, now)
                self._say(f"found batch {found.id} created before an interruption")
            else:
                ledger.release(self.db, record.submission_id, now, ran=False)
                if record.input_file_id:
                    self._api().delete_file(record.input_file_id)

    # Finishing

    def _finish(self, before: Counts, plan: Plan) -> Outcome:
        existed = self.db.relation_kind(self.model.name)
        with self.db.transaction():
            if existed == "view":
                self.db.execute(sql.drop("view", self.model.name))
            batch_results.build_target(self.db, self.spec, existed == "base table")
        self._step("target_built")
        after = batch_requests.counts(self.db, self.run_id)
        price = costs.price_for(self.spec.model, self.settings.prices)
        spent = (
            None
            if price is None
            else costs.cost(after.prompt_tokens, after.completion_tokens, price)
        )
        extra = {
            "rows": after.rows,
            "requests_submitted": self.submitted,
            "rows_cached": before.cached,
            "rows_succeeded": after.succeeded,
            "rows_failed": after.failed,
            "rows_pending": after.pending,
            "batch_ids": self.batch_ids,
            "prompt_tokens": after.prompt_tokens,
            "completion_tokens": after.completion_tokens,
            "estimated_cost_usd": plan.cost_usd,
            "cost_usd": spent,
        }
        ledger.record_run(
            self.db,
            self.run_id,
            self.model.name,
            [self.started, self.ctx.clock(), *[extra[k] for k in _RUN_FIGURES]],
        )
        message = (
            f"{after.rows} rows: {before.cached} cached, {self.submitted} sent, "
            f"{after.succeeded} succeeded, {after.failed} failed, {after.pending} pending"
        )
        return Outcome(after.succeeded, message, extra)

    # Helpers

    def _api(self) -> BatchClient:
        if self._client is None:
            self._client = BatchClient(self.options.api or ApiConfig.from_env())
        return self._client

    def _report(self, state: BatchState, text: str) -> None:
        self._emit(
            EnrichEvent(
                self.model.name,
                text,
                state.id,
                state.status,
                state.completed,
                state.failed,
                state.total,
            )
        )

    def _say(self, text: str) -> None:
        self._emit(EnrichEvent(self.model.name, text))

    def _step(self, name: str) -> None:
        if self.options.on_step is not None:
            self.options.on_step(name)

    def _emit(self, event: EnrichEvent) -> None:
        if self.options.on_event is not None:
            self.options.on_event(event)


_RUN_FIGURES = (
    "rows",
    "requests_submitted",
    "rows_cached",
    "rows_succeeded",
    "rows_failed",
    "rows_pending",
    "prompt_tokens",
    "completion_tokens",
    "estimated_cost_usd",
    "cost_usd",
)


def _respond(client: BatchClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One synchronous answer in the shape of a batch output line."""
    try:
        answer = client.respond(url, body)
    except ApiError as err:
        if err.status is None:
            raise
        error = {"error": {"message": str(err), "code": None}}
        return {"response": {"status_code": err.status, "body": error}, "error": None}
    return {"response": {"status_code": 200, "body": answer}, "error": None}


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


def _output_pending(state: BatchState) -> bool:
    # Completed batches can show output_file_id null for a while before the file is attached.
    return state.status == "completed" and state.completed > 0 and state.output_file_id is None


def _line_failures(path: Path, state: BatchState) -> list[tuple[str, str, str]]:
    wanted = {int(e["line"]): e for e in state.errors if isinstance(e.get("line"), int)}
    if not wanted or not path.is_file():
        return []
    failures = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if number in wanted:
                error = wanted[number]
                custom_id = json.loads(line)["custom_id"]
                failures.append((custom_id, str(error.get("code")), str(error.get("message"))))
    return failures
