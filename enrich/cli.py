"""The ``enrich`` command: parse arguments, call one library function, print its result.

Known errors (:class:`EnrichError`) become one line on stderr and exit code 1; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .batch.client import OFFLINE_SOURCE, ApiConfig
from .batch.options import EnrichOptions
from .batch.session import INTERRUPTED
from .errors import NO_ROOM_ERRNOS, EnrichError, no_room
from .hosts import dbt_setup
from .progress import ProgressDisplay
from .project import runner, starter
from .project.loader import require_project
from .project.run_results import NodeResult, RunResult, Status

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except EnrichError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        if err.errno not in NO_ROOM_ERRNOS:
            raise
        said = no_room(str(err.filename or args.project_dir), err.strerror or str(err))
        print(f"error: {said}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"error: {INTERRUPTED}", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per library function."""
    parser = argparse.ArgumentParser(
        prog="enrich", description=__doc__.splitlines()[0] if __doc__ else None
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, configure, handler in COMMANDS:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--project-dir", default=".", metavar="DIR", help="the project folder (default: .)"
        )
        configure(sub)
        sub.set_defaults(handler=handler)
    return parser


def _selection(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "-s",
        "--select",
        nargs="+",
        default=[],
        metavar="SEL",
        help="name, +name, name+, tag:x, path:models/sub (default: everything)",
    )
    sub.add_argument(
        "--exclude", nargs="+", default=[], metavar="SEL", help="selectors to leave out"
    )


def _configure_run(sub: argparse.ArgumentParser) -> None:
    _selection(sub)
    sub.add_argument(
        "--full-refresh",
        action="store_true",
        help="reload every seed and rebuild every model; enrich models are rebuilt from the "
        "answers they have, sending nothing already answered (see --resend)",
    )
    sub.add_argument(
        "--resend",
        action="store_true",
        help="send the selected enrich models' requests again, answered or not: says how many "
        "and the estimated cost first, and asks (or needs --yes)",
    )
    sub.add_argument("--yes", action="store_true", help="with --resend: do not ask")
    sub.add_argument(
        "--threads", type=int, default=1, metavar="N", help="models built at once (default: 1)"
    )
    _offline(sub)
    sub.add_argument(
        "--no-wait",
        action="store_true",
        help="submit batches and exit; a later run collects them without sending them again",
    )
    sub.add_argument(
        "--dry-run",
        action="store_true",
        help="per enrich model: rows, cached, to send, batches, tokens and cost; sends nothing",
    )
    sub.add_argument(
        "--max-cost",
        type=float,
        metavar="USD",
        help="stop before submitting if a model's estimated cost is over USD",
    )


def _offline(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--offline",
        action="store_true",
        help="answer with the local Batch API server in this process (no key, no network)",
    )


