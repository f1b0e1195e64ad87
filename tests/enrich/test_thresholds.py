"""Failure thresholds, dbt style: a model whose rows failed warns or fails the run, its table
still built with what succeeded; and a database that would forget what was paid for is refused."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from enrich import ProjectError, cli
from enrich.project import runner

from .conftest import NOTES, Env, node, start_env

TEN = "id,body,topic\n" + "".join(f"{i},Note number {i}.,misc\n" for i in range(1, 11))
MODEL = """
{{{{ config(materialized='enrich', unique_key='id', system_prompt='Label the note.',
          output={{'label': ['pets', 'weather', 'markets', 'other']}}{extra}) }}}}
select id, body as prompt from {{{{ ref('notes') }}}}
"""


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Callable[[str], Env]]:
    """An Env for the ten-note model with `extra` config, stopped when the test ends."""
    started: list[Generator[Env, None, None]] = []

    def make(extra: str = "") -> Env:
        files = NOTES | {
            "seeds/notes.csv": TEN,
            "models/note_labels.sql": MODEL.format(extra=extra),
        }
        started.append(start_env(tmp_path, files))
        return next(started[-1])

    yield make
    for generator in started:
        generator.close()


@pytest.mark.parametrize(
    ("extra", "share", "status"),
    [
        ("", 1.0, "error"),  # by default a model errors when every row failed…
        ("", 0.3, "warn"),  # …and warns when any did
        (", error_if_failed='20%'", 0.3, "error"),
        (", error_if_failed=4", 0.3, "warn"),
        (", error_if_failed=3", 0.3, "error"),
        (", warn_if_failed='50%'", 0.3, "success"),
    ],
)
def test_failed_rows_set_the_models_status_by_its_thresholds(
    make_env: Callable[[str], Env], extra: str, share: float, status: str
) -> None:
    env = make_env(extra)
    env.faults(fail_fraction=share, fail_status=400)
    result = env.run()
    labels = node(result, "note_labels")
    assert labels.status == status and result.ok == (status != "error")
    succeeded = 10 - round(10 * share)
    assert env.query("SELECT count(*) FROM note_labels") == [(succeeded,)]
    if status != "success":
        assert f"{round(10 * share)} failed rows reach" in labels.message


def test_an_errored_model_is_exit_code_1_on_the_command_line(
    make_env: Callable[[str], Env],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = make_env("")
    env.faults(fail_fraction=1.0, fail_status=400)
    monkeypatch.setenv("OPENAI_BASE_URL", env.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-enrich-0123456789abcdef")
    # The CLI sleeps on the wall clock, so it runs without waiting: submit, then collect.
    code = cli.main(["run", "--project-dir", str(env.root), "--no-wait"])
    assert code in (0, 1)
    env.clock.advance(3600)
    code = cli.main(["run", "--project-dir", str(env.root), "--no-wait"])
    out = capsys.readouterr()
    assert code == 1 and "ERROR" in out.err and "error_if_failed = 100%" in out.err


def test_a_threshold_that_is_not_a_count_or_a_percentage_is_refused(
    make_env: Callable[[str], Env],
) -> None:
    env = make_env(", warn_if_failed='many'")
    with pytest.raises(ProjectError, match="warn_if_failed is a number of failed rows"):
        runner.run(env.root, options=env.options())


def test_an_in_memory_database_is_refused_for_enrich_models(
    make_env: Callable[[str], Env],
) -> None:
    env = make_env("")
    env.write(
        "pyproject.toml",
        '[tool.enrich]\ndatabase = ":memory:"\n[tool.enrich.defaults]\nmodel = "gpt-4o-mini"\n',
    )
    with pytest.raises(ProjectError, match="forgets what enrich models"):
        env.run()
    assert env.received() == [] and env.files_uploaded() == 0
    assert env.run(dry_run=True).ok
