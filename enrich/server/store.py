"""The server's folder: files and batch state on disk, so a restarted server carries on.

Layout: ``files/<id>.json`` (the File object) and ``files/<id>.bin`` (its bytes);
``batches/<id>.json`` (the Batch object and the server's notes on it) and
``batches/<id>.results.jsonl`` (one line per executed request, appended as they run);
``executions.jsonl`` (every request the responder was asked to run: the server's own record; the
body's hash is over its canonical JSON, sorted keys, for synchronous requests and the batch lines
DuckDB cannot read, and over the body's JSON as DuckDB writes it, keys in the order sent, for the
other batch lines);
``scratch/`` (work files of the batches in flight).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO


class Store:
    """Reads and writes the server's folder; writes are atomic file replacements or appends."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for folder in ("files", "batches"):
            (root / folder).mkdir(parents=True, exist_ok=True)

    def file_path(self, file_id: str) -> Path:
        """Where a file's bytes are."""
        return self.root / "files" / f"{file_id}.bin"

    def put_file(
        self, meta: Mapping[str, Any], source: BinaryIO | None = None, data: bytes = b""
    ) -> None:
        """Store a file's bytes (copied from `source`, or `data`) and then its File object."""
        target = self.file_path(str(meta["id"]))
        with target.open("wb") as out:
            if source is not None:
                shutil.copyfileobj(source, out, 1024 * 1024)
            else:
                out.write(data)
        _write_json(self.root / "files" / f"{meta['id']}.json", meta)

    def delete_file(self, file_id: str) -> None:
        """Remove a file's object and bytes."""
        (self.root / "files" / f"{file_id}.json").unlink(missing_ok=True)
        self.file_path(file_id).unlink(missing_ok=True)

    def files(self) -> Iterator[dict[str, Any]]:
        """Every stored File object."""
        for path in (self.root / "files").glob("*.json"):
            yield json.loads(path.read_text())

    def put_batch(self, record: Mapping[str, Any]) -> None:
        """Store a batch's state."""
        _write_json(self.root / "batches" / f"{record['batch']['id']}.json", record)

    def batches(self) -> Iterator[dict[str, Any]]:
        """Every stored batch state."""
        for path in (self.root / "batches").glob("*.json"):
            yield json.loads(path.read_text())

    def results_path(self, batch_id: str) -> Path:
        """Where the executed request lines of a batch are, one result line each."""
        return self.root / "batches" / f"{batch_id}.results.jsonl"

    def count_results(self, batch_id: str) -> int:
        """How many request lines of a batch have been executed."""
        path = self.results_path(batch_id)
        if not path.exists():
            return 0
        with path.open("rb") as lines:
            return sum(1 for line in lines if line.strip())

    @property
    def executions_path(self) -> Path:
        """The record of every request run: batch id, custom_id and body hash, one a line."""
        return self.root / "executions.jsonl"

    def log_executions(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Append to the record of every request run (batch id, custom_id, body hash)."""
        _append_lines(self.executions_path, entries)

    def append_file(self, target: Path, part: Path) -> None:
        """Append the lines in file `part` to `target`, flushed to disk, and delete `part`."""
        with part.open("rb") as source, target.open("ab") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        part.unlink()

    def put_file_meta(self, meta: Mapping[str, Any]) -> None:
        """Store the File object of bytes already written at :meth:`file_path`."""
        _write_json(self.root / "files" / f"{meta['id']}.json", meta)

    def executions(self) -> list[dict[str, Any]]:
        """Every request run so far."""
        path = self.executions_path
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def body_hash(body: Any) -> str:
    """sha256 of a request body's canonical JSON."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _write_json(path: Path, document: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document))
    os.replace(tmp, path)


def _append_lines(path: Path, lines: Iterable[Mapping[str, Any]]) -> None:
    text = "".join(json.dumps(line) + "\n" for line in lines)
    if text:
        with path.open("a") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
