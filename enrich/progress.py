"""Showing enrich models at work: one live line per batch on a terminal, else one line per change.

Part of the command line: the library reports :class:`EnrichEvent`s and the CLI hands them to a
:class:`ProgressDisplay` writing to its stderr. On a terminal, batches in flight share one live
area at the bottom; everything else (messages, the CLI's node lines, each batch once it has ended)
is printed above it through the same console, so nothing interleaves. The only module that
imports rich.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TextIO

from rich.console import Console, ConsoleOptions
from rich.live import Live
from rich.text import Text

from .batch.options import EnrichEvent

# Statuses in which the API has the batch and shows no progress: the line says so and its clock
# keeps ticking, so a long `finalizing` does not look like a hang.
WAITING = frozenset({"validating", "finalizing", "cancelling"})
ENDED_BADLY = frozenset({"failed", "expired", "cancelled"})
# The message the pipeline reports once a batch's answers are in the ledger.
COLLECTED = "collected"
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"  # one frame every 80 ms, like rich's "dots"
MIN_NAME = 8  # cells kept of a model name that has to be cut to fit the terminal
STYLES = {"completed": "green", "in_progress": "cyan", **dict.fromkeys(ENDED_BADLY, "red")}


@dataclass(frozen=True)
class BatchRow:
    """What the display knows of one batch; times come from the display's clock."""

    node: str
    batch_id: str
    status: str
    completed: int
    failed: int
    total: int
    first_seen: float
    last_seen: float
    # (time, requests done) when the batch was first seen in progress: the ETA's starting point.
    progress_from: tuple[float, int] | None = None
    ended: bool = False

    @property
    def done(self) -> int:
        """Requests answered so far, well or not."""
        return self.completed + self.failed


def follow(row: BatchRow | None, event: EnrichEvent, now: float) -> BatchRow:
    """The row for a batch after `event` about it (`row` is None the first time it is seen)."""
    assert event.batch_id is not None
    status = event.status or (row.status if row else "submitted")
    if row is None:
        row = BatchRow(event.node, event.batch_id, status, 0, 0, 0, now, now)
    row = dataclasses.replace(
        row,
        status=status,
        completed=event.completed,
        failed=event.failed,
        total=event.total or row.total,
        last_seen=now,
        ended=event.message == COLLECTED or status == "failed",
    )
    if row.progress_from is None and status == "in_progress" and row.total:
        row = dataclasses.replace(row, progress_from=(now, row.done))
    return row


def eta(row: BatchRow, now: float) -> float | None:
    """Seconds left at the rate seen since the batch was first in progress; None if unknown.

    >>> row = BatchRow("m", "b", "in_progress", 50, 0, 100, 0.0, 10.0, progress_from=(0.0, 0))
    >>> eta(row, now=12.0)
    8.0
    """
    if row.progress_from is None or row.status != "in_progress":
        return None
    since, done_then = row.progress_from
    if row.done <= done_then or row.last_seen <= since:
        return None
    rate = (row.done - done_then) / (row.last_seen - since)
    return max(0.0, (row.total - row.done) / rate - (now - row.last_seen))


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


def _mark(row: BatchRow, now: float, final: bool) -> Text:
    if not final:
        return Text(SPINNER[int((now - row.first_seen) / 0.08) % len(SPINNER)], style="cyan")
    if row.status in ENDED_BADLY:
        return Text("✗", style="red")
    return Text("✓", style="green") if row.status == "completed" else Text("·")


def _tail(row: BatchRow, now: float) -> Text:
    if row.status in WAITING:
        return Text("waiting on the API", style="yellow")
    if row.status == "in_progress":
        left = eta(row, now)
        return Text(f"ETA {_clock(left) if left is not None else '-:--:--'}", style="dim")
    return Text("")


def _cells(row: BatchRow, now: float, final: bool) -> list[Text]:
    """mark, name, id, status, done/total, failed, elapsed[, ETA or waiting]."""
    elapsed = (row.last_seen if row.ended else now) - row.first_seen
    cells = [
        _mark(row, now, final),
        Text(row.node, style="bold"),
        Text(row.batch_id[-8:], style="dim"),
        Text(row.status, style=STYLES.get(row.status, "yellow")),
        Text(f"{row.done}/{row.total or '?'}"),
        Text(f"{row.failed} failed", style="red" if row.failed else ""),
        Text(_clock(elapsed)),
    ]
    return cells if final else [*cells, _tail(row, now)]


