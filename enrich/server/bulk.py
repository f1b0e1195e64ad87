"""Batch lines in DuckDB: each input file read once, its lines answered and written whole.

A batch's input file is read by DuckDB (:mod:`.bulk_sql`) and checked in one pass. A file with
anything wrong, or anything DuckDB reads differently from Python, is validated by
:func:`.validate` as well, so its errors are the same as ever. Bodies are grouped by their shape
(:mod:`.shapes`): the engine checks one body per shape against the API's rules and answers it,
and the lines of a shape the SQL answers cover (:mod:`.bulk_replies`) are answered in SQL. The
others (a refused body, an unusual request, the forward responder) are answered one at a time
in Python, as before. Result lines and the record of what ran are appended to the store's files;
finishing shuffles the results into the output and error files, in SQL too.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..batch.tokens import estimate_prompt
from ..errors import ExecutionError
from ..warehouse import sql
from ..warehouse.db import Database
from . import bulk_replies
from . import bulk_sql as q
from .bulk_replies import Answer
from .config import Limits
from .outcomes import result_line, succeeded
from .replies import LineError, Reply
from .shapes import is_plain, shape_sql
from .store import Store, body_hash
from .validation import body_checks, validate

Answerer = Callable[[Sequence[tuple[Mapping[str, Any], str | None]]], list[Reply | LineError]]


@dataclass(frozen=True)
class Loaded:
    """A batch's input file: its errors (the batch fails), or its lines, model and tokens."""

    errors: list[dict[str, Any]]
    lines: int = 0
    model: str = ""
    tokens: int = 0


@dataclass(frozen=True)
class Work:
    """How to answer lines now: `plan` gives SQL for a shape (or None: answer in Python), and
    `answer` answers lines in Python, each with its fault kind (by line number in `kinds`)."""

    kinds: Mapping[int, str]
    plan: Callable[[Mapping[str, Any]], Answer | None]
    answer: Answerer


@dataclass(frozen=True)
class Finished:
    """What finishing a batch wrote: lines in the output file, failed lines that ran, lines that
    never ran (both in the error file), and the tokens of the output."""

    completed: int
    failed: int
    unrun: int
    prompt_tokens: int
    completion_tokens: int


