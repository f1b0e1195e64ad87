"""Shared fixtures: small projects written into tmp_path, run with real DuckDB."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

MakeProject = Callable[[dict[str, str]], Path]


@pytest.fixture
def make_project(tmp_path: Path) -> MakeProject:
    """Write {relative path: text} into a fresh project folder and return the folder (with an
    empty ``[tool.enrich]`` unless the files bring their own pyproject.toml)."""

    def make(files: dict[str, str]) -> Path:
        root = tmp_path / "project"
        root.mkdir(exist_ok=True)
        files = {"pyproject.toml": "[tool.enrich]\n", **files}  # what makes a folder a project
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return root

    return make


BASIC = {
    "seeds/people.csv": """
        id,name,city
        1,Ada,London
        2,Grace,New York
        3,Linus,Helsinki
    """,
    "models/staging/stg_people.sql": """
        {{ config(tags=['staging']) }}
        select id, upper(name) as name, city from {{ ref('people') }}
    """,
    "models/marts/people_by_city.sql": """
        {{ config(materialized='table', tags=['marts']) }}
        select city, count(*) as n from {{ ref('stg_people') }} group by city
    """,
    "models/marts/londoners.sql": """
        select * from {{ ref('stg_people') }} where city = 'London'
    """,
    "models/other.sql": """
        select 42 as answer
    """,
}


@pytest.fixture
def basic_project(make_project: MakeProject) -> Path:
    """A seed, a staging view, two marts and one independent model."""
    return make_project(BASIC)
