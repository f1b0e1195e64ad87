"""Build and load Batch API files for N synthetic movies: the cookbook's way against enrich's way.

    pip install -e '.[bench]'                     # pandas and polars, for the two baselines
    python benchmarks/batch_io.py                 # 1,000,000 rows (and 100,000 to show memory)
    python benchmarks/batch_io.py --rows 200000   # quicker

The cookbook way is the OpenAI cookbook's "Batch processing with the Batch API" code: a loop over
pandas DataFrame rows (``iterrows``) building task dicts, ``json.dumps`` each into a JSONL file;
then ``json.loads`` each output line and its answer into a list of records and a DataFrame. The
row-loop way is the same code over polars' faster ``iter_rows``, a stricter baseline. enrich's
way is its own pipeline: ``plan_rows`` + ``validate_rows`` + ``plan_sends`` + ``write_shard``
(which also hash, deduplicate, validate and shard), and ``load_results`` + ``merge_results`` +
``build_target`` (which also classify every line, commit each batch's answers to the ledger and
type every answer); the load checks that every answer landed.

The DuckDB-alone way is the fastest vectorized way and nothing else: one ``COPY`` writing each
row's task as a JSON line; one ``read_json`` parsing every answer into a typed table. It does none
of what enrich adds (hashing, validating, sharding, classifying, the ledger, keys), so it is the
floor enrich's way is measured against.

Each step runs in its own process so its peak memory (ru_maxrss) is its own. Printed: seconds, peak
MiB, the speed ratios against the baselines and the floor measured in the same run, where enrich's
time goes, and how long this disk takes to write as many bytes as enrich's request files hold (no
build can beat that).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

COOKBOOK_PROMPT = (Path(__file__).parents[1] / "prompts" / "categorize_movie.md").read_text()
SHORT_PROMPT = "Give the movie's categories and a one-sentence summary, as JSON."
# The cookbook's request: json_object, its JSON checked against `output` on load. With
# --json-schema, enrich sends a strict json_schema instead, which every line carries.
MODEL_SQL = """{{ config(materialized='enrich', unique_key='id', model='gpt-4o-mini',
    temperature=0.1, system_prompt_file='prompt.md', response_format='%s',
    output={'categories': 'VARCHAR[]', 'summary': 'VARCHAR'}) }}
select id, prompt from source_rows
"""

SOURCE = """
CREATE TABLE source_rows AS
SELECT i AS id, 'Movie ' || i AS title,
       'A ' || md5(i::VARCHAR) || ' hero must face the ' || md5((i * 7)::VARCHAR)
       || ' before the city falls, while a family keeps its secrets for ' || (i % 97)
       || ' years and nobody expects the ending.' AS prompt
