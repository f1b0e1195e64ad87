"""The request bodies enrich's README models send are accepted, synchronously and in batches, and
answered in the shape they ask for."""

from __future__ import annotations

import json
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from enrich.server.schemas import load_schemas

from .conftest import Harness, batch_line

CATEGORIES = {
    "type": "object",
    "properties": {
        "categories": {"type": "array", "items": {"type": "string"}},
        "summary": {"type": "string"},
        "released": {"type": "string", "format": "date"},
        "mood": {"type": "string", "enum": ["dark", "light"]},
    },
    "required": ["categories", "summary", "released", "mood"],
    "additionalProperties": False,
}
SYSTEM = {"role": "system", "content": "Extract movie categories and a one-sentence summary."}
IMAGE = "https://m.media-amazon.com/images/I/41zMuj2wvvL.jpg"

# models/movie_categories.sql: temperature 0.1, a system prompt, output={...}: strict json_schema.
MOVIE: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "temperature": 0.1,
    "messages": [SYSTEM, {"role": "user", "content": "Two imprisoned men bond over years."}],
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "answer", "strict": True, "schema": CATEGORIES},
    },
}
# models/furniture_captions.sql: temperature 0.2, max_tokens 300, the title and the image together.
CAPTION: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "temperature": 0.2,
    "max_tokens": 300,
    "messages": [
        {"role": "system", "content": "Write a short, descriptive caption for the item."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Wooden side table"},
                {"type": "image_url", "image_url": {"url": IMAGE}},
            ],
        },
    ],
}
EMBEDDING: dict[str, Any] = {
    "model": "text-embedding-3-small",
    "input": "Two imprisoned men bond over years.",
    "encoding_format": "float",
}
# endpoint='/v1/responses' with output={...}: the schema goes in text.format.
RESPONSE: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "input": [
        SYSTEM,
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Two imprisoned men bond over years."},
                {"type": "input_image", "image_url": IMAGE},
            ],
        },
    ],
    "text": {
        "format": {"type": "json_schema", "name": "answer", "strict": True, "schema": CATEGORIES}
    },
}


def test_readme_bodies_are_accepted_synchronously(harness: Harness) -> None:
    client = harness.client
    movie = client.chat.completions.create(**MOVIE)
    jsonschema.validate(json.loads(movie.choices[0].message.content), CATEGORIES)
    caption = client.chat.completions.create(**CAPTION)
    assert IMAGE in caption.choices[0].message.content
    assert len(client.embeddings.create(**EMBEDDING).data[0].embedding) == 1536
    response = client.responses.create(**RESPONSE)
    jsonschema.validate(json.loads(response.output_text), CATEGORIES)


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/v1/chat/completions", MOVIE),
        ("/v1/chat/completions", CAPTION),
        ("/v1/embeddings", EMBEDDING),
        ("/v1/responses", RESPONSE),
    ],
)
def test_readme_bodies_are_accepted_in_batches(
    harness: Harness, url: str, body: dict[str, Any]
) -> None:
    lines = [batch_line(f"row-{i}", url, body) for i in range(3)]
    batch = harness.settle(harness.submit(lines, endpoint=url).id)
    assert (batch.status, batch.error_file_id, batch.request_counts.completed) == (
        "completed",
        None,
        3,
    )
    assert batch.usage.input_tokens > 0


@pytest.mark.parametrize(
    ("path", "body", "schema"),
    [
        ("/chat/completions", MOVIE, "CreateChatCompletionResponse"),
        ("/chat/completions", CAPTION, "CreateChatCompletionResponse"),
        ("/embeddings", EMBEDDING, "CreateEmbeddingResponse"),
        ("/responses", RESPONSE, "Response"),
    ],
)
def test_answers_match_the_official_response_schemas(
    harness: Harness, path: str, body: dict[str, Any], schema: str
) -> None:
    answer = harness.client.post(path, body=body, cast_to=object)
    root = {"components": {"schemas": load_schemas()}, "$ref": f"#/components/schemas/{schema}"}
    jsonschema.Draft202012Validator(root).validate(answer)