def _configure_seed(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-s", "--select", nargs="+", default=[], metavar="SEL", help="seeds to load")
    sub.add_argument("--full-refresh", action="store_true", help="reload even unchanged seeds")


def _configure_model(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("model", metavar="MODEL", help="the model's name (its file name without .sql)")


def _configure_show(sub: argparse.ArgumentParser) -> None:
    _configure_model(sub)
    sub.add_argument("--limit", type=int, default=5, metavar="N", help="rows to show (default: 5)")


def _run(args: argparse.Namespace) -> int:
    if args.resend and not args.dry_run and not _confirm_resend(args):
        return 1
    display = ProgressDisplay(sys.stderr, sys.stderr.isatty())
    with _enrich_options(args, display) as options:
        result = runner.run(
            args.project_dir,
            select=args.select,
            exclude=args.exclude,
            full_refresh=args.full_refresh,
            threads=args.threads,
            on_result=lambda node: _print_node(node, display),
            options=options,
        )
    return _summarize(result)


def _confirm_resend(args: argparse.Namespace) -> bool:
    """Say what --resend would send and cost; go on only when told to."""
    options = EnrichOptions(dry_run=True, resend=True)
    plan = runner.run(args.project_dir, select=args.select, exclude=args.exclude, options=options)
    figures = [r.extra for r in plan.results if r.extra.get("dry_run")]
    requests = sum(int(f["requests_to_send"]) for f in figures)
    costs = [f["estimated_cost_usd"] for f in figures]
    cost = "unknown cost" if None in costs else f"~${sum(costs):.4f} at batch prices"
    print(f"--resend sends {requests} requests again ({cost})", file=sys.stderr)
    if args.yes or requests == 0:
        return True
    if sys.stdin.isatty():
        return input("Send them again? [y/N] ").strip().lower() in ("y", "yes")
    print("error: not at a terminal to ask; add --yes to send them again", file=sys.stderr)
    return False


def _preview(args: argparse.Namespace) -> int:
    with _enrich_options(args) as options:
        table = runner.preview(args.project_dir, args.model, args.limit, options=options)
    print(table.text, end="")
    return 0


def _status(args: argparse.Namespace) -> int:
    report = runner.status(args.project_dir)
    print("Batches not yet collected (as last seen by enrich run):")
    print(report.batches.text if report.batches.rows else "  none\n", end="")
    print("Failed requests, by model and reason:")
    print(report.failures.text if report.failures.rows else "  none\n", end="")
    return 0


def _crash_point(spec: str | None) -> Callable[[str], None] | None:
    """``ENRICH_CRASH_AT=STEP[:N]`` kills this process with SIGKILL the Nth time STEP completes.

    Crash-safety tests use it to stop ``enrich run`` at exact points; nothing else should.
    """
    if not spec:
        return None
    step, _, nth = spec.partition(":")
    seen = {"count": 0}

    def maybe_crash(name: str) -> None:
        if name == step:
            seen["count"] += 1
            if seen["count"] == int(nth or 1):
                os.kill(os.getpid(), signal.SIGKILL)

    return maybe_crash


@contextmanager
def _enrich_options(
    args: argparse.Namespace, display: ProgressDisplay | None = None
) -> Iterator[EnrichOptions]:
    """The API (the in-process local server with --offline) and how to show progress."""
    display = display or ProgressDisplay(sys.stderr, sys.stderr.isatty())
    options = EnrichOptions(
        wait=not getattr(args, "no_wait", False),
        dry_run=getattr(args, "dry_run", False),
        resend=getattr(args, "resend", False),
        max_cost_usd=getattr(args, "max_cost", None),
        on_event=display,
        on_step=_crash_point(os.environ.get("ENRICH_CRASH_AT")),
    )
    try:
        if not args.offline:
            yield options
            return
        require_project(Path(args.project_dir))  # before the server writes its folder there
        from . import server as local_server  # only here: a run with a key never needs it

        with local_server.offline(args.project_dir) as running:
            api = ApiConfig(
                running.base_url, running.api_key, max_retries=0, answers_from=OFFLINE_SOURCE
            )
            yield dataclasses.replace(options, api=api, poll_seconds=(0.2, 1.0))
    finally:
        display.close()


def _seed(args: argparse.Namespace) -> int:
    result = runner.seed(
        args.project_dir, select=args.select, full_refresh=args.full_refresh, on_result=_print_node
    )
    return _summarize(result)


def _ls(args: argparse.Namespace) -> int:
    for node in runner.list_nodes(args.project_dir, select=args.select, exclude=args.exclude):
        kind = node.materialized or node.kind
        tags = f"  tags: {', '.join(node.tags)}" if node.tags else ""
        print(f"{node.name:<32} {kind:<8} {node.path}{tags}")
    return 0


def _compile(args: argparse.Namespace) -> int:
    print(runner.compile_model(args.project_dir, args.model))
    return 0


def _show(args: argparse.Namespace) -> int:
    print(runner.show(args.project_dir, args.model, args.limit).text, end="")
    return 0


def _configure_preview(sub: argparse.ArgumentParser) -> None:
    _configure_model(sub)
    sub.add_argument("--limit", type=int, default=5, metavar="N", help="rows to send (default: 5)")
    _offline(sub)


def _configure_serve(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8787, help="port (default: 8787)")
    sub.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="where files and batches are kept (default: target/local-batch-api)",
    )
    sub.add_argument(
        "--responder",
        choices=["offline", "forward"],
        default="offline",
        help="offline: deterministic answers; forward: send each line to --upstream",
    )
    sub.add_argument(
        "--upstream", metavar="URL", help="OpenAI-compatible base URL for --responder forward"
    )
    sub.add_argument(
        "--api-key",
        metavar="KEY",
        help="the key clients must send (default: $ENRICH_SERVER_API_KEY, else a random one)",
    )
    sub.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="server time runs X times faster than the wall clock",
    )
    sub.add_argument(
        "--realistic",
        action="store_true",
        help="real-API delays (validating 3s, 0.1s a line, finalizing 2min); use with --time-scale",
    )
    sub.add_argument(
        "--fault",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="inject faults, e.g. fail_fraction=0.1 expire_after_fraction=0.4",
    )


