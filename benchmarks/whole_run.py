"""A whole `enrich run` over N synthetic movies, against the cookbook's bare loop, in one run.

    python benchmarks/whole_run.py                  # 20,000 movies (about 30 s)
    python benchmarks/whole_run.py --rows 200000

The project is the example's movie model (``models/movie_categories.sql``: the cookbook's system
prompt, a strict ``json_schema`` for ``categories`` and ``summary``) over a seed of N synthetic
movies (title, overview). Measured, each in its own process, with no network:

- **serve-local**: ``enrich run`` against ``enrich serve-local --time-scale 100000`` started in its
  own process, so the figures are enrich's alone (the server's CPU is shown beside them);
- **offline**: ``enrich run --offline`` in a fresh copy of the project (the server in-process);
- **refresh**: ``enrich run`` again on the serve-local project, nothing changed (0 sent);
- **cookbook**: the cookbook's "Batch processing with the Batch API" code with no pandas: a
  Python loop building each task dict and ``json.dumps`` into a JSONL file, then ``json.loads``
  of every line and answer of output files holding the same number of answers (the ones the
  server wrote in the serve-local run) into a list of dicts. No waiting, no upload: the floor
  for CPU a bare script spends.

CPU (user + system), wall and peak RSS are each child's own (``os.wait4``: the rusage
``getrusage(RUSAGE_CHILDREN)`` adds up, for that one child). The scheduling figures come from the
server's own record of its batches (``batches/*.json``, in wall seconds): how much of the
enqueued-token budget was in flight (a batch counts from its create to the retrieve that first
showed it ended), how long a finished batch waited for a poll to see it, and how long the client
took from seeing it to its next batch create.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# This folder is on sys.path: scripts run from it.
from batch_io import cookbook_records, cookbook_task

ROOT = Path(__file__).resolve().parents[1]
TIME_SCALE = 100_000
API_KEY = "sk-bench-local"
BUDGET = 2_000_000  # [tool.enrich.batch] enqueued_tokens, enrich's default
MODEL_SQL = (ROOT / "models" / "movie_categories.sql").read_text()
WORDS = ["hero", "city", "family", "secret", "war", "love", "crime", "island", "robot", "ghost"]


@dataclass(frozen=True)
class Usage:
    """One child process: wall seconds, CPU seconds (user + system), peak RSS in MiB."""

    wall: float
    cpu: float
    peak_mib: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        COOKBOOK[args.child](Path(args.dir))
        return
    folder = Path(tempfile.mkdtemp(prefix="enrich-whole-run-"))
    try:
        _report(args.rows, _measure(folder, args.rows))
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _measure(folder: Path, rows: int) -> dict[str, Any]:
    served, offline = folder / "served", folder / "offline"
    _make_project(served, rows)
    shutil.copytree(served, offline)
    data = folder / "server"
    figures: dict[str, Any] = {}
    with _serve_local(data) as (base_url, server):
        env = _api_env(base_url)
        figures["served"], figures["served_out"] = _enrich(served, env)
        figures["refresh"], figures["refresh_out"] = _enrich(served, env)
    figures["server"] = server[0]
    figures["schedule"] = _schedule(data / "batches", TIME_SCALE)
    figures["offline"], figures["offline_out"] = _enrich(offline, _offline_env(), "--offline")
    figures["offline_schedule"] = _schedule(offline / "target" / "local-batch-api" / "batches", 1)
    _outputs_for_cookbook(data, folder / "outputs", rows)
    (folder / "rows.csv").write_bytes((served / "seeds" / "movies.csv").read_bytes())
    (folder / "prompt.md").write_bytes((ROOT / "prompts" / "categorize_movie.md").read_bytes())
    figures["cookbook"] = _child(
        [sys.executable, __file__, "--child", "both", "--dir", str(folder)]
    )
    return figures


# The project and the processes.


def _make_project(root: Path, rows: int) -> None:
    (root / "models").mkdir(parents=True)
    (root / "seeds").mkdir()
    (root / "prompts").mkdir()
    (root / "pyproject.toml").write_text('[tool.enrich]\ndatabase = "bench.duckdb"\n')
    (root / "prompts" / "categorize_movie.md").write_bytes(
        (ROOT / "prompts" / "categorize_movie.md").read_bytes()
    )
    keyed = {"unique_key=['title', 'year']": "unique_key='title'", ", year,": ","}
    model = MODEL_SQL
    for old, new in keyed.items():  # the seed has no year: the title is the key
        if old not in model:
            raise SystemExit(
                f"models/movie_categories.sql no longer has {old!r}: update {__file__}"
            )
        model = model.replace(old, new)
    (root / "models" / "movie_categories.sql").write_text(model)
    with (root / "seeds" / "movies.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["title", "overview"])
        for i in range(rows):
            writer.writerow([f"Movie {i}", _overview(i)])


def _overview(i: int) -> str:
    """A synthetic overview of about 150 characters, different for every movie."""
    pick = [WORDS[(i * k + k * k) % len(WORDS)] for k in (3, 5, 7, 11, 13)]
    return (
        f"A {pick[0]} from the {pick[1]} must face a {pick[2]} before movie {i} ends, while a "
        f"{pick[3]} keeps its {pick[4]} for {i % 97} years and nobody expects the ending."
    )


def _api_env(base_url: str) -> dict[str, str]:
    env = _offline_env()
    env.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY=API_KEY)
    return env


def _offline_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}


def _enrich(project: Path, env: dict[str, str], *extra: str) -> tuple[Usage, str]:
    command = [sys.executable, "-m", "enrich", "run", "--project-dir", str(project), *extra]
    log = project / "run.log"
    usage = _child(command, env=env, log=log)
    return usage, log.read_text()


def _child(command: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> Usage:
    """Run `command` to the end; its own wall, CPU and peak RSS."""
    out = log.open("w") if log else subprocess.DEVNULL
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if log:
        out.close()  # type: ignore[union-attr]
    if process.returncode != 0:
        shown = log.read_text()[-3000:] if log else ""
        raise SystemExit(f"{' '.join(command[:5])} … failed ({process.returncode}):\n{shown}")
    return Usage(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


@contextmanager
def _serve_local(data: Path) -> Iterator[tuple[str, list[Usage]]]:
    """``enrich serve-local`` in its own process; once stopped, its usage is in the list."""
    port = _free_port()
    command = [sys.executable, "-m", "enrich", "serve-local", "--port", str(port)]
    command += ["--data-dir", str(data), "--api-key", API_KEY, "--time-scale", str(TIME_SCALE)]
    usage: list[Usage] = []
    with (data.parent / "server.log").open("w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=_offline_env(), stdout=log, stderr=log)
        try:
            _wait_healthy(f"http://127.0.0.1:{port}/health", process)
            yield f"http://127.0.0.1:{port}/v1", usage
        finally:
            process.send_signal(signal.SIGINT)
            _, _, used = os.wait4(process.pid, 0)
            process.returncode = 0
            wall = time.perf_counter() - started
            usage.append(Usage(wall, used.ru_utime + used.ru_stime, used.ru_maxrss / 1024))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("enrich serve-local exited before answering")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("enrich serve-local did not answer within 60 s")


# The server's record of its batches.


def _schedule(batches: Path, scale: float) -> dict[str, Any]:
    """From the server's record of its batches, in wall seconds: how much of the enqueued-token
    budget was in flight (from a batch's create to the retrieve that first showed it ended), how
    long the client took to see a batch had ended (poll), and from then to its next create."""
    found = (_span(path) for path in batches.glob("*.json"))
    spans = sorted((s for s in found if s is not None), key=lambda s: s["created"])
    if not spans:
        return {"batches": 0}
    creates = [s["created"] for s in spans]
    turnaround = [
        (min(later) - s["seen"]) / scale
        for s in spans
        if (later := [c for c in creates if c >= s["seen"]])
    ]
    events = sorted(
        [(s["created"], s["tokens"]) for s in spans] + [(s["seen"], -s["tokens"]) for s in spans]
    )
    level = peak = weighted = 0.0
    for (when, change), (after, _) in zip(events, [*events[1:], events[-1]], strict=True):
        level += change
        peak = max(peak, level)
        weighted += level * (after - when)
    span = events[-1][0] - events[0][0]
    return {
        "batches": len(spans),
        "lines": [s["lines"] for s in spans],
        "peak_budget": peak / BUDGET,
        "mean_budget": weighted / span / BUDGET if span else peak / BUDGET,
        "poll": [(s["seen"] - s["done"]) / scale for s in spans],
        "turnaround": turnaround,
        "span": span / scale,
        "tokens_per_line": sum(s["tokens"] for s in spans) / max(sum(s["lines"] for s in spans), 1),
    }


def _span(path: Path) -> dict[str, Any] | None:
    """A completed batch's times (server seconds: created, done, seen), tokens and lines.

    ``done`` is when the server had written its output, or the time the batch completed when the
    record has no ``written`` (servers before it); ``seen`` the first retrieve that showed it
    completed, or ``done``.
    """
    record = json.loads(path.read_text())
    batch, at = record["batch"], record.get("at", {})
    if batch["status"] != "completed":
        return None
    done = max(at.get("written", 0.0), at.get("completed", batch["completed_at"]))
    return {
        "created": float(at.get("created", batch["created_at"])),
        "done": float(done),
        "seen": float(at.get("seen", done)),
        "tokens": int(record.get("tokens", 0)),
        "lines": int(record.get("lines", 0)),
    }


def _outputs_for_cookbook(data: Path, target: Path, rows: int) -> None:
    """The output files the server wrote in the serve-local run: the cookbook parses the same."""
    target.mkdir()
    answered = 0
    for meta in (data / "files").glob("*.json"):
        if json.loads(meta.read_text())["purpose"] == "batch_output":
            source = meta.with_suffix(".bin")
            shutil.copyfile(source, target / f"{source.stem}.jsonl")  # as batch_io reads them
            answered += sum(1 for _ in source.open("rb"))
    if answered < rows:
        raise SystemExit(f"the server's output files hold {answered} answers, not {rows}")


# The cookbook's code, in a child process.


def cookbook_build(folder: Path) -> None:
    """The cookbook's loop: a task dict per row, json.dumps each into a JSONL file."""
    system_prompt = (folder / "prompt.md").read_text()
    with (folder / "rows.csv").open(newline="") as source:
        rows = list(csv.DictReader(source))
    tasks = [cookbook_task(i, system_prompt, row["overview"]) for i, row in enumerate(rows)]
    with (folder / "cookbook_tasks.jsonl").open("w") as file:
        for obj in tasks:
            file.write(json.dumps(obj) + "\n")


def cookbook_parse(folder: Path) -> None:
    """The cookbook's loading loop: json.loads every output line, then every answer."""
    cookbook_records(folder)


def cookbook_both(folder: Path) -> None:
    cookbook_build(folder)
    cookbook_parse(folder)


COOKBOOK = {"build": cookbook_build, "parse": cookbook_parse, "both": cookbook_both}


# The table.


def _report(rows: int, f: dict[str, Any]) -> None:
    sent = _sent(f["served_out"])
    tokens = f["schedule"].get("tokens_per_line", 0)
    print(f"\n{rows:,} movies, one strict json_schema request each (~{tokens:.0f} prompt tokens)")
    print(f"{'':<30}{'wall s':>8}{'CPU s':>8}{'peak MiB':>10}  sent")
    lines = [
        ("enrich run (serve-local)", f["served"], sent),
        ("  the server process", f["server"], ""),
        ("enrich run --offline", f["offline"], _sent(f["offline_out"])),
        ("refresh, no change", f["refresh"], _sent(f["refresh_out"])),
        ("cookbook loop (build+parse)", f["cookbook"], ""),
    ]
    for label, usage, note in lines:
        print(f"{label:<30}{usage.wall:>8.2f}{usage.cpu:>8.2f}{usage.peak_mib:>10.0f}  {note}")
    cook = f["cookbook"]
    for label, usage in (("serve-local", f["served"]), ("offline", f["offline"])):
        print(
            f"enrich/cookbook, {label}: CPU {usage.cpu / cook.cpu:.1f}x, "
            f"wall {usage.wall / cook.wall:.1f}x, peak {usage.peak_mib / cook.peak_mib:.1f}x"
        )
    for label, key in (("serve-local", "schedule"), ("offline", "offline_schedule")):
        print(_schedule_line(label, f[key]))


def _sent(output: str) -> str:
    """'N sent' from the run's model line."""
    for line in output.splitlines():
        if "movie_categories" in line and " sent" in line:
            return line.split(" sent")[0].rsplit(" ", 1)[-1]
    return "?"


def _schedule_line(label: str, s: dict[str, Any]) -> str:
    if not s["batches"]:
        return f"scheduling, {label}: no completed batch on record"
    poll, turnaround = s["poll"], s["turnaround"] or [0.0]
    # --offline has no enqueued-token budget (two batches in flight): no share of it to show.
    budget = (
        f"budget in flight: peak {s['peak_budget']:.0%}, mean {s['mean_budget']:.0%}; "
        if label != "offline"
        else ""
    )
    return (
        f"scheduling, {label}: {s['batches']} batches ({min(s['lines'])}-{max(s['lines'])} lines) "
        f"over {s['span']:.1f} s; {budget}batch done -> seen by a poll: median "
        f"{statistics.median(poll):.2f} s, max {max(poll):.2f} s; seen -> next create: median "
        f"{statistics.median(turnaround):.2f} s, max {max(turnaround):.2f} s"
    )


if __name__ == "__main__":
    main()
