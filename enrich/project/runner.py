"""Running a project: load changed seeds, then build the selected models in DAG order.

These functions are the library API the CLI calls; they return results and never print.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..batch import ledger, pipeline
from ..batch.options import EnrichOptions, utc_now
from ..batch.session import INTERRUPTED
from ..errors import (
    NO_ROOM_ERRNOS,
    EnrichError,
    ExecutionError,
    Interrupted,
    ProjectError,
    no_room,
)
from ..warehouse import run_lock, sql
from ..warehouse.db import MEMORY, Database, Table, sweep_scratch
from . import artifacts, dag, selector
from .loader import load_project
from .materializations import MATERIALIZATIONS, BuildContext, enrich_job, require_upstream
from .nodes import Model, Project, Seed
from .run_results import NodeResult, RunResult, Status

OnResult = Callable[[NodeResult], None]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Node:
    """One line of ``enrich ls``."""

    name: str
    kind: str
    path: str
    materialized: str | None
    tags: tuple[str, ...]
    depends_on: tuple[str, ...]


def run(
    project_dir: str | Path = ".",
    *,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    full_refresh: bool = False,
    threads: int = 1,
    on_result: OnResult | None = None,
    clock: Clock = utc_now,
    options: EnrichOptions | None = None,
) -> RunResult:
    """Load changed seeds, then build the selected models; a failure skips only its downstream.

    `options` says how enrich models reach the API (see :class:`EnrichOptions`).
    """
    project = load_project(project_dir)
    graph, info = project.graph(), project.node_info()
    chosen = selector.select(graph, info, select, exclude)
    models = {n for n in chosen if n in project.models}
    # Seeds are cheap to check, so the seeds a chosen model reads are loaded when they changed,
    # unless excluded by name.
    excluded = selector.select(graph, info, exclude) if exclude else set()
    seeds = {n for n in chosen | dag.upstream(graph, models) if n in project.seeds} - excluded
    dry_run = bool(options and options.dry_run)
    if not dry_run:
        _refuse_a_forgetful_database(project, models)

    def work(db: Database, report: OnResult, writable: bool = True) -> list[NodeResult]:
        loaded = _load_seeds(db, project, sorted(seeds), full_refresh, clock, report, writable)
        failed = {r.name for r in loaded if r.status == "error"}
        enrich = dataclasses.replace(
            options or EnrichOptions(), run_id=uuid.uuid4().hex, full_refresh=full_refresh
        )
        builder = _ModelBuilder(db, project, full_refresh, clock, report, enrich, writable)
        return loaded + builder.build(models, failed, threads)

    if not dry_run or project.settings.database_path == MEMORY:
        return _execute(project, clock, on_result, work)
    # A dry run sends nothing, so it runs beside a run in progress; then it only plans, from
    # the database as it is, and leaves seeds and models to that run.
    with run_lock.holding_if_free(project.settings.database_path) as free:
        planning = functools.partial(work, writable=free)
        return _execute(project, clock, on_result, planning, locked=False)


def _refuse_a_forgetful_database(project: Project, models: set[str]) -> None:
    """An in-memory database forgets what enrich models sent: every run would pay again."""
    enriching = sorted(n for n in models if project.models[n].enrich is not None)
    if enriching and project.settings.database == MEMORY:
        raise ProjectError(
            f'pyproject.toml [tool.enrich]: database = ":memory:" forgets what enrich models '
            f"({', '.join(enriching)}) sent and were answered once the run ends, so every run "
            'would pay again; set database = "enrich.duckdb" (a file), or run with --dry-run'
        )


def seed(
    project_dir: str | Path = ".",
    *,
    select: Sequence[str] = (),
    full_refresh: bool = False,
    on_result: OnResult | None = None,
    clock: Clock = utc_now,
) -> RunResult:
    """Load the seeds whose CSV changed since they were last loaded (all with `full_refresh`)."""
    project = load_project(project_dir)
    chosen = selector.select(project.graph(), project.node_info(), select) & set(project.seeds)
    return _execute(
        project,
        clock,
        on_result,
        lambda db, report: _load_seeds(db, project, sorted(chosen), full_refresh, clock, report),
    )


def compile_model(project_dir: str | Path, name: str) -> str:
    """The rendered DuckDB SQL of one model."""
    return load_project(project_dir).model(name).sql


def show(project_dir: str | Path, name: str, limit: int = 5) -> Table:
    """The first `limit` rows of a model: an enrich model's table (keys, answers, provenance),
    any other model's query, run against the database as it is now."""
    project = load_project(project_dir)
    model = project.model(name)
    with _reading(project) as db:
        if model.enrich is not None:
            if db.relation_kind(name) is None:
                raise ExecutionError(
                    f"{model.path}: {name} has no table yet; build it with enrich run -s +{name}"
                )
            return db.read_table(sql.select_all(name), limit)
        require_upstream(db, model)
        return db.read_table(model.sql, limit)


