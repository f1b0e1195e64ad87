"""The API key never reaches disk, logs, run_results, the ledger, error messages or tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from enrich import cli

from ..enrich.conftest import API_KEY, NOTES, node, start_env

WRONG_KEY = "sk-proj-WRONGKEY-9f8e7d6c5b4a"


def _files_containing(folder: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_whole_pipeline_leaves_the_key_nowhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for env in start_env(tmp_path, NOTES):
        env.faults(refusal_fraction=0.4)
        first = env.run()  # through the library, answers and failures
        env.faults(refusal_fraction=0.0, disappear_after_polls=1)
        monkeypatch.setenv("OPENAI_BASE_URL", env.server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        project = ["--project-dir", str(env.root)]
        cli.main(["run", "--dry-run", *project])
        cli.main(["run", "--no-wait", "--full-refresh", *project])  # submits, exits
        cli.main(["run", "--no-wait", *project])  # the batch now 404s: an error message
        cli.main(["status", *project])
        monkeypatch.setenv("OPENAI_API_KEY", WRONG_KEY)
        cli.main(["run", "--no-wait", "--full-refresh", *project])  # 401

        out = capsys.readouterr()
        assert "rejected the API key" in out.err and "is not found at" in out.err
        for secret in (API_KEY, WRONG_KEY):
            assert secret not in out.out + out.err
            assert _files_containing(env.root, secret) == []
            assert _files_containing(tmp_path / "server", secret) == []
            assert all(secret not in r.message for r in first.results)
        assert node(first, "note_labels").extra["rows_failed"] > 0  # so error paths ran too