def render_rows(
    rows: Sequence[BatchRow], now: float, width: int, final: bool = False
) -> list[Text]:
    """One line per row, columns aligned, each at most `width` cells: a long name is cut first.

    `final` lines are the ones printed for good (no spinner, ETA or waiting note).
    """
    table = [_cells(row, now, final) for row in rows]
    if not table:
        return []
    widths = [max(cells[i].cell_len for cells in table) for i in range(len(table[0]))]
    over = sum(widths) + 2 * (len(widths) - 1) - 1 - width  # the mark is followed by one space
    widths[1] = max(MIN_NAME, widths[1] - max(0, over))
    return [_join(cells, widths, width) for cells in table]


def _join(cells: list[Text], widths: list[int], width: int) -> Text:
    line = Text()
    for i, (cell, cells_wide) in enumerate(zip(cells, widths, strict=True)):
        if i:
            line.append(" " if i == 1 else "  ")
        if i < len(cells) - 1:
            cell = cell.copy()
            cell.truncate(cells_wide, overflow="ellipsis", pad=True)
        line.append_text(cell)
    line.rstrip()
    line.truncate(width, overflow="ellipsis")  # a terminal too narrow for even the short name
    return line


class _Board:
    """The live area: the batches in flight, drawn anew at each refresh at the console's width."""

    def __init__(self, rows: Callable[[], Sequence[BatchRow]], clock: Callable[[], float]) -> None:
        self.rows, self.clock = rows, clock

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        yield from render_rows(self.rows(), self.clock(), options.max_width)


class ProgressDisplay:
    """Turns events into a live area (`tty`) or log lines on `stream`."""

    def __init__(
        self, stream: TextIO, tty: bool, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream, self.tty, self.clock = stream, tty, clock
        self.console = Console(file=stream, force_terminal=True, highlight=False) if tty else None
        # Replaced, never changed in place: the live area's refresh thread reads it unlocked.
        self._rows: dict[str, BatchRow] = {}
        self._ended: set[str] = set()
        self._live: Live | None = None
        self._lock = threading.Lock()

    def __call__(self, event: EnrichEvent) -> None:
        with self._lock:
            if self.console is not None and event.batch_id:
                self._follow(event)
            else:
                self._say(_line(event))

    def echo(self, text: str, stream: TextIO) -> None:
        """Print a line of the CLI's on `stream`; above the live area when both are on screen."""
        with self._lock:
            if self.console is not None and self._live is not None and stream.isatty():
                self.console.print(Text(text), soft_wrap=True)
            else:
                stream.write(text + "\n")
                stream.flush()

    def close(self) -> None:
        """Print the batches still in flight once, as they are now, and end the live area."""
        with self._lock:
            left, self._rows = list(self._rows.values()), {}
            self._print_for_good(left)
            if self._live is not None:
                self._live.stop()
                self._live = None

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(Text(text), soft_wrap=True)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def _follow(self, event: EnrichEvent) -> None:
        assert event.batch_id is not None
        if event.batch_id in self._ended:  # e.g. a status seen again after it was collected
            return
        row = follow(self._rows.get(event.batch_id), event, self.clock())
        others = {k: v for k, v in self._rows.items() if k != row.batch_id}
        # An ended batch leaves the live area before its line is printed above it, or the
        # live area would be drawn again with it under that line.
        self._rows = others if row.ended else {**others, row.batch_id: row}
        if row.ended:
            self._ended.add(row.batch_id)
            self._print_for_good([row])
        if self._live is None and self._rows:
            self._start()
        if self._live is not None:
            self._live.refresh()  # every change is drawn, however short-lived

    def _start(self) -> None:
        assert self.console is not None
        board = _Board(lambda: list(self._rows.values()), self.clock)
        self._live = Live(
            board,
            console=self.console,
            refresh_per_second=8,
            transient=True,  # what is in it at the end is printed above it first (see close)
            redirect_stdout=False,  # stdout may be a file: the CLI's lines go through echo
            redirect_stderr=self.stream is sys.stderr,  # stray warnings go above it too
        )
        self._live.start()

    def _print_for_good(self, rows: list[BatchRow]) -> None:
        if self.console is None or not rows:
            return
        for text in render_rows(rows, self.clock(), self.console.width, final=True):
            self.console.print(text, soft_wrap=True)


def _line(event: EnrichEvent) -> str:
    where = f"{event.node}" + (f" {event.batch_id}" if event.batch_id else "")
    counts = ""
    if event.total:
        counts = f" ({event.completed}/{event.total} done, {event.failed} failed)"
    return f"  {where}: {event.message}{counts}"