def preview(
    project_dir: str | Path,
    name: str,
    limit: int = 5,
    *,
    options: EnrichOptions | None = None,
    clock: Clock = utc_now,
) -> Table:
    """An enrich model's first `limit` rows answered synchronously, inputs beside outputs.

    The answers go into the cache, so a later batch run does not pay for them again.
    """
    project = load_project(project_dir)
    model = project.model(name)
    if model.enrich is None:
        raise EnrichError(
            f"{model.path}: {name} is a {model.config.materialized} model; preview takes an "
            "enrich model (enrich show MODEL prints any model's rows)"
        )
    with _writing(project) as db:
        chosen = dataclasses.replace(options or EnrichOptions(), run_id=uuid.uuid4().hex)
        require_upstream(db, model)
        return pipeline.preview(enrich_job(model, project), db, chosen, limit, clock)


@dataclass(frozen=True)
class StatusReport:
    """What ``enrich status`` shows: open batches and failed requests per model."""

    batches: Table
    failures: Table


_OPEN_BATCHES = """
SELECT node AS model, batch_id, status, completed, failed, lines AS requests,
       updated_at AS last_seen
FROM _enrich.batches WHERE collected_at IS NULL ORDER BY created_at
"""

_FAILURES = """
SELECT node AS model, error_code, count(*) AS requests, max(attempts) AS attempts,
       any_value(row_key) AS example_key, any_value(error_message) AS example_message
FROM _enrich.requests WHERE status = 'failed' AND answer IS NULL
GROUP BY ALL ORDER BY model, requests DESC
"""


def status(project_dir: str | Path = ".") -> StatusReport:
    """Batches not yet collected (as last seen), and failed requests per model and reason."""
    project = load_project(project_dir)
    with _reading(project) as db:
        if db.relation_kind("batches", "_enrich") is None:
            raise ExecutionError(f"{db.path} has no enrich run state yet: run enrich run first")
        return StatusReport(db.read_table(_OPEN_BATCHES, 1000), db.read_table(_FAILURES, 1000))