FROM range(?) AS t(i)
"""

OUTPUTS = """
COPY (
    SELECT 'batch_req_' || md5(request_hash) AS id, request_hash AS custom_id,
        json_object('status_code', 200, 'request_id', md5(request_hash), 'body', json_object(
            'id', 'chatcmpl-' || left(request_hash, 20), 'object', 'chat.completion',
            'model', 'gpt-4o-mini',
            'choices', json_array(json_object('index', 0, 'finish_reason', 'stop',
                'message', json_object('role', 'assistant', 'refusal', NULL, 'content',
                    json_object('categories', json_array('drama', 'crime'), 'summary',
                                'A story about ' || left(request_hash, 12) || '.')::VARCHAR))),
            'usage', json_object('prompt_tokens', tokens, 'completion_tokens', 20,
                                 'total_tokens', tokens + 20))) AS response,
        NULL AS error
    FROM SENDS WHERE rowid BETWEEN ? AND ?
) TO ? (FORMAT JSON)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--cookbook-prompt",
        action="store_true",
        help="use the cookbook's 900-character system prompt (1 KB lines) instead of a short one",
    )
    parser.add_argument(
        "--json-schema",
        action="store_true",
        help="enrich sends a strict json_schema (as models with `output` do by default) rather "
        "than the cookbook's json_object: each line carries the schema",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        started = time.perf_counter()
        timed = STEPS[args.child](Path(args.dir), args.rows)  # type: ignore[operator]
        if not isinstance(timed, dict):
            seconds = time.perf_counter() - started if timed is None else timed
            timed = {"seconds": seconds}
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({**timed, "peak_mib": peak}))
        return
    sizes = [args.rows // 10, args.rows] if args.rows >= 100_000 else [args.rows]
    prompt = COOKBOOK_PROMPT if args.cookbook_prompt else SHORT_PROMPT
    response_format = "json_schema" if args.json_schema else "json_object"
    for rows in sizes:
        _compare(rows, prompt, response_format)


SUMMARY = ("seconds", "peak_mib")

WAYS = {
    "build": {
        "cookbook": "the cookbook's code: pandas iterrows, json.dumps",
        "rowloop": "the same loop over polars iter_rows",
        "duckdb": "DuckDB alone: one COPY, nothing else",
        "enrich": "hash, validate, deduplicate, shard, write",
    },
    "load": {
        "cookbook": "the cookbook's json.loads loop, pandas",
        "rowloop": "the same loop, polars",
        "duckdb": "DuckDB alone: read_json into a typed table, nothing else",
        "enrich": "classify, keep the ledger per batch, typed table by key",
    },
}


def _compare(rows: int, prompt: str, response_format: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="enrich-bench-"))
    steps = [f"{who}_{kind}" for kind, ways in WAYS.items() for who in ways]
    try:
        folder.joinpath("prompt.md").write_text(prompt)
        folder.joinpath("models").mkdir()
        folder.joinpath("models", "movie_categories.sql").write_text(MODEL_SQL % response_format)
        _child("setup", folder, rows)
        figures = {step: _child(step, folder, rows) for step in steps}
        disk = _child("disk", folder, rows)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"\n{rows:,} rows, a {len(prompt)}-character system prompt, {response_format}; "
        "enrich's request files: "
        f"{disk['mib']:.0f} MiB, which this disk takes {disk['seconds']:.2f} s to write"
    )
    print(f"{'step':<16}{'seconds':>10}{'peak MiB':>10}")
    for kind, ways in WAYS.items():
        for who, label in ways.items():
            mine = figures[f"{who}_{kind}"]
            figure = f"{mine['seconds']:>10.2f}{mine['peak_mib']:>10.0f}"
            print(f"{who + ' ' + kind:<16}{figure}  {label}")
        _ratios({who: figures[f"{who}_{kind}"]["seconds"] for who in ways})
        ours = figures[f"enrich_{kind}"]
        steps = [f"{name} {value:.2f} s" for name, value in ours.items() if name not in SUMMARY]
        print(f"{'':<16}enrich's time, of which: {', '.join(steps)}")


def _ratios(seconds: dict[str, float]) -> None:
    enrich, cookbook = seconds["enrich"], seconds["cookbook"]
    print(
        f"{'':<16}enrich is {cookbook / enrich:.1f}x faster than the cookbook and "
        f"{seconds['rowloop'] / enrich:.1f}x than the row loop; DuckDB alone is "
        f"{cookbook / seconds['duckdb']:.1f}x faster than the cookbook"
    )


def _child(step: str, folder: Path, rows: int) -> dict[str, float]:
    os.sync()  # each step starts with the disk idle, not flushing what the one before wrote
    command = [sys.executable, __file__, "--child", step, "--dir", str(folder), "--rows", str(rows)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{step} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# The steps, each run in a child process.


def _open(folder: Path) -> tuple[Any, Any, Any]:
    from enrich.batch import ledger
    from enrich.project.loader import load_project
    from enrich.warehouse.db import Database

    project = load_project(folder)
    scratch = project.settings.target_path / "enrich" / "scratch-bench.duckdb"
    db = Database.connect(
        project.settings.database_path, project.settings.memory_limit, scratch=scratch
    )
    ledger.migrate(db)
    model = project.models["movie_categories"]
    return project, model, db


def setup(folder: Path, rows: int) -> None:
    """The project, the source table, and answered output files for the load steps."""
    from enrich.batch import request_lines as batch_requests
    from enrich.batch.lifecycle import Rules

    (folder / "pyproject.toml").write_text(
        '[tool.enrich]\ndatabase = "bench.duckdb"\nmemory_limit = "300MB"\n\n'
        "[tool.enrich.batch]\nenqueued_tokens = 1000000000\n"
    )
    (folder / "outputs").mkdir()
    project, model, db = _open(folder)
    db.execute(SOURCE, [rows])
    shared = batch_requests.plan_rows(db, model.sql, model.enrich)
    shards = batch_requests.plan_sends(
        db, model.enrich, shared, project.settings.batch, Rules(3, "bench")
    )
    _answer(db, folder, shards)
    db.close()


def _answer(db: Any, folder: Path, shards: Any) -> None:
    """An output file per shard, answering every request in it."""
    from enrich.warehouse import sql

    for shard in shards:
        path = folder / "outputs" / f"{shard.index}.jsonl"
        sends = sql.work_table("movie_categories", "sends").text
        db.execute(OUTPUTS.replace("SENDS", sends), [shard.first, shard.last, str(path)])


def cookbook_task(index: Any, system_prompt: str, description: str) -> dict[str, Any]:
    """The cookbook's task dict, as it writes it (whole_run.py uses it too)."""
    return {
        "custom_id": f"task-{index}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "gpt-4o-mini",
            "temperature": 0.1,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": description},
            ],
        },
    }


