from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from enrich import DependencyError, ProjectError, SqlError, load_project

from .conftest import MakeProject


def test_loads_models_seeds_and_dependencies(basic_project: Path) -> None:
    project = load_project(basic_project)
    assert set(project.seeds) == {"people"}
    assert project.models["stg_people"].depends_on == {"people"}
    assert project.models["people_by_city"].config.materialized == "table"
    assert project.models["stg_people"].config.materialized == "view"
    assert project.models["stg_people"].config.tags == ("staging",)
    assert project.models["stg_people"].path == "models/staging/stg_people.sql"


def test_syntax_error_names_file_line_and_column(make_project: MakeProject) -> None:
    root = make_project(
        {
            "models/broken.sql": """
            {{ config(
                materialized='table',
            ) }}
            select id,
                   name
            from people
            where
        """,
        }
    )
    with pytest.raises(SqlError) as info:
        load_project(root)
    assert (info.value.path, info.value.line) == ("models/broken.sql", 7)
    assert str(info.value).startswith("models/broken.sql:7:")
    assert "where" in str(info.value)


def test_unknown_ref_suggests_the_closest_name(basic_project: Path) -> None:
    (basic_project / "models/typo.sql").write_text("select * from {{ ref('stg_peeple') }}")
    with pytest.raises(
        DependencyError, match=r"models/typo.sql: ref\('stg_peeple'\).*did you mean 'stg_people'"
    ):
        load_project(basic_project)


def test_table_named_without_ref_is_still_a_dependency(basic_project: Path) -> None:
    (basic_project / "models/direct.sql").write_text(
        "with c as (select * from londoners) select * from c join main.Stg_People using (id)"
    )
    assert load_project(basic_project).models["direct"].depends_on == {"londoners", "stg_people"}


def test_cycle_between_models_is_reported_with_its_path(make_project: MakeProject) -> None:
    root = make_project(
        {
            "models/a.sql": "select * from {{ ref('b') }}",
            "models/b.sql": "select * from {{ ref('a') }}",
        }
    )
    with pytest.raises(DependencyError, match=r"a → b → a|b → a → b"):
        load_project(root)


def test_snowflake_model_is_transpiled_to_duckdb(make_project: MakeProject) -> None:
    root = make_project(
        {
            "models/sf.sql": """
            {{ config(dialect='snowflake') }}
            select iff(x > 1, 'big', 'small') as size, to_varchar(x) as label
            from (select 2 as x) qualify row_number() over (order by x) = 1
        """,
        }
    )
    compiled = load_project(root).models["sf"].sql
    assert "IFF" not in compiled.upper()
    relation = duckdb.sql(compiled)
    assert relation is not None
    assert relation.fetchall() == [("big", "2")]


def test_bigquery_ref_quotes_with_backticks_before_transpiling(make_project: MakeProject) -> None:
    root = make_project(
        {
            "models/base.sql": "select 1 as x",
            "models/bq.sql": """
            {{ config(dialect='bigquery') }}
            select safe_divide(x, 0) as y from {{ ref('base') }}
        """,
        }
    )
    model = load_project(root).models["bq"]
    assert model.depends_on == {"base"}
    assert '"base"' in model.sql


def test_unknown_dialect_and_config_key_suggest_fixes(make_project: MakeProject) -> None:
    root = make_project({"models/m.sql": "{{ config(dialect='snowflak') }} select 1"})
    with pytest.raises(ProjectError, match="did you mean 'snowflake'"):
        load_project(root)
    root = make_project({"models/m.sql": "{{ config(materialised='table') }} select 1"})
    with pytest.raises(
        ProjectError, match=r"config key 'materialised' is unknown.*did you mean 'materialized'"
    ):
        load_project(root)
    root = make_project({"models/m.sql": "{{ config(materialized='tabel') }} select 1"})
    with pytest.raises(ProjectError, match="did you mean 'table'"):
        load_project(root)


def test_var_source_and_this(make_project: MakeProject) -> None:
    root = make_project(
        {
            "pyproject.toml": """
            [tool.enrich]
            database = "warehouse.duckdb"
            [tool.enrich.vars]
            min_id = 2
            [tool.enrich.sources.raw]
            schema = "landing"
            tables = ["events"]
        """,
            "models/m.sql": """
            select '{{ this }}' as me, {{ var('min_id') }} as lo, {{ var('hi', 9) }} as hi
            from {{ source('raw', 'events') }}
        """,
        }
    )
    project = load_project(root)
    model = project.models["m"]
    assert '"landing"."events"' in model.sql
    assert "2 as lo, 9 as hi" in model.sql
    assert project.settings.database_path.endswith("warehouse.duckdb")
    assert model.sources == (("raw", "events"),)


def test_missing_var_and_undeclared_source_say_what_to_do(make_project: MakeProject) -> None:
    root = make_project({"models/m.sql": "select {{ var('nope') }}"})
    with pytest.raises(ProjectError, match=r"models/m.sql: var\('nope'\) is not set; add it under"):
        load_project(root)
    root = make_project({"models/m.sql": "select * from {{ source('raw', 'x') }}"})
    with pytest.raises(DependencyError, match=r"declare it under \[tool.enrich.sources.raw\]"):
        load_project(root)


def test_unknown_settings_key_suggests_the_right_one(make_project: MakeProject) -> None:
    root = make_project({"pyproject.toml": "[tool.enrich]\ndatabse = 'x.duckdb'\n"})
    with pytest.raises(ProjectError, match=r"unknown key 'databse'.*did you mean 'database'"):
        load_project(root)


def test_folder_without_settings_uses_defaults(make_project: MakeProject) -> None:
    root = make_project({"models/m.sql": "select 1 as x"})
    settings = load_project(root).settings
    assert settings.database_path == str(root / "enrich.duckdb")


def test_model_must_be_a_single_select(make_project: MakeProject) -> None:
    root = make_project({"models/m.sql": "select 1; select 2"})
    with pytest.raises(ProjectError, match="exactly one SELECT"):
        load_project(root)


def test_model_and_seed_with_the_same_name_clash(make_project: MakeProject) -> None:
    root = make_project({"seeds/x.csv": "a\n1\n", "models/x.sql": "select 1"})
    with pytest.raises(ProjectError, match="both define 'x'"):
        load_project(root)
