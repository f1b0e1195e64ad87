"""What `enrich run` leaves on a terminal: the real CLI under a real pseudo-terminal of 80, 100 and
120 columns, its output fed to a terminal emulator (pyte), and the final screen read back.

The runs are offline and small (two enrich models of two batches each, built at once) and start
together, so the module takes a few seconds; nothing waits on the wall clock but for them.
"""

from __future__ import annotations

import fcntl
import os
import re
import selectors
import struct
import subprocess
import sys
import termios
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyte
import pytest

from enrich.batch.options import EnrichEvent
from enrich.progress import BatchRow, ProgressDisplay, follow, render_rows

WIDTHS = (80, 100, 120)
ROWS = 40  # tall enough that nothing scrolls off the emulated screen
LONG = "a_rather_long_model_name_that_needs_cutting_down"
MODELS = (LONG, "note_labels")

PROJECT = {
    "pyproject.toml": '[tool.enrich]\ndatabase = "warehouse.duckdb"\n\n'
    '[tool.enrich.defaults]\nmodel = "gpt-4o-mini"\n\n'
    "[tool.enrich.batch]\nmax_lines = 2\n",
    "seeds/notes.csv": "id,body\n1,The cat sat on the mat.\n2,Rain is expected tomorrow.\n"
    "3,Stocks rallied at the close.\n4,The dog chased the ball.\n",
    **{
        f"models/{name}.sql": "{{ config(materialized='enrich', unique_key='id', "
        f"system_prompt='Label the note ({name}).', output={{'label': 'VARCHAR'}}) }}}}\n"
        "select id, body as prompt from {{ ref('notes') }}\n"
        for name in MODELS
    },
}

BATCH = re.compile(
    r"(?P<mark>[✓✗·]) (?P<name>\S+?) +(?P<id>[0-9a-z]{8})  (?P<status>\w+) +"
    r"(?P<done>\d+)/(?P<total>\d+|\?) +(?P<failed>\d+) failed  \d+:\d\d:\d\d"
)
NODE = re.compile(r"(?P<kind>seed |model) (?P<name>\S+) +OK +(?P<message>.*) \[\d+\.\d\ds\]")
MESSAGES = {
    "seed ": "loaded 4 rows",
    "model": "4 rows: 0 cached, 4 sent, 4 succeeded, 0 failed, 0 pending",
}
SUMMARY = re.compile(r"Done in \d+\.\d\ds: 3 built, 0 unchanged, 0 failed, 0 skipped\.")
LEFTOVER = re.compile(r"\x1b|\[[0-9;?]*[A-Za-z]|\]m")  # an escape code printed as text


@dataclass(frozen=True)
class Finished:
    """One `enrich run --offline`: its exit code and everything it wrote."""

    returncode: int
    output: bytes
    errors: bytes = b""


def _write_project(root: Path) -> Path:
    for rel, text in PROJECT.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def _command(project: Path) -> list[str]:
    run = [sys.executable, "-m", "enrich", "run", "--offline", "--threads", "2"]
    return [*run, "--project-dir", str(project)]


def _environment() -> dict[str, str]:
    # COLUMNS/LINES would override the terminal's size; colour switches would change the codes.
    dropped = {"COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TERM"}
    return {**{k: v for k, v in os.environ.items() if k not in dropped}, "TERM": "xterm-256color"}


def _open_terminal(width: int) -> tuple[int, int]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, width, 0, 0))
    return master, slave


