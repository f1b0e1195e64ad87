"""The OpenAI cookbook's "Batch processing with the Batch API" flow, unchanged, on the server."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from .conftest import Harness

SEEDS = Path(__file__).resolve().parents[2] / "seeds"

CATEGORIZE = """
Your goal is to extract movie categories from movie descriptions, as well as a 1-sentence summary
for these movies. You will be provided with a movie description, and you will output a json object
containing the following information:
{ categories: string[] // Array of categories based on the movie description,
  summary: string // 1-sentence summary of the movie based on the movie description }
"""
CAPTION = """
Your goal is to generate short, descriptive captions for images of items. You will be provided
with an item image and the name of that item and you will output a caption that captures the most
important information about the item.
"""


def _rows(name: str) -> list[dict[str, str]]:
    with (SEEDS / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _run(harness: Harness, tasks: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    path = harness.folder / "batch_tasks.jsonl"
    with path.open("w") as file:
        for obj in tasks:
            file.write(json.dumps(obj) + "\n")
    with open(path, "rb") as handle:
        batch_file = harness.client.files.create(file=handle, purpose="batch")
    batch_job = harness.client.batches.create(
        input_file_id=batch_file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    while (batch_job := harness.client.batches.retrieve(batch_job.id)).status != "completed":
        assert batch_job.status in ("validating", "in_progress", "finalizing"), batch_job.errors
        harness.clock.advance(1.0)
    assert batch_job.output_file_id is not None
    content = harness.client.files.content(batch_job.output_file_id).content
    results = [json.loads(line) for line in content.decode().splitlines()]
    return batch_job, results


def test_movie_categorization(harness: Harness) -> None:
    tasks: list[dict[str, Any]] = [
        {
            "custom_id": f"task-{index}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4o-mini",
                "temperature": 0.1,
                "response_format": {"type": "json_object"},
                "messages": [
                    {"role": "system", "content": CATEGORIZE},
                    {"role": "user", "content": row["Overview"]},
                ],
            },
        }
        for index, row in enumerate(_rows("imdb_top_1000.csv"))
    ]
    batch, results = _run(harness, tasks)
    assert sorted(r["custom_id"] for r in results) == sorted(t["custom_id"] for t in tasks)
    assert batch.request_counts.total == batch.request_counts.completed == 1000
    assert [r["custom_id"] for r in results] != [t["custom_id"] for t in tasks]  # shuffled
    for result in results:
        json.loads(result["response"]["body"]["choices"][0]["message"]["content"])
    assert batch.usage.input_tokens > 0 and batch.model == "gpt-4o-mini"


def test_furniture_captions_with_images(harness: Harness) -> None:
    tasks: list[dict[str, Any]] = [
        {
            "custom_id": f"task-{index}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4o-mini",
                "temperature": 0.2,
                "max_tokens": 300,
                "messages": [
                    {"role": "system", "content": CAPTION},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": row["title"]},
                            {"type": "image_url", "image_url": {"url": row["primary_image"]}},
                        ],
                    },
                ],
            },
        }
        for index, row in enumerate(_rows("amazon_furniture_dataset.csv"))
    ]
    batch, results = _run(harness, tasks)
    assert len(results) == len(tasks) == 312
    by_id = {r["custom_id"]: r for r in results}
    first = by_id["task-0"]["response"]["body"]["choices"][0]["message"]["content"]
    assert tasks[0]["body"]["messages"][1]["content"][1]["image_url"]["url"] in first
    assert batch.request_counts.failed == 0 and batch.error_file_id is None