def list_nodes(
    project_dir: str | Path = ".", *, select: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[Node]:
    """The seeds and models a selection picks, in DAG order."""
    project = load_project(project_dir)
    chosen = selector.select(project.graph(), project.node_info(), select, exclude)
    return [
        _node(project, name) for name in dag.topological_order(project.graph()) if name in chosen
    ]


def _node(project: Project, name: str) -> Node:
    if name in project.seeds:
        return Node(name, "seed", project.seeds[name].path, None, (), ())
    model = project.models[name]
    config = model.config
    return Node(
        name, "model", model.path, config.materialized, config.tags, tuple(sorted(model.depends_on))
    )


Work = Callable[[Database, OnResult], list[NodeResult]]


def _execute(
    project: Project, clock: Clock, on_result: OnResult | None, work: Work, locked: bool = True
) -> RunResult:
    started = clock()
    artifacts.write_manifest(project, started)
    with _writing(project, locked) as db:
        results = work(db, on_result or (lambda _: None))
    outcome = RunResult(tuple(results), started, clock())
    artifacts.write_run_results(project, outcome.results, outcome.started_at, outcome.finished_at)
    return outcome


@contextmanager
def _writing(project: Project, locked: bool = True) -> Iterator[Database]:
    """The database for a command that writes, under the run lock unless not `locked` (a dry
    run claims nothing), with a scratch file for its working tables."""
    settings = project.settings
    path = settings.database_path
    with ExitStack() as stack:
        if locked and path != MEMORY:
            stack.enter_context(run_lock.holding(path))
        scratch = settings.target_path / "enrich" / f"scratch-{uuid.uuid4().hex}.duckdb"
        if locked:
            sweep_scratch(scratch.parent)
        db = Database.connect(
            path,
            settings.memory_limit if path != MEMORY else None,  # memory cannot spill to itself
            scratch=scratch,
            wait_seconds=settings.database_wait_seconds,
        )
        stack.callback(_remove_scratch, scratch)
        stack.callback(db.close)
        ledger.migrate(db)
        yield db
        # Written out now, so a full disk is an error here, not lost in closing.
        db.execute("CHECKPOINT")


def _remove_scratch(scratch: Path) -> None:
    for path in (scratch, scratch.with_name(scratch.name + ".wal")):
        path.unlink(missing_ok=True)


@contextmanager
def _reading(project: Project) -> Iterator[Database]:
    """The database for a command that only reads: read-only, so it can open while a run waits."""
    settings = project.settings
    if settings.database_path == MEMORY:
        with _writing(project, locked=False) as db:
            yield db
        return
    if not Path(settings.database_path).exists():  # nothing built yet: an empty database says so
        db = Database.connect(MEMORY)
        db.path = settings.database_path
    else:
        db = Database.connect(
            settings.database_path, read_only=True, wait_seconds=settings.database_wait_seconds
        )
    try:
        yield db
    finally:
        db.close()


def _load_seeds(
    db: Database,
    project: Project,
    names: list[str],
    full_refresh: bool,
    clock: Clock,
    report: OnResult,
    writable: bool = True,
) -> list[NodeResult]:
    results = []
    for name in names:
        seed = project.seeds[name]
        if writable:
            result = _load_seed(db, project, seed, full_refresh, clock)
        else:
            result = NodeResult(name, "seed", seed.path, "unchanged", clock(), 0.0, _IN_USE)
        report(result)
        results.append(result)
    return results


def _load_seed(
    db: Database, project: Project, seed: Seed, full_refresh: bool, clock: Clock
) -> NodeResult:
    started, tick = clock(), time.perf_counter()
    root = project.settings.root
    content_hash = seed.content_hash(root)
    unchanged = ledger.seed_hash(db, seed.name) == content_hash and db.relation_kind(seed.name)
    if unchanged and not full_refresh:
        return NodeResult(
            seed.name, "seed", seed.path, "unchanged", started, 0.0, "unchanged since last load"
        )
    try:
        rows = db.load_csv(
            seed.name, root / seed.path, seed.settings.column_types, seed.settings.delimiter
        )
    except EnrichError as err:
        return NodeResult(
            seed.name, "seed", seed.path, "error", started, time.perf_counter() - tick, str(err)
        )
    ledger.record_seed(db, seed.name, content_hash, rows, started)
    seconds = time.perf_counter() - tick
    return NodeResult(
        seed.name, "seed", seed.path, "success", started, seconds, f"loaded {rows} rows", rows
    )


def _interruptible(
    sleep: Callable[[float], None], stop: threading.Event
) -> Callable[[float], None]:
    """`sleep`, ended early by `stop` (the wall clock's) and raising once it is set."""

    def wait(seconds: float) -> None:
        if sleep is time.sleep:
            stop.wait(seconds)
        elif not stop.is_set():
            sleep(seconds)
        if stop.is_set():
            raise Interrupted(INTERRUPTED)

    return wait


_IN_USE = "left as it is by this dry run: another enrich run is using the database"


class _ModelBuilder:
    """Builds models in DAG order on up to `threads` connections; a failure skips its downstream.
    Unless `writable`, only enrich models are planned (a dry run beside a run in progress)."""

    def __init__(
        self,
        db: Database,
        project: Project,
        full_refresh: bool,
        clock: Clock,
        report: OnResult,
        options: EnrichOptions,
        writable: bool = True,
    ) -> None:
        self.db, self.project, self.full_refresh = db, project, full_refresh
        self.clock, self.report, self.options = clock, report, options
        self.writable = writable
        self.results: list[NodeResult] = []

    def build(self, names: set[str], failed: set[str], threads: int) -> list[NodeResult]:
        # Ctrl-C reaches only this thread; the builders learn of it at their next wait.
        stop = threading.Event()
        self.options = dataclasses.replace(
            self.options, sleep=_interruptible(self.options.sleep, stop), should_stop=stop.is_set
        )
        with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
            try:  # inside the pool: leaving it waits for the builders, who must know to stop
                return self._build(pool, names, failed)
            except KeyboardInterrupt:
                stop.set()
                raise

    def _build(
        self, pool: ThreadPoolExecutor, names: set[str], failed: set[str]
    ) -> list[NodeResult]:
        graph = {n: set(self.project.models[n].depends_on) & names for n in names}
        sorter = dag.sorter_for(graph)
        blocked = set(failed)
        running: dict[Future[NodeResult], str] = {}
        while sorter.is_active():
            for name in sorted(sorter.get_ready()):
                cause = self.project.models[name].depends_on & blocked
                if cause:
                    blocked.add(name)
                    self._finish(self._skipped(name, sorted(cause)[0]))
                    sorter.done(name)
                elif self.options.dry_run and self._reads_enrich(name):
                    self._finish(self._not_built(name))
                    sorter.done(name)
                elif not self.writable and self.project.models[name].enrich is None:
                    self._finish(self._not_built(name, _IN_USE))
                    sorter.done(name)
                else:
                    running[pool.submit(self._build_one, name)] = name
            if not running:
                continue
            with self.db.released():  # the builders hold the file only while they write
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                result = future.result()
                if result.status == "error":
                    blocked.add(name)
                self._finish(result)
                sorter.done(name)
        return self.results

    def _finish(self, result: NodeResult) -> None:
        self.results.append(result)
        self.report(result)

    def _build_one(self, name: str) -> NodeResult:
        model = self.project.models[name]
        started, tick = self.clock(), time.perf_counter()
        db = self.db.sibling()
        try:
            ctx = BuildContext(db, self.project, self.full_refresh, self.options, self.clock)
            outcome = MATERIALIZATIONS[model.config.materialized].build(model, ctx)
        except (EnrichError, OSError) as err:
            if isinstance(err, OSError):  # a write outside DuckDB: only a full disk is ours
                if err.errno not in NO_ROOM_ERRNOS:
                    raise
                err = no_room(str(err.filename or model.path), err.strerror or str(err))
            said = str(err)
            where = said if said.startswith(model.path) else f"{model.path}: {said}"
            return self._result(model, "error", started, tick, where)
        finally:
            db.close()
        return self._result(
            model,
            outcome.status,
            started,
            tick,
            outcome.message,
            outcome.rows_affected,
            outcome.extra,
        )

    def _result(
        self,
        model: Model,
        status: Status,
        started: datetime,
        tick: float,
        message: str,
        rows: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> NodeResult:
        seconds = time.perf_counter() - tick
        return NodeResult(
            model.name, "model", model.path, status, started, seconds, message, rows, extra or {}
        )

    def _reads_enrich(self, name: str) -> bool:
        upstream = dag.upstream(self.project.graph(), {name})
        return any(self.project.models[n].enrich for n in upstream if n in self.project.models)

    def _not_built(
        self, name: str, message: str = "not built in a dry run: it reads an enrich model"
    ) -> NodeResult:
        model = self.project.models[name]
        return NodeResult(name, "model", model.path, "unchanged", self.clock(), 0.0, message)

    def _skipped(self, name: str, cause: str) -> NodeResult:
        model = self.project.models[name]
        message = f"skipped because {cause} did not build"
        return NodeResult(name, "model", model.path, "skipped", self.clock(), 0.0, message)
