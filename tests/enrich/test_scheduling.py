"""Under an enqueued-token budget smaller than the work, the budget stays nearly full: shards are
a fraction of it (``SHARDS_PER_BUDGET``), and the next goes out within one poll of a batch
ending. Measured from the server's own record of its batches (a manual clock: one second of
server time per line)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from enrich.batch.request_lines import SHARDS_PER_BUDGET
from enrich.server import Timing

from .conftest import NOTES, Env, start_env

ROWS = 100
BUDGET = 900  # estimated prompt tokens: about half the work


@pytest.fixture
def many(tmp_path: Path) -> Iterator[Env]:
    notes = "".join(f"{i},Note {i} about topic {i % 9}.,t\n" for i in range(1, ROWS + 1))
    files = {
        **NOTES,
        "pyproject.toml": NOTES["pyproject.toml"]
        + f"\n        [tool.enrich.batch]\n        enqueued_tokens = {BUDGET}\n",
        "seeds/notes.csv": "id,body,topic\n" + notes,
    }
    timing = Timing(validating=0.0, per_line=1.0, finalizing=0.0)
    yield from start_env(tmp_path, files, timing=timing)


def _timeline(env: Env) -> list[tuple[float, float, int]]:
    """(created, ended, estimated tokens) of every batch, by the server's clock."""
    page = env.server.engine.list_batches(1000, None)["data"]
    tokens = dict(env.query("SELECT batch_id, estimated_tokens FROM _enrich.batches"))
    return sorted(
        (float(b["created_at"]), float(b["completed_at"]), int(tokens[b["id"]])) for b in page
    )


def test_the_budget_stays_full_while_work_remains(many: Env) -> None:
    result = many.run(poll_seconds=(1.0, 1.0))
    assert result.ok
    batches = _timeline(many)
    assert len(batches) >= 2 * SHARDS_PER_BUDGET
    assert max(t for _, _, t in batches) <= BUDGET // SHARDS_PER_BUDGET
    start, last_create = batches[0][0], batches[-1][0]
    # Budget in flight, integrated second by second while batches remained to be created.
    used = sum(
        sum(t for created, ended, t in batches if created <= s < ended)
        for s in range(int(start), int(last_create))
    )
    share = used / (BUDGET * (last_create - start))
    print(f"budget in flight: {share:.0%} over {len(batches)} batches")
    assert share >= 0.9, share
    # Each batch's end is followed by a create within one poll (1 s, and a second of rounding).
    for _, ended, _ in batches:
        later = [created for created, _, _ in batches if created >= ended]
        if later and ended < last_create:
            assert min(later) - ended <= 2.0