class Bulk:
    """The lines of the batches in flight, in an in-memory DuckDB that spills to the store's
    scratch folder. Not thread-safe: the engine calls it under its lock."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.scratch = store.root / "scratch"
        self.scratch.mkdir(exist_ok=True)
        self.db = Database.connect(":memory:")
        self.db.execute("SET temp_directory = ?", [str(self.scratch / "spill")])
        # One thread: a batch's statements run on one core anyway (its lines are one morsel of
        # DuckDB's parallelism), and the idle threads' buffers cost a third of the memory; the
        # other cores are the client's (offline runs serve in the client's process).
        self.db.execute("SET threads = 1")
        self.loaded: set[str] = set()
        self.answered: Counter[str] = Counter()  # lines answered "in sql" and "in python"

    def close(self) -> None:
        self.db.close()

    def load(self, batch_id: str, path: Path, endpoint: str, limits: Limits) -> Loaded:
        """Read and check a batch's input file; keep its lines unless it has errors."""
        self.forget(batch_id)
        python = self._read(batch_id, path, endpoint)
        self.loaded.add(batch_id)
        total, bad, distinct = self._summary(batch_id)
        clean = 0 < total <= limits.max_lines and bad == 0 and distinct == total
        python = python or not clean
        shapes = self._shapes(batch_id)
        if python or not _shapes_pass(shapes.values(), endpoint, limits):
            checked = validate(path.read_bytes(), endpoint, limits)
            if checked.errors:
                self.forget(batch_id)
                return Loaded(checked.errors)
        first = self.db.fetchone(_fill(q.FIRST, **_tables(batch_id)))
        model = str(_line(*first)["body"]["model"]) if first else ""
        return Loaded([], total, model, self._tokens(batch_id, endpoint, shapes))

    def ensure(self, batch_id: str, path: Path, endpoint: str, limits: Limits) -> None:
        """Read a batch's lines again if this process has not (after a restart)."""
        if batch_id not in self.loaded:
            self.load(batch_id, path, endpoint, limits)

    def forget(self, batch_id: str) -> None:
        """Drop a batch's lines."""
        for statement in q.FORGET:
            self.db.execute(_fill(statement, **_tables(batch_id)))
        self.loaded.discard(batch_id)

    def _read(self, batch_id: str, path: Path, endpoint: str) -> bool:
        """The lines into the batch's tables; True when DuckDB cannot read the file (Python did)."""
        tables = _tables(batch_id)
        try:
            read = _fill(q.READ, shape=shape_sql(endpoint, "body"))
            self.db.execute(read, {"path": str(path), "endpoint": endpoint})
        except ExecutionError:
            self.db.execute("DROP TABLE IF EXISTS staged")
            everything = Limits(max_lines=2**62, models=())
            lines = [json.dumps(x) for x in validate(path.read_bytes(), endpoint, everything).lines]
            self.db.execute(_fill(q.KEEP_PYTHON[0], **tables), [len(lines), lines])
            self.db.execute(_fill(q.KEEP_PYTHON[1], **tables))
            return True
        for statement in q.KEEP:
            self.db.execute(_fill(statement, **tables))
        return False

    def _summary(self, batch_id: str) -> tuple[int, int, int]:
        """How many lines, how many DuckDB did not read as Python does, how many custom_ids."""
        row = self.db.fetchone(_fill(q.SUMMARY, **_tables(batch_id)))
        return (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)

    def _shapes(self, batch_id: str) -> dict[str, dict[str, Any]]:
        rows = self.db.fetchall(_fill(q.SHAPES, **_tables(batch_id)))
        return {str(key): json.loads(body) for key, body in rows}

    def _tokens(self, batch_id: str, url: str, shapes: Mapping[str, Mapping[str, Any]]) -> int:
        """``estimate_prompt`` of every body: in SQL for plain shapes, in Python for the rest."""
        helper = Answer()
        tokens = bulk_replies.prompt_tokens(url, helper)
        plain = [key for key, shape in shapes.items() if tokens and is_plain(url, shape)]
        tables, where = _tables(batch_id), {"plain": plain}
        total = _fill(q.TOKENS, tokens=tokens or "0", **tables)
        row = self.db.fetchone(total, where | helper.params) if plain else None
        rest = self.db.fetchall(_fill(q.NOT_PLAIN, **tables), where)
        python = sum(estimate_prompt(_line(body, line)["body"]) for body, line in rest)
        return int(row[0] or 0 if row else 0) + python

    # Running lines.

    def execute(self, batch_id: str, first: int, last: int, work: Work) -> tuple[int, int]:
        """Answer lines `first` to `last` - 1 and append their result lines and the record of
        what ran to the store; returns how many succeeded, and how many ran."""
        where = {"batch": batch_id, "first": first, "last": last}
        kinds = sorted(work.kinds.items())
        self.db.execute(q.CHUNK_TABLES[0], [[i for i, _ in kinds], [k for _, k in kinds]])
        self.db.execute(q.CHUNK_TABLES[1])
        try:
            in_python = self._answer_in_python(where, self._answer_in_sql(where, work), work)
            self._append(q.RESULT_LINES, self.store.results_path(batch_id))
            self._append(q.RUNS, self.store.executions_path)
            row = self.db.fetchone(q.SUCCEEDED)
        finally:
            for statement in q.DROP_CHUNK:
                self.db.execute(statement)
        succeeded, ran = (int(row[0]), int(row[1])) if row else (0, 0)
        self.answered.update({"in sql": ran - in_python, "in python": in_python})
        return succeeded, ran

    def _answer_in_sql(self, where: Mapping[str, Any], work: Work) -> list[str]:
        """Answer the lines of each shape the SQL covers; returns those shapes."""
        answered, tables = [], _tables(str(where["batch"]))
        span = {"first": where["first"], "last": where["last"]}
        for key, body in self.db.fetchall(_fill(q.SHAPES_IN_RANGE, **tables), span):
            plan = work.plan(json.loads(body))
            if plan is None:
                continue
            select = _fill(q.SHAPE_LINES, **tables)
            for name, column in plan.columns:
                select = f"SELECT *, {column} AS {name} FROM ({select})"
            statement = _fill(q.ANSWER, status=plan.status, line=plan.line, select=select)
            self.db.execute(statement, {**where, "shape": key, **plan.params})
            answered.append(str(key))
        return answered

    def _answer_in_python(self, where: Mapping[str, Any], answered: list[str], work: Work) -> int:
        """Answer the other lines one by one; returns how many."""
        other = _fill(q.OTHER_LINES, **_tables(str(where["batch"])))
        rows = self.db.fetchall(
            other, {"first": where["first"], "last": where["last"], "answered": answered}
        )
        if not rows:
            return 0
        ids = [int(row[0]) for row in rows]
        lines = [_line(body, line, custom_id) for _, custom_id, body, line in rows]
        outcomes = work.answer([(x, work.kinds.get(i)) for i, x in zip(ids, lines, strict=True)])
        results = [result_line(x, outcome) for x, outcome in zip(lines, outcomes, strict=True)]
        statuses = [200 if succeeded(r) else 0 for r in results]
        runs = [
            _ran(str(where["batch"]), x, body) for (*_, body, _), x in zip(rows, lines, strict=True)
        ]
        self.db.execute(q.CHUNK, [ids, statuses, [json.dumps(r) for r in results], runs])
        return len(rows)

    # Finishing.

    def finish(
        self,
        batch_id: str,
        lines: tuple[int, int],
        missing: LineError,
        lost_fraction: float,
        salt: str,
        files: tuple[Path, Path],
    ) -> Finished:
        """Write the output file (succeeded lines, shuffled, less the lost share) and the error
        file (failed lines, and those that never ran: `missing`) at `files`, of a batch that ran
        the first of its `lines` (ran, all); an empty file is not written."""
        results = self.store.results_path(batch_id)
        ran, total = lines
        self.db.execute(q.DONE_TABLE)
        try:
            if results.exists():
                self.db.execute(q.RESULTS, {"path": str(results), "salt": salt})
            unrun = self._unrun(batch_id, ran, missing, salt) if ran < total else 0
            row = self.db.fetchone(q.COUNTS)
            answered, failed, prompt, completion = (int(x) for x in row) if row else (0, 0, 0, 0)
            lost = round(answered * lost_fraction)
            self._write(q.OUTPUT, files[0], {"lost": lost})
            self._write(q.ERRORS, files[1], {})
            if lost:
                usage = self.db.fetchone(q.USAGE, {"lost": lost})
                prompt, completion = (int(usage[0]), int(usage[1])) if usage else (0, 0)
        finally:
            self.db.execute(q.DROP_DONE)
        return Finished(answered - lost, failed - unrun, unrun, prompt, completion)

    def _unrun(self, batch_id: str, first: int, missing: LineError, salt: str) -> int:
        """Error lines for the lines from `first` on, which never ran; returns how many."""
        unrun, tables = bulk_replies.unrun(missing), _tables(batch_id)
        where = {"first": first, "salt": salt}
        self.db.execute(_fill(q.UNRUN, line=unrun.line, **tables), where | unrun.params)
        rows = self.db.fetchall(_fill(q.UNRUN_PYTHON, **tables), [first])
        lines = [json.dumps(result_line(json.loads(line), missing)) for (line,) in rows]
        self.db.execute(q.DONE_PYTHON, [salt, lines])
        count = self.db.fetchone(_fill(q.UNRUN_COUNT, **tables), [first])
        return int(count[0]) if count else 0

    def _append(self, query: str, target: Path) -> None:
        part = self.scratch / "part.jsonl"
        self.db.execute(_fill(q.WRITE, query=query), {"target": str(part)})
        self.store.append_file(target, part)

    def _write(self, query: str, target: Path, params: Mapping[str, Any]) -> None:
        self.db.execute(_fill(q.WRITE, query=query), {"target": str(target), **params})
        if target.stat().st_size == 0:
            target.unlink()