def _write_tasks(tasks: list[dict[str, Any]], path: Path) -> None:
    with path.open("w") as file:
        for obj in tasks:
            file.write(json.dumps(obj) + "\n")


def _source(folder: Path) -> Any:
    import duckdb

    return duckdb.connect(str(folder / "bench.duckdb"), read_only=True).sql(
        "SELECT * FROM source_rows"
    )


def cookbook_build(folder: Path, rows: int) -> None:
    """The cookbook's code: a task dict per pandas DataFrame row (iterrows), json.dumps each."""
    system_prompt = (folder / "prompt.md").read_text()
    df = _source(folder).df()
    tasks = []
    for index, row in df.iterrows():
        tasks.append(cookbook_task(index, system_prompt, row["prompt"]))
    _write_tasks(tasks, folder / "cookbook_tasks.jsonl")


def rowloop_build(folder: Path, rows: int) -> None:
    """The cookbook's loop over a faster row iterator: polars' iter_rows."""
    system_prompt = (folder / "prompt.md").read_text()
    df = _source(folder).pl()
    tasks = []
    for row in df.iter_rows(named=True):
        tasks.append(cookbook_task(row["id"], system_prompt, row["prompt"]))
    _write_tasks(tasks, folder / "rowloop_tasks.jsonl")


def enrich_build(folder: Path, rows: int) -> dict[str, float]:
    """enrich: plan, validate, pick, shard and write, all in DuckDB."""
    from enrich.batch import request_lines as batch_requests
    from enrich.batch.lifecycle import Rules

    started = time.perf_counter()
    project, model, db = _open(folder)
    spec = model.enrich
    opened = time.perf_counter()
    shared = batch_requests.plan_rows(db, model.sql, spec)
    batch_requests.validate_rows(db, spec, project.settings.batch)
    shards = batch_requests.plan_sends(db, spec, shared, project.settings.batch, Rules(3, "bench"))
    planned = time.perf_counter()
    for shard in shards:
        batch_requests.write_shard(db, shared, shard, folder / "enrich_in" / f"{shard.index}.jsonl")
    db.close()
    done = time.perf_counter()
    parts = {"import and open": opened - started, "plan": planned - opened, "write": done - planned}
    return {"seconds": done - started, **parts}


# As enrich writes: DuckDB's JSON writer is slower than concatenating pre-escaped text and
# writing it as a one-column CSV with neither quote nor escape character.
DUCKDB_BUILD = """
COPY (
    SELECT concat('{"custom_id":"task-', id, '","method":"POST","url":"/v1/chat/completions",'
                  '"body":{"model":"gpt-4o-mini","temperature":0.1,'
                  '"response_format":{"type":"json_object"},'
                  '"messages":[{"role":"system","content":', to_json($1::VARCHAR),
                  '},{"role":"user","content":', to_json(prompt), '}]}}')
    FROM source_rows
) TO $2 (FORMAT CSV, HEADER false, QUOTE '', ESCAPE '')
"""


def duckdb_build(folder: Path, rows: int) -> float:
    """The fastest vectorized way, and nothing else: DuckDB writes each row's task as a line.
    Timed from an open connection, to be the strictest floor."""
    import duckdb

    con = duckdb.connect(str(folder / "bench.duckdb"), config={"memory_limit": "300MB"})
    started = time.perf_counter()
    system_prompt = (folder / "prompt.md").read_text()
    con.execute(DUCKDB_BUILD, [system_prompt, str(folder / "duckdb_tasks.jsonl")])
    con.close()
    return time.perf_counter() - started


DUCKDB_LOAD = """
CREATE TABLE answers AS
SELECT custom_id,
       unnest(try(from_json_strict(response.body.choices[1].message.content,
                                   '{"categories": ["VARCHAR"], "summary": "VARCHAR"}'))),
       response.body.usage.prompt_tokens, response.body.usage.completion_tokens
FROM read_json($1, format = 'newline_delimited', columns = {
    'custom_id': 'VARCHAR',
    'response': 'STRUCT(body STRUCT(choices STRUCT(message STRUCT(content VARCHAR))[],
                                    usage STRUCT(prompt_tokens BIGINT, completion_tokens BIGINT)))'
})
"""