def _serve_local(args: argparse.Namespace) -> int:
    from . import server as local_server

    config = local_server.config_from_args(
        project_dir=args.project_dir,
        data_dir=args.data_dir,
        responder=args.responder,
        upstream=args.upstream,
        api_key=args.api_key or os.environ.get("ENRICH_SERVER_API_KEY"),
        upstream_api_key=os.environ.get("OPENAI_API_KEY"),
        realistic=args.realistic,
        faults=args.fault,
    )
    url = f"http://{args.host}:{args.port}/v1"
    # Print the key only when this command made it up: one the user chose stays off the screen.
    chosen = args.api_key or os.environ.get("ENRICH_SERVER_API_KEY")
    key = "<the key you gave>" if chosen else config.api_key
    print(f"enrich local Batch API on {url} (data in {config.data_dir})")
    print(f"  export OPENAI_BASE_URL={url} OPENAI_API_KEY={key}", flush=True)
    local_server.serve_forever(
        config, args.host, args.port, local_server.ScaledClock(args.time_scale)
    )
    return 0


def _print_node(result: NodeResult, display: ProgressDisplay | None = None) -> None:
    label = {
        "success": "OK",
        "warn": "WARN",
        "unchanged": "UNCHANGED",
        "error": "ERROR",
        "skipped": "SKIP",
    }[result.status]
    line = f"{result.kind:<5} {result.name:<32} {label:<9} {result.message} [{result.seconds:.2f}s]"
    stream = sys.stderr if result.status == "error" else sys.stdout
    if display is None:
        print(line, file=stream, flush=True)
    else:
        display.echo(line, stream)  # above the live progress area while it is up


def _summarize(result: RunResult) -> int:
    statuses: tuple[Status, ...] = ("success", "warn", "unchanged", "error", "skipped")
    counts = {status: len(result.by_status(status)) for status in statuses}
    seconds = (result.finished_at - result.started_at).total_seconds()
    warned = f" ({counts['warn']} with warnings)" if counts["warn"] else ""
    print(
        f"Done in {seconds:.2f}s: {counts['success'] + counts['warn']} built{warned}, "
        f"{counts['unchanged']} unchanged, {counts['error']} failed, {counts['skipped']} skipped."
    )
    if not result.ok:
        print(
            "error: some nodes failed; fix the errors above and run again "
            "(details in target/run_results.json)",
            file=sys.stderr,
        )
    return 0 if result.ok else 1


def _noop(sub: argparse.ArgumentParser) -> None:
    pass


def _init(args: argparse.Namespace) -> int:
    root = Path(args.project_dir)
    for path in starter.init_project(root):
        print(f"wrote {path}")
    where = "" if args.project_dir == "." else f" --project-dir {args.project_dir}"
    print(f"next: enrich run --offline{where}   (or, with OPENAI_API_KEY set: enrich run{where})")
    return 0


def _configure_dbt(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "action", choices=["init"], help="init: add enrich's dbt package to packages.yml"
    )
    sub.add_argument(
        "dbt_project_dir",
        nargs="?",
        metavar="DBT_PROJECT_DIR",
        help="the dbt project's folder (default: --project-dir)",
    )


def _dbt(args: argparse.Namespace) -> int:
    done = dbt_setup.init_dbt_project(Path(args.dbt_project_dir or args.project_dir))
    print(f"{'added' if done.changed else 'already there:'} enrich's dbt package in {done.path}")
    if not done.dbt_installed:
        print("install dbt-core and dbt-duckdb with it: pip install 'enrich[dbt]'")
    print("next: dbt deps, then {{ config(materialized='enrich', ...) }} in a model")
    return 0


COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None], Handler], ...] = (
    ("init", "start a project: settings, a seed and one enrich model", _noop, _init),
    ("seed", "load the CSV files under seeds/ that changed", _configure_seed, _seed),
    (
        "run",
        "load changed seeds, then build the selected models in DAG order",
        _configure_run,
        _run,
    ),
    ("ls", "list seeds and models in DAG order", _selection, _ls),
    ("compile", "print a model's rendered DuckDB SQL", _configure_model, _compile),
    ("show", "print the first rows of a model's query", _configure_show, _show),
    (
        "preview",
        "send an enrich model's first rows synchronously; print inputs beside answers",
        _configure_preview,
        _preview,
    ),
    ("status", "batches in flight and failed requests per model", _noop, _status),
    ("dbt", "dbt init: add enrich's materialization to a dbt project", _configure_dbt, _dbt),
    (
        "serve-local",
        "serve the local OpenAI Files + Batches API over HTTP",
        _configure_serve,
        _serve_local,
    ),
)
