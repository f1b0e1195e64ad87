"""dry runs, cost limits, previews and status, through the library and the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from enrich import cli
from enrich.errors import EnrichError, ExecutionError
from enrich.project import runner

from .conftest import NOTES, Env, copy_example, node, submitted


def test_dry_run_reports_the_plan_and_sends_nothing(notes: Env) -> None:
    result = notes.run(dry_run=True)

    extra = node(result, "note_labels").extra
    assert extra["dry_run"] is True
    assert (extra["rows"], extra["rows_cached"], extra["requests_to_send"], extra["batches"]) == (
        5,
        0,
        4,
        1,
    )
    assert extra["estimated_prompt_tokens"] > 0 and extra["estimated_cost_usd"] > 0
    assert notes.files_uploaded() == 0 and notes.query("SELECT count(*) FROM _enrich.requests") == [
        (0,)
    ]


def test_a_cost_over_the_limit_stops_before_anything_is_uploaded(notes: Env) -> None:
    result = notes.run(max_cost_usd=0.000001)

    failure = node(result, "note_labels")
    assert (
        failure.status == "error"
        and "over the limit of $1e-06; nothing was sent" in failure.message
    )
    assert notes.files_uploaded() == 0


def test_a_cost_limit_needs_a_price_for_the_model(notes: Env) -> None:
    model = notes.root / "models" / "note_labels.sql"
    model.write_text(
        model.read_text().replace("unique_key='id',", "unique_key='id', model='my-finetune',")
    )
    settings = NOTES["pyproject.toml"].replace(
        "[tool.enrich]", "[tool.enrich]\n        max_cost_usd = 5"
    )
    notes.write("pyproject.toml", settings)

    failure = node(notes.run(), "note_labels")

    assert "no price for model 'my-finetune'" in failure.message
    assert '[tool.enrich.prices."my-finetune"]' in failure.message
    assert notes.files_uploaded() == 0


def test_a_project_price_lets_the_limit_work(notes: Env) -> None:
    notes.write(
        "pyproject.toml",
        NOTES["pyproject.toml"]
        + '\n[tool.enrich.prices."gpt-4o-mini"]\ninput = 1000.0\noutput = 1000.0\n',
    )

    failure = node(notes.run(max_cost_usd=0.01), "note_labels")

    assert "over the limit of $0.01" in failure.message


def test_preview_answers_now_caches_and_leaves_the_table_alone(notes: Env) -> None:
    with pytest.raises(
        ExecutionError, match=r"build what it reads first: enrich run -s \+note_labels"
    ):
        runner.preview(notes.root, "note_labels", 2, options=notes.options())
    runner.seed(notes.root)
    table = runner.preview(notes.root, "note_labels", 2, options=notes.options(), clock=notes.now)

    assert table.columns[:4] == ["id", "prompt", "label", "score"]
    assert [row[table.columns.index("_enrich_status")] for row in table.rows] == [
        "succeeded",
        "succeeded",
    ]
    assert notes.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'note_labels'"
    ) == [(0,)]

    result = notes.run()
    assert submitted(result, "note_labels") == 2  # notes 1 and 2 were answered by the preview
    assert node(result, "note_labels").extra["rows_cached"] == 3  # note 5 repeats note 1


def test_preview_of_a_plain_model_says_what_to_use(notes: Env) -> None:
    notes.write("models/plain.sql", "select 1 as x")
    with pytest.raises(EnrichError, match="preview takes an enrich model"):
        runner.preview(notes.root, "plain", 2, options=notes.options())


def test_no_key_says_how_to_get_one(notes: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = runner.run(notes.root)

    failure = node(result, "note_labels")
    assert "OPENAI_API_KEY is not set" in failure.message and "--offline" in failure.message


def test_status_shows_batches_in_flight_and_failures(notes: Env) -> None:
    notes.faults(refusal_fraction=0.5)
    notes.run()

    failures = runner.status(notes.root).failures.rows
    assert [row[:3] for row in failures] == [("note_labels", "refusal", 2)]

    notes.faults(refusal_fraction=0.0)
    notes.run(wait=False)
    batches = runner.status(notes.root).batches.rows
    assert [(row[0], row[5]) for row in batches] == [("note_labels", 2)]


# The real CLI on the example project, offline (the README's first command).


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def test_cli_offline_run_builds_the_examples_and_a_second_sends_nothing(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "--offline", "--project-dir", str(example)]) == 0
    first = capsys.readouterr()
    assert "1000 rows: 0 cached, 1000 sent, 1000 succeeded" in first.out
    assert "305 rows: 0 cached, 305 sent, 305 succeeded" in first.out
    assert "submitted 1000 requests" in first.err  # progress lines when not on a terminal

    assert cli.main(["run", "--offline", "--project-dir", str(example)]) == 0
    assert "1000 rows: 1000 cached, 0 sent" in capsys.readouterr().out


def test_cli_dry_run_and_max_cost(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--dry-run", "--project-dir", str(example)]) == 0
    out = capsys.readouterr().out
    assert "dry run: 1000 rows, 0 cached, 1000 requests to send in 1 batch(es)" in out
    assert "at batch prices" in out

    code = cli.main(
        [
            "run",
            "--offline",
            "--max-cost",
            "0.001",
            "-s",
            "+movie_categories",
            "--project-dir",
            str(example),
        ]
    )
    captured = capsys.readouterr()
    assert code == 1 and "over the limit of $0.001; nothing was sent" in captured.err


def test_cli_preview_and_status(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["seed", "--project-dir", str(example)]) == 0
    assert cli.main(["run", "-s", "movies", "--project-dir", str(example)]) == 0
    capsys.readouterr()
    assert (
        cli.main(
            [
                "preview",
                "movie_categories",
                "--limit",
                "2",
                "--offline",
                "--project-dir",
                str(example),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "The Shawshank Redemption" in out and "categories" in out and "succeeded" in out

    assert cli.main(["status", "--project-dir", str(example)]) == 0
    assert "Batches not yet collected" in capsys.readouterr().out


def test_cli_without_a_key_points_to_offline(
    example: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert cli.main(["run", "--project-dir", str(example)]) == 1
    assert "OPENAI_API_KEY is not set; export it, or run with --offline" in capsys.readouterr().err


def test_show_on_an_enrich_model_shows_its_keys_and_answers(notes: Env) -> None:
    with pytest.raises(ExecutionError, match="has no table yet; build it with enrich run -s"):
        runner.show(notes.root, "note_labels")
    notes.run()
    table = runner.show(notes.root, "note_labels", limit=2)
    assert table.columns[:3] == ["id", "label", "score"] and "_enrich_source" in table.columns


def test_a_model_whose_upstream_is_not_built_says_which_to_build(notes: Env) -> None:
    outcome = runner.run(
        notes.root, select=["note_labels"], exclude=["notes"], options=notes.options()
    )
    message = outcome.results[-1].message
    assert message == (
        "models/note_labels.sql: reads notes, not built yet; build what it reads first: "
        "enrich run -s +note_labels"
    )