def _read_all(masters: dict[int, subprocess.Popen[bytes]], deadline: float) -> dict[int, bytes]:
    """Everything written to each terminal until its process has closed it."""
    read = {fd: b"" for fd in masters}
    with selectors.DefaultSelector() as selector:
        for fd in masters:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=deadline - time.monotonic()):
                try:
                    chunk = os.read(key.fd, 65536)
                except OSError:  # EIO: the other side is closed
                    chunk = b""
                read[key.fd] += chunk
                if not chunk:
                    selector.unregister(key.fd)
    return read


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int | None, Finished]]:
    """The same project run at each width on a terminal, and once into pipes (key None), at once."""
    started: dict[int, tuple[int, subprocess.Popen[bytes]]] = {}
    piped = subprocess.Popen(
        _command(_write_project(tmp_path_factory.mktemp("piped"))),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_environment(),
    )
    try:
        for width in WIDTHS:
            master, slave = _open_terminal(width)
            project = _write_project(tmp_path_factory.mktemp(f"width{width}"))
            command, env = _command(project), _environment()
            process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env)
            os.close(slave)
            started[width] = (master, process)
        output = _read_all({m: p for m, p in started.values()}, time.monotonic() + 120)
        out, err = piped.communicate(timeout=120)
        finished: dict[int | None, Finished] = {
            w: Finished(p.wait(timeout=120), output[m]) for w, (m, p) in started.items()
        }
        yield {**finished, None: Finished(piped.returncode, out, err)}
    finally:
        for master, process in [*started.values(), (-1, piped)]:
            process.kill()
            process.wait()
            if master >= 0:
                os.close(master)


def _screen(output: bytes, width: int) -> list[str]:
    screen = pyte.Screen(width, ROWS)
    pyte.ByteStream(screen).feed(output)
    return list(screen.display)


def _starts_a_line(row: str) -> bool:
    return bool(BATCH.fullmatch(row.rstrip())) or row.startswith(("seed ", "model ", "Done in "))


def _logical_lines(rows: list[str]) -> list[str]:
    """The screen's lines, a log line the terminal wrapped joined again (its rows are full)."""
    lines: list[str] = []
    for row in rows:
        if lines and row.strip() and not _starts_a_line(row):
            lines[-1] += row  # a continuation; a fragment of anything would break the line
        elif row.strip():
            lines.append(row)
    return [line.rstrip() for line in lines]


@pytest.mark.parametrize("width", WIDTHS)
def test_terminal_run_leaves_every_line_whole_and_each_batch_once(
    runs: dict[int | None, Finished], width: int
) -> None:
    run = runs[width]
    rows = _screen(run.output, width)
    assert run.returncode == 0, "\n".join(rows)
    lines = _logical_lines(rows)
    batches = [m for line in lines if (m := BATCH.fullmatch(line))]
    nodes = [m for line in lines if (m := NODE.fullmatch(line))]
    summaries = [line for line in lines if SUMMARY.fullmatch(line)]
    assert len(batches) + len(nodes) + len(summaries) == len(lines), "\n".join(rows)
    assert not [row for row in rows if LEFTOVER.search(row)]
    assert summaries == [lines[-1]]
    assert Counter(m["name"] for m in nodes) == Counter(["notes", *MODELS])
    assert all(m["message"] == MESSAGES[m["kind"]] for m in nodes)
    # Each batch once, on one row of the screen, in its final state, above its model's line.
    assert len({m["id"] for m in batches}) == len(batches) == 4
    assert all(sum(m["id"] in row for row in rows) == 1 for m in batches)
    assert {(m["mark"], m["status"], m["done"], m["total"], m["failed"]) for m in batches} == {
        ("✓", "completed", "2", "2", "0")
    }
    cut = {m.string: _model_of(m["name"]) for m in batches if m["name"].endswith("…")}
    assert set(cut.values()) == ({LONG} if width < 100 else set())
    assert all(len(line) == width for line in cut)  # cut only as far as it has to be
    for model in MODELS:
        last_batch = max(i for i, m in enumerate(batches) if _model_of(m["name"]) == model)
        model_line = next(m.string for m in nodes if m["name"] == model)
        assert lines.index(batches[last_batch].string) < lines.index(model_line)


def _model_of(shown: str) -> str:
    """The model a batch line names, whole or cut short with an ellipsis."""
    return next(m for m in MODELS if m == shown or m.startswith(shown.removesuffix("…")))


