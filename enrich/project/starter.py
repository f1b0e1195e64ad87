"""A new project to start from: ``enrich init`` writes one enrich model, its seed and settings."""

from __future__ import annotations

from pathlib import Path

from ..errors import ProjectError

SETTINGS = """
[tool.enrich]
database = "enrich.duckdb"

[tool.enrich.defaults]
model = "gpt-4o-mini"
"""

FILES = {
    "seeds/reviews.csv": """id,review
1,"Sturdy and easy to assemble, the drawers glide well."
2,"Arrived scratched and one leg was missing."
3,"Does the job. Nothing special for the price."
""",
    "models/review_sentiment.sql": """{{ config(
    materialized='enrich',
    unique_key='id',
    system_prompt='Classify the sentiment of the product review and summarize it in one sentence.',
    output={'sentiment': ['positive', 'neutral', 'negative'], 'summary': 'VARCHAR'},
) }}
select id, review as prompt
from {{ ref('reviews') }}
""",
}


def init_project(root: Path) -> list[Path]:
    """Write a minimal project into `root` (made if missing); returns the files written.

    A folder that is already a project is left alone: that is an error saying so.
    """
    pyproject = root / "pyproject.toml"
    existing = pyproject.read_text(encoding="utf-8") if pyproject.is_file() else ""
    if "[tool.enrich" in existing or (root / "models").exists():
        raise ProjectError(
            f"{root.resolve()} is already an enrich project; run 'enrich run --offline' there"
        )
    root.mkdir(parents=True, exist_ok=True)
    written = [pyproject]
    pyproject.write_text(existing + ("\n" if existing else "") + SETTINGS.lstrip(), "utf-8")
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
