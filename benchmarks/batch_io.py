"""Build and load Batch API files for N synthetic movies: the cookbook's way against enrich's way.

    python benchmarks/batch_io.py                 # 1,000,000 rows (and 100,000 to show memory)
    python benchmarks/batch_io.py --rows 200000   # quicker

The cookbook way is the OpenAI cookbook's "Batch processing with the Batch API" code: a loop over
DataFrame rows building task dicts, ``json.dumps`` each into a JSONL file; then ``json.loads`` each
output line and its answer into a list of records and a DataFrame. enrich's way is its own
pipeline: ``plan_rows`` + ``validate_rows`` + ``plan_sends`` + ``write_shard`` (which also hash,
deduplicate, validate and shard), and ``load_results`` + ``merge_results`` + ``build_target``
(which also classify every line and type every answer).

Each step runs in its own process so its peak memory (ru_maxrss) is its own. Printed: seconds,
peak MiB, and the speed ratio against the cookbook way measured in the same run.
"""

from __future__ import annotations

import argparse
import json
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
MODEL_SQL = """{{ config(materialized='enrich', unique_key='id', model='gpt-4o-mini',
    temperature=0.1, system_prompt_file='prompt.md',
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
                    json_object('categories', json_array('drama', 'crime'),
                                'summary', 'A story about ' || left(request_hash, 12) || '.')::VARCHAR))),
            'usage', json_object('prompt_tokens', tokens, 'completion_tokens', 20,
                                 'total_tokens', tokens + 20))) AS response,
        NULL AS error
    FROM enrich_sends WHERE rowid BETWEEN ? AND ?
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
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        started = time.perf_counter()
        timed = STEPS[args.child](Path(args.dir), args.rows)  # type: ignore[func-returns-value]
        seconds = time.perf_counter() - started if timed is None else timed
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"seconds": seconds, "peak_mib": peak}))
        return
    sizes = [args.rows // 10, args.rows] if args.rows >= 100_000 else [args.rows]
    prompt = COOKBOOK_PROMPT if args.cookbook_prompt else SHORT_PROMPT
    for rows in sizes:
        _compare(rows, prompt)


def _compare(rows: int, prompt: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="enrich-bench-"))
    try:
        folder.joinpath("prompt.md").write_text(prompt)
        _child("setup", folder, rows)
        figures = {step: _child(step, folder, rows) for step in
                   ("cookbook_build", "enrich_build", "cookbook_load", "enrich_load")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{rows:,} rows, a {len(prompt)}-character system prompt")
    print(f"{'step':<16}{'seconds':>10}{'peak MiB':>10}{'speed-up':>10}")
    for kind in ("build", "load"):
        base, ours = figures[f"cookbook_{kind}"], figures[f"enrich_{kind}"]
        ratio = base["seconds"] / ours["seconds"]
        print(f"{'cookbook ' + kind:<16}{base['seconds']:>10.2f}{base['peak_mib']:>10.0f}{'1.0x':>10}")
        print(f"{'enrich ' + kind:<16}{ours['seconds']:>10.2f}{ours['peak_mib']:>10.0f}{ratio:>9.1f}x")


def _child(step: str, folder: Path, rows: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", step, "--dir", str(folder), "--rows", str(rows)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{step} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# The steps, each run in a child process.


def _open(folder: Path) -> tuple[Any, Any, Any]:
    from enrich import ledger
    from enrich.db import Database
    from enrich.project import load_project

    project = load_project(folder)
    db = Database.connect(project.settings.database_path, project.settings.memory_limit)
    ledger.migrate(db)
    model = project.models["movie_categories"]
    return project, model, db


def setup(folder: Path, rows: int) -> None:
    """The project, the source table, and answered output files for the load steps."""
    from enrich import batch_requests

    (folder / "models").mkdir(parents=True)
    (folder / "models" / "movie_categories.sql").write_text(MODEL_SQL)
    (folder / "pyproject.toml").write_text(
        '[tool.enrich]\ndatabase = "bench.duckdb"\nmemory_limit = "300MB"\n\n'
        "[tool.enrich.batch]\nenqueued_tokens = 1000000000\n"
    )
    (folder / "outputs").mkdir()
    project, model, db = _open(folder)
    db.execute(SOURCE, [rows])
    shared = batch_requests.plan_rows(db, model, model.enrich)
    shards = batch_requests.plan_sends(db, model.enrich, shared, project.settings.batch, "bench", False)
    for shard in shards:
        db.execute(OUTPUTS, [shard.first, shard.last, str(folder / "outputs" / f"{shard.index}.jsonl")])
    db.close()


def cookbook_build(folder: Path, rows: int) -> None:
    """The cookbook: a task dict per DataFrame row, then json.dumps each into a JSONL file."""
    import duckdb

    system_prompt = (folder / "prompt.md").read_text()
    df = duckdb.connect(str(folder / "bench.duckdb"), read_only=True).sql(
        "SELECT * FROM source_rows"
    ).pl()
    tasks = []
    for row in df.iter_rows(named=True):
        task = {
            "custom_id": f"task-{row['id']}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4o-mini",
                "temperature": 0.1,
                "response_format": {"type": "json_object"},
                "messages": [
                    {"role": "system", "content": system_prompt},
                    {"role": "user", "content": row["prompt"]},
                ],
            },
        }
        tasks.append(task)
    with (folder / "cookbook_tasks.jsonl").open("w") as file:
        for obj in tasks:
            file.write(json.dumps(obj) + "\n")


def enrich_build(folder: Path, rows: int) -> None:
    """enrich: plan, validate, pick, shard and write, all in DuckDB."""
    from enrich import batch_requests

    project, model, db = _open(folder)
    spec = model.enrich
    shared = batch_requests.plan_rows(db, model, spec)
    batch_requests.validate_rows(db, spec, project.settings.batch)
    shards = batch_requests.plan_sends(db, spec, shared, project.settings.batch, "bench", False)
    for shard in shards:
        batch_requests.write_shard(db, shared, shard, folder / "enrich_in" / f"{shard.index}.jsonl")
    db.close()


def cookbook_load(folder: Path, rows: int) -> None:
    """The cookbook: json.loads every output line, then every answer, into a DataFrame."""
    import polars

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
    polars.DataFrame(records)


def enrich_load(folder: Path, rows: int) -> float:
    """enrich: read, classify, merge into the ledger and build the typed table, all in DuckDB."""
    from enrich import batch_requests, batch_results, ledger

    project, model, db = _open(folder)
    spec = model.enrich
    # Not timed: what a run has done before answers come back (the rows, the ledger's claims).
    shared = batch_requests.plan_rows(db, model, spec)
    for shard in batch_requests.plan_sends(db, spec, shared, project.settings.batch, "bench", False):
        record = ledger.Submission(
            f"bench-{shard.index}", model.name, spec.model, spec.endpoint.url, shard.shard_hash,
            "", None, None, "preparing", shard.lines, shard.tokens, _now(),
        )
        ledger.start_submission(db, record, (shard.first, shard.last), "bench")
        ledger.record_created(db, record.submission_id, f"batch_{shard.index}", "completed", _now())
    started = time.perf_counter()
    for index in range(len(list((folder / "outputs").glob("*.jsonl")))):
        with db.transaction():  # as a run collects: one batch's files, merged, committed
            batch_results.load_results(db, spec, [folder / "outputs" / f"{index}.jsonl"])
            batch_results.merge_results(db, spec, f"bench-{index}", _now(), True, "bench")
    with db.transaction():
        batch_results.build_target(db, spec, False)
    seconds = time.perf_counter() - started
    db.close()
    return seconds


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


STEPS = {
    "setup": setup,
    "cookbook_build": cookbook_build,
    "enrich_build": enrich_build,
    "cookbook_load": cookbook_load,
    "enrich_load": enrich_load,
}

if __name__ == "__main__":
    main()
