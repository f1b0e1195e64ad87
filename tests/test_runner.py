from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

import enrich
from enrich.project.run_results import RunResult


def _statuses(result: RunResult) -> dict[str, str]:
    return {r.name: r.status for r in result.results}


def test_run_builds_seeds_then_models_in_dag_order(basic_project: Path) -> None:
    result = enrich.run(basic_project)
    names = [r.name for r in result.results]
    assert names[0] == "people"
    assert names.index("stg_people") < names.index("people_by_city")
    assert names.index("stg_people") < names.index("londoners")
    assert result.ok
    with duckdb.connect(str(basic_project / "enrich.duckdb")) as con:
        assert con.sql("select * from people_by_city order by city").fetchall() == [
            ("Helsinki", 1),
            ("London", 1),
            ("New York", 1),
        ]
        kinds = dict(
            con.sql("select table_name, table_type from information_schema.tables").fetchall()
        )
    assert kinds["stg_people"] == "VIEW" and kinds["people_by_city"] == "BASE TABLE"


def test_a_failing_model_skips_its_downstream_and_not_the_rest(basic_project: Path) -> None:
    (basic_project / "models/staging/stg_people.sql").write_text(
        "select id, no_such_column from people"
    )
    result = enrich.run(basic_project, threads=2)
    statuses = _statuses(result)
    assert statuses["stg_people"] == "error"
    assert statuses["people_by_city"] == statuses["londoners"] == "skipped"
    assert statuses["other"] == "success"
    assert not result.ok
    failed = result.by_status("error")[0]
    assert failed.message.startswith("models/staging/stg_people.sql: ")
    assert "no_such_column" in failed.message


def test_select_runs_only_the_chosen_models_and_their_seeds(basic_project: Path) -> None:
    result = enrich.run(basic_project, select=["londoners"])
    assert _statuses(result) == {"people": "success", "londoners": "error"}
    result = enrich.run(basic_project, select=["+londoners"], exclude=["people"])
    assert _statuses(result) == {"stg_people": "success", "londoners": "success"}


def test_switching_a_model_from_view_to_table(basic_project: Path) -> None:
    enrich.run(basic_project)
    path = basic_project / "models/other.sql"
    path.write_text("{{ config(materialized='table') }} select 42 as answer")
    assert enrich.run(basic_project, select=["other"]).ok
    path.write_text("select 43 as answer")
    assert enrich.run(basic_project, select=["other"]).ok
    with duckdb.connect(str(basic_project / "enrich.duckdb")) as con:
        assert con.sql("select * from other").fetchall() == [(43,)]


@pytest.mark.parametrize("threads", [1, 4])
def test_threads_build_the_same_result(basic_project: Path, threads: int) -> None:
    assert enrich.run(basic_project, threads=threads).ok


def test_run_results_and_manifest(basic_project: Path) -> None:
    (basic_project / "models/other.sql").write_text("select * from nowhere")
    enrich.run(basic_project)
    results = json.loads((basic_project / "target/run_results.json").read_text())
    by_name = {r["name"]: r for r in results["results"]}
    assert by_name["people"]["rows_affected"] == 3
    assert by_name["people_by_city"]["status"] == "success"
    assert by_name["people_by_city"]["rows_affected"] == 3
    assert by_name["other"]["status"] == "error" and "nowhere" in by_name["other"]["message"]
    assert set(by_name["stg_people"]["timing"]) == {"started_at", "execution_time"}
    assert results["elapsed_time"] >= 0
    manifest = json.loads((basic_project / "target/manifest.json").read_text())
    node = manifest["nodes"]["people_by_city"]
    assert node["depends_on"] == ["stg_people"]
    assert node["config"]["materialized"] == "table"
    assert node["config"]["tags"] == ["marts"]
    assert manifest["nodes"]["people"]["kind"] == "seed"


def test_compile_and_show(basic_project: Path) -> None:
    assert 'from "people"' in enrich.compile_model(basic_project, "stg_people")
    enrich.run(basic_project)
    table = enrich.show(basic_project, "stg_people", limit=2)
    assert table.columns == ["id", "name", "city"]
    assert table.rows == [(1, "ADA", "London"), (2, "GRACE", "New York")]
    assert "GRACE" in table.text


def test_list_nodes_in_dag_order(basic_project: Path) -> None:
    nodes = enrich.list_nodes(basic_project, select=["path:models/marts"])
    assert [n.name for n in nodes] == ["londoners", "people_by_city"]
    assert nodes[1].materialized == "table"


def test_artifacts_written_by_runs_at_once_are_whole(basic_project: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime

    from enrich.project import artifacts
    from enrich.project.loader import load_project

    project = load_project(basic_project)

    def write(_: int) -> None:  # as two runs starting together both write the manifest
        for _ in range(30):
            artifacts.write_manifest(project, datetime.now(UTC))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))

    manifest = json.loads((basic_project / "target/manifest.json").read_text())
    assert "people_by_city" in manifest["nodes"]
    assert [p.name for p in (basic_project / "target").iterdir()] == ["manifest.json"]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [(None, "244.1 MiB"), ('"1GB"', "953.6 MiB"), ('""', None)],
)
def test_runs_hold_duckdb_to_a_memory_limit(
    basic_project: Path, setting: str | None, expected: str
) -> None:
    """Unless the project says otherwise, a run's memory stays bounded (256MB) whatever its rows;
    DuckDB's own default (80% of RAM) would let it grow with them."""
    if setting is not None:
        pyproject = basic_project / "pyproject.toml"
        pyproject.write_text(
            pyproject.read_text().replace(
                "[tool.enrich]\n", f"[tool.enrich]\nmemory_limit = {setting}\n"
            )
        )
    (basic_project / "models" / "memory.sql").write_text(
        "{{ config(materialized='table') }}\nselect current_setting('memory_limit') as m"
    )
    assert enrich.run(basic_project, select=("memory",)).ok
    with duckdb.connect(str(basic_project / "enrich.duckdb")) as con:
        [(found,)] = con.sql("select m from memory").fetchall()
        [(duckdb_own,)] = con.sql("select current_setting('memory_limit')").fetchall()
    assert found == (expected or duckdb_own)  # "": DuckDB's own, as this plain connection has


def test_a_run_beside_the_users_own_connection_to_the_file(basic_project: Path) -> None:
    """A notebook that opened the database first: the run shares that connection's settings
    instead of failing on its own memory limit."""
    with duckdb.connect(str(basic_project / "enrich.duckdb")) as mine:
        assert enrich.run(basic_project).ok
        assert mine.sql("select count(*) from people_by_city").fetchall() == [(3,)]