def _tables(batch_id: str) -> dict[str, str]:
    """The quoted names of a batch's tables."""
    return {"lines": sql.quote(f"lines_{batch_id}"), "shapes": sql.quote(f"shapes_{batch_id}")}


def _fill(template: str, **parts: str) -> str:
    """`template` with each ``{name}`` replaced by a quoted table name or SQL of this module's."""
    for name, part in parts.items():
        template = template.replace("{" + name + "}", part)
    return template


def _line(body: str | None, line: str | None, custom_id: str | None = None) -> dict[str, Any]:
    """A batch line as Python reads it: whole, or its custom_id and body (a line DuckDB read)."""
    if line is not None:
        parsed: dict[str, Any] = json.loads(line)
        return parsed
    return {"custom_id": json.loads(custom_id or "null"), "body": json.loads(body or "null")}


def _ran(batch_id: str, line: Mapping[str, Any], body: str | None) -> str:
    """The record of a line run in Python: the body's hash is of its JSON as DuckDB wrote it,
    like the lines run in SQL, or of its canonical JSON for a line DuckDB could not read."""
    digest = hashlib.sha256(body.encode()).hexdigest() if body else body_hash(line["body"])
    return json.dumps({"batch_id": batch_id, "custom_id": line["custom_id"], "body_sha256": digest})


def _shapes_pass(shapes: Iterable[Mapping[str, Any]], endpoint: str, limits: Limits) -> bool:
    """Whether no shape breaks a rule :func:`.validate` checks of bodies, all of one model."""
    models = set()
    for shape in shapes:
        if any(failed for failed, *_ in body_checks(shape, endpoint, limits)):
            return False
        models.add(str(shape.get("model")))
    return len(models) <= 1
