"""The two cookbook examples end to end, and the incremental promises the README makes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from .conftest import Env, node, submitted


def test_cookbook_examples_build_typed_joinable_tables(cookbook: Env) -> None:
    result = cookbook.run()

    assert result.ok, [r.message for r in result.results if r.status != "success"]
    movies = node(result, "movie_categories").extra
    assert (movies["rows"], movies["rows_succeeded"], movies["rows_failed"]) == (1000, 1000, 0)
    assert node(result, "furniture_captions").extra["rows_succeeded"] == 305
    types = dict(
        cookbook.query(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'movie_categories'"
        )
    )
    assert types["categories"] == "VARCHAR[]" and types["summary"] == "VARCHAR"
    assert {"_enrich_model", "_enrich_request_hash", "_enrich_batch_id"} <= set(types)
    joined = cookbook.query(
        "SELECT count(*), count(categories), count(DISTINCT title) FROM movies_enriched"
    )
    assert joined == [(1000, 1000, 999)]  # two films are called "Drishyam"
    captions = cookbook.query(
        "SELECT count(*), count(DISTINCT asin), min(length(caption)) FROM furniture_captions"
    )
    assert captions[0][:2] == (305, 305) and captions[0][2] > 10


def test_vision_requests_follow_the_cookbook_shape(cookbook: Env) -> None:
    cookbook.run(select=("+furniture_captions",), wait=False)

    [uploaded] = cookbook.server.engine.list_files(None, "desc", 10, None)["data"]
    lines = cookbook.server.engine.file_content(uploaded["id"]).read_text().splitlines()
    first = json.loads(lines[0])
    body = first["body"]
    assert len(lines) == 305 and len(first["custom_id"]) == 64
    assert first["url"] == "/v1/chat/completions" and body["model"] == "gpt-4o-mini"
    assert (body["temperature"], body["max_tokens"]) == (0.2, 300)
    system, user = body["messages"]
    assert system["role"] == "system" and system["content"].startswith("Your goal is to generate")
    assert [part["type"] for part in user["content"]] == ["text", "image_url"]
    assert user["content"][1]["image_url"]["url"].startswith("https://m.media-amazon.com/")


def test_second_run_sends_nothing(cookbook: Env) -> None:
    cookbook.run()
    before = len(cookbook.received())

    again = cookbook.run()

    assert submitted(again, "movie_categories") == 0 and submitted(again, "furniture_captions") == 0
    assert node(again, "movie_categories").extra["rows_cached"] == 1000
    assert len(cookbook.received()) == before == 1305


def test_editing_one_overview_sends_exactly_one_request(cookbook: Env) -> None:
    cookbook.run()
    seed = cookbook.root / "seeds" / "imdb_top_1000.csv"
    text = seed.read_text(encoding="utf-8")
    seed.write_text(
        text.replace("Two imprisoned men bond", "Two imprisoned men befriend", 1), encoding="utf-8"
    )

    again = cookbook.run()

    assert submitted(again, "movie_categories") == 1
    assert submitted(again, "furniture_captions") == 0
    summary = cookbook.query(
        "SELECT summary FROM movie_categories WHERE title = 'The Shawshank Redemption'"
    )
    assert "befriend" in summary[0][0]


def test_editing_the_prompt_resends_every_movie_and_no_furniture(cookbook: Env) -> None:
    cookbook.run()
    prompt = cookbook.root / "prompts" / "categorize_movie.md"
    prompt.write_text(
        prompt.read_text(encoding="utf-8") + "\nUse British spelling.\n", encoding="utf-8"
    )

    again = cookbook.run()

    assert submitted(again, "movie_categories") == 1000
    assert submitted(again, "furniture_captions") == 0
    executed = Counter(line["custom_id"] for line in cookbook.received())
    assert max(executed.values()) == 1  # a new prompt is a new request: nothing ran twice


def test_run_results_report_the_figures(cookbook: Env) -> None:
    cookbook.run()
    document = json.loads((cookbook.root / "target" / "run_results.json").read_text())
    movies = next(r for r in document["results"] if r["name"] == "movie_categories")
    for key in (
        "rows",
        "requests_submitted",
        "rows_cached",
        "rows_succeeded",
        "rows_failed",
        "rows_pending",
        "batch_ids",
        "prompt_tokens",
        "completion_tokens",
        "estimated_cost_usd",
        "cost_usd",
    ):
        assert key in movies
    assert movies["requests_submitted"] == 1000 and len(movies["batch_ids"]) == 1
    assert (
        movies["prompt_tokens"] > 100_000
        and 0 < movies["cost_usd"] < movies["estimated_cost_usd"] * 2
    )


def test_drishyam_is_not_a_unique_title(cookbook: Env) -> None:
    model = cookbook.root / "models" / "movie_categories.sql"
    model.write_text(
        model.read_text().replace("unique_key=['title', 'year']", "unique_key='title'")
    )

    result = cookbook.run(select=("+movie_categories",))

    failure = node(result, "movie_categories")
    assert failure.status == "error"
    assert "models/movie_categories.sql" in failure.message and "Drishyam" in failure.message
    assert "unique_key is not unique" in failure.message
    assert cookbook.files_uploaded() == 0 and cookbook.received() == []


def test_example_project_files_are_the_ones_in_the_repository(cookbook: Env) -> None:
    repo = Path(__file__).resolve().parents[2]
    for rel in (
        "models/movie_categories.sql",
        "models/furniture_captions.sql",
        "models/movies_enriched.sql",
    ):
        assert (cookbook.root / rel).read_text() == (repo / rel).read_text()
