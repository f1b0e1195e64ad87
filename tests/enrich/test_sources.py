"""Answers know where they came from: the offline server's answers are never taken for real ones."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from enrich import cli
from enrich.batch.client import OFFLINE_SOURCE, ApiConfig
from enrich.warehouse.db import Database

from .conftest import API_KEY, NOTES, Env, start_env, submitted

DISTINCT = 4


def offline(env: Env) -> ApiConfig:
    """The same local server, standing for `enrich run --offline`."""
    return ApiConfig(env.base_url, API_KEY, max_retries=0, strict=True, answers_from=OFFLINE_SOURCE)


def test_going_from_offline_to_a_real_api_sends_everything_once(notes: Env) -> None:
    assert submitted(notes.run(api=offline(notes)), "note_labels") == DISTINCT
    assert notes.query("SELECT DISTINCT _enrich_source FROM note_labels") == [("offline",)]
    real = notes.run()
    assert real.ok and submitted(real, "note_labels") == DISTINCT
    assert notes.query("SELECT DISTINCT _enrich_source FROM note_labels") == [
        (notes.server.base_url,)
    ]
    assert submitted(notes.run(), "note_labels") == 0
    assert len(notes.received()) == 2 * DISTINCT


def test_switching_back_and_forth_keeps_both_sources_answers(notes: Env) -> None:
    """Offline answers never take the place of real ones: each source's answers are kept under
    their own request hashes, and neither uses up the other's attempts."""
    notes.run(api=offline(notes))
    assert submitted(notes.run(), "note_labels") == DISTINCT
    again_offline = notes.run(api=offline(notes))
    assert again_offline.ok and submitted(again_offline, "note_labels") == 0
    real = notes.run()
    assert real.ok and submitted(real, "note_labels") == 0
    assert notes.query("SELECT count(*), count(label) FROM note_labels") == [(5, 5)]
    assert notes.query("SELECT DISTINCT _enrich_source FROM note_labels") == [
        (notes.server.base_url,)
    ]


def test_a_table_shows_only_answers_from_the_api_it_was_built_against(notes: Env) -> None:
    notes.run(api=offline(notes))
    notes.run(wait=False)  # the real batch is out: no real answer yet
    assert notes.query("SELECT count(*) FROM note_labels") == [(0,)]


def test_apis_the_project_declares_interchangeable_share_answers(tmp_path: Path) -> None:
    for env in start_env(tmp_path, NOTES):
        same = f'interchangeable_apis = [["offline", "{env.server.base_url}"]]'
        env.write(
            "pyproject.toml",
            NOTES["pyproject.toml"].replace("[tool.enrich]", "[tool.enrich]\n" + same),
        )
        assert submitted(env.run(api=offline(env)), "note_labels") == DISTINCT
        assert submitted(env.run(), "note_labels") == 0


def test_an_offline_batch_whose_server_state_was_removed_is_sent_again(tmp_path: Path) -> None:
    root = tmp_path / "project"
    for rel, text in NOTES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    assert cli.main(["run", "--offline", "--no-wait", "--project-dir", str(root)]) == 0
    shutil.rmtree(root / "target" / "local-batch-api")  # `rm -rf target` while a batch was out
    assert cli.main(["run", "--offline", "--project-dir", str(root)]) == 0
    db = Database.connect(root / "warehouse.duckdb")
    try:
        assert db.fetchall("SELECT count(*), count(label) FROM note_labels") == [(5, 5)]
    finally:
        db.close()