def test_terminal_run_says_when_it_waits_on_the_api(runs: dict[int | None, Finished]) -> None:
    assert b"waiting on the API" in runs[80].output  # drawn while validating and finalizing


def test_piped_run_prints_one_plain_line_per_change(runs: dict[int | None, Finished]) -> None:
    run = runs[None]
    out, err = run.output.decode(), run.errors.decode()
    assert run.returncode == 0, err
    assert "\x1b" not in out + err
    assert [NODE.fullmatch(line) is not None for line in out.splitlines()] == [True] * 3 + [False]
    assert SUMMARY.fullmatch(out.splitlines()[-1])
    changes = err.splitlines()
    assert all(re.fullmatch(r"  \S+ batch_\w+: .+", line) for line in changes), err
    assert sum(line.endswith(": submitted 2 requests") for line in changes) == 4


# In-process: the display alone, fed events, on a terminal, with a clock the test moves.


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _event(batch: str, status: str, done: int = 0, message: str = "") -> EnrichEvent:
    return EnrichEvent("movie_categories", message or status, batch, status, done, 0, 10)


def _row(*events: tuple[float, EnrichEvent]) -> BatchRow:
    row: BatchRow | None = None
    for now, event in events:
        row = follow(row, event, now)
    assert row is not None
    return row


def test_a_finalizing_batch_says_it_waits_and_its_clock_keeps_ticking() -> None:
    row = _row((0.0, _event("batch_1", "validating")), (5.0, _event("batch_1", "finalizing", 10)))
    early, late = (render_rows([row], now, 80)[0].plain for now in (6.0, 75.0))
    assert "waiting on the API" in early and "0:00:06" in early
    assert "waiting on the API" in late and "0:01:15" in late


def test_a_batch_in_progress_shows_its_eta() -> None:
    first, later = _event("batch_1", "in_progress", 2), _event("batch_1", "in_progress", 6)
    row = _row((0.0, first), (10.0, later))
    assert "ETA 0:00:10" in render_rows([row], 10.0, 80)[0].plain  # 4 left at 0.4 a second


@pytest.mark.parametrize("width", [30, 50, 80, 100, 120])
def test_lines_fit_the_width_by_cutting_the_name_first(width: int) -> None:
    event = EnrichEvent("x" * 90, "in_progress", "batch_0123456789abcdef", "in_progress", 3, 0, 10)
    row = follow(None, event, 0.0)
    line = render_rows([row], 1.0, width)[0].plain
    assert len(line) <= width
    if width >= 80:  # wide enough for everything but the whole name
        assert "89abcdef  in_progress  3/10  0 failed  0:00:01  ETA" in line
        assert "x…" in line


def test_display_ends_once_with_batches_left_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # rich sizes itself from the standard streams, not ours
    master, slave = _open_terminal(80)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(_drain(master)))
    reader.start()
    with os.fdopen(slave, "w", encoding="utf-8") as terminal:
        clock = Clock()
        display = ProgressDisplay(terminal, tty=True, clock=clock)
        display(_event("batch_aaaaaaaa", "validating"))
        display(_event("batch_bbbbbbbb", "in_progress", 4))
        clock.now = 30.0
        display(_event("batch_aaaaaaaa", "completed", 10, message="collected"))
        display.echo("model movie_categories  OK", terminal)
        display(EnrichEvent("movie_categories", "1 batch(es) in flight; run again to collect them"))
        display.close()
        display.close()  # twice is harmless
    reader.join()
    os.close(master)
    lines = [row.rstrip() for row in _screen(received[0], 80) if row.strip()]
    assert lines[0].startswith("✓ movie_categories  aaaaaaaa  completed  10/10  0 failed  0:00:30")
    assert lines[1:3] == [
        "model movie_categories  OK",
        "  movie_categories: 1 batch(es) in flight; run again to collect them",
    ]
    assert lines[3].startswith("· movie_categories  bbbbbbbb  in_progress  4/10  0 failed  0:00:30")
    assert len(lines) == 4


def _drain(master: int) -> bytes:
    data = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk
