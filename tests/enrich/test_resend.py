"""Re-sending is explicit: ``--full-refresh`` rebuilds from the ledger, ``--resend`` pays again
only after saying how much, and asks (or needs ``--yes``)."""

from __future__ import annotations

import pytest

from enrich import cli

from .conftest import API_KEY, Env


def _cli(env: Env, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setenv("OPENAI_BASE_URL", env.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    # The command line sleeps on the wall clock: run without waiting, then collect.
    code = cli.main(["run", "--project-dir", str(env.root), "--no-wait", *args])
    env.clock.advance(3600)
    return code


def test_resend_without_a_terminal_needs_yes_and_says_what_it_costs(
    notes: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(notes, monkeypatch) == 0 and _cli(notes, monkeypatch) == 0
    assert len(notes.received()) == 4
    capsys.readouterr()

    assert _cli(notes, monkeypatch, "--resend") == 1
    err = capsys.readouterr().err
    assert "--resend sends 4 requests again (~$" in err and "add --yes" in err
    assert len(notes.received()) == 4

    assert _cli(notes, monkeypatch, "--full-refresh") == 0
    assert len(notes.received()) == 4

    assert _cli(notes, monkeypatch, "--resend", "--yes") == 0
    assert _cli(notes, monkeypatch) == 0
    assert len(notes.received()) == 8