def duckdb_load(folder: Path, rows: int) -> float:
    """The fastest vectorized way, and nothing else: every answer parsed into a typed table.
    Timed from an open connection, to be the strictest floor."""
    import duckdb

    path = folder / "duckdb_answers.duckdb"
    con = duckdb.connect(str(path), config={"memory_limit": "300MB"})
    started = time.perf_counter()
    con.execute(DUCKDB_LOAD, [str(folder / "outputs" / "*.jsonl")])
    con.close()
    seconds = time.perf_counter() - started
    with duckdb.connect(str(path)) as check:
        parsed = check.execute("SELECT count(summary) FROM answers").fetchone()
    if parsed != (rows,):
        raise SystemExit(f"DuckDB alone parsed {parsed} of {rows} answers")
    return seconds


def cookbook_records(folder: Path) -> list[dict[str, Any]]:
    """The cookbook's loading loop: json.loads every output line, then every answer."""
    results = []
    for path in sorted((folder / "outputs").glob("*.jsonl")):
        with path.open() as file:
            for line in file:
                results.append(json.loads(line.strip()))
    records = []
    for res in results:
        content = res["response"]["body"]["choices"][0]["message"]["content"]
        answer = json.loads(content)
        records.append({"custom_id": res["custom_id"], **answer})
    return records


def cookbook_load(folder: Path, rows: int) -> None:
    """The cookbook's loading loop, into a pandas DataFrame."""
    import pandas

    pandas.DataFrame(cookbook_records(folder))


def rowloop_load(folder: Path, rows: int) -> None:
    """The cookbook's loading loop, into a polars DataFrame."""
    import polars

    polars.DataFrame(cookbook_records(folder))


def enrich_load(folder: Path, rows: int) -> dict[str, float]:
    """enrich: read, classify, merge into the ledger and build the typed table, all in DuckDB."""
    from enrich.batch import answers as batch_results
    from enrich.batch import lifecycle
    from enrich.batch import request_lines as batch_requests

    project, model, db = _open(folder)
    spec = model.enrich
    rules = lifecycle.Rules(3, "bench")
    # Not timed: what a run has done before answers come back (the rows, the ledger's claims).
    shared = batch_requests.plan_rows(db, model.sql, spec)
    shards = batch_requests.plan_sends(db, spec, shared, project.settings.batch, rules)
    # Shards are planned afresh in each process, so answer this process's shards.
    _answer(db, folder, shards)
    records = []
    for shard in shards:
        record = lifecycle.Submission(
            submission_id=f"bench-{shard.index}",
            node=model.name,
            model=spec.model,
            endpoint=spec.endpoint.url,
            shard_hash=shard.shard_hash,
            input_path="",
            status=lifecycle.PREPARING,
            lines=shard.lines,
            estimated_tokens=shard.tokens,
            created_at=_now(),
            run_id="bench",
        )
        lifecycle.record(db, record, (shard.first, shard.last, shard.ledger_end), rules)
        lifecycle.created(db, record.submission_id, f"batch_{shard.index}", "completed", _now())
        records.append(record)
    parts = {"read and classify": 0.0, "ledger": 0.0}
    for shard, record in zip(shards, records, strict=True):
        # As a run collects: one batch's files read, then merged and committed.
        started = time.perf_counter()
        batch_results.load_results(db, spec, [folder / "outputs" / f"{shard.index}.jsonl"])
        read = time.perf_counter()
        lifecycle.collect(db, record, _now(), rules, True)
        parts["read and classify"] += read - started
        parts["ledger"] += time.perf_counter() - read
    started = time.perf_counter()
    with db.transaction():
        loaded = batch_results.build_target(db, spec, False, "", (spec.name,))
    parts["typed table"] = time.perf_counter() - started
    db.close()
    if loaded != rows:
        raise SystemExit(f"enrich loaded {loaded} of {rows} answers")
    return {"seconds": sum(parts.values()), **parts}


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def disk(folder: Path, rows: int) -> dict[str, float]:
    """How long this disk takes to write as many bytes as enrich's request files hold."""
    size = sum(f.stat().st_size for f in (folder / "enrich_in").glob("*.jsonl"))
    chunk = bytes(8 * 1024 * 1024)
    started = time.perf_counter()
    with (folder / "disk.bin").open("wb") as out:
        for _ in range(size // len(chunk)):
            out.write(chunk)
        out.write(chunk[: size % len(chunk)])
    return {"seconds": time.perf_counter() - started, "mib": size / 2**20}


STEPS = {
    "setup": setup,
    "cookbook_build": cookbook_build,
    "rowloop_build": rowloop_build,
    "duckdb_build": duckdb_build,
    "enrich_build": enrich_build,
    "cookbook_load": cookbook_load,
    "rowloop_load": rowloop_load,
    "duckdb_load": duckdb_load,
    "enrich_load": enrich_load,
    "disk": disk,
}

if __name__ == "__main__":
    main()
