from __future__ import annotations

from pathlib import Path

import duckdb

import enrich

from .conftest import MakeProject


def _types(root: Path, table: str) -> dict[str, str]:
    with duckdb.connect(str(root / "enrich.duckdb")) as con:
        return dict(
            con.execute(
                "select column_name, data_type from information_schema.columns"
                " where table_name = ?",
                [table],
            ).fetchall()
        )


def test_seed_types_come_from_the_sniffer_and_can_be_overridden(make_project: MakeProject) -> None:
    root = make_project(
        {
            "pyproject.toml": """
            [tool.enrich.seeds.movies.column_types]
            year = "VARCHAR"
        """,
            "seeds/movies.csv": "title,year,rating\nAlien,1979,8.5\nHeat,1995,8.3\n",
        }
    )
    result = enrich.seed(root)
    assert [(r.name, r.status, r.rows_affected) for r in result.results] == [
        ("movies", "success", 2)
    ]
    assert _types(root, "movies") == {"title": "VARCHAR", "year": "VARCHAR", "rating": "DOUBLE"}


def test_seed_reloads_only_when_its_file_changes(make_project: MakeProject) -> None:
    root = make_project({"seeds/s.csv": "a\n1\n"})
    assert enrich.seed(root).results[0].status == "success"
    assert enrich.seed(root).results[0].status == "unchanged"
    (root / "seeds/s.csv").write_text("a\n1\n2\n")
    changed = enrich.seed(root).results[0]
    assert (changed.status, changed.rows_affected) == ("success", 2)
    assert enrich.seed(root, full_refresh=True).results[0].status == "success"


def test_seed_reloads_when_its_table_was_dropped(make_project: MakeProject) -> None:
    root = make_project({"seeds/s.csv": "a\n1\n"})
    enrich.seed(root)
    with duckdb.connect(str(root / "enrich.duckdb")) as con:
        con.execute("drop table s")
    assert enrich.seed(root).results[0].status == "success"


def test_ragged_row_names_the_file_and_line(make_project: MakeProject) -> None:
    root = make_project({"seeds/bad.csv": "a,b\n1,2\n3,4,5\n6,7\n"})
    result = enrich.seed(root).results[0]
    assert result.status == "error"
    assert "bad.csv:3: too many columns" in result.message


def test_bad_encoding_names_the_file_and_line(make_project: MakeProject) -> None:
    root = make_project({})
    (root / "seeds").mkdir()
    (root / "seeds/latin1.csv").write_bytes(b"a,b\n1,caf\xe9\n")
    result = enrich.seed(root).results[0]
    assert result.status == "error"
    assert "latin1.csv:2: invalid encoding" in result.message
    assert "UTF-8" in result.message


def test_the_example_datasets_load(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    root = tmp_path / "example"
    (root / "seeds").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.enrich]\n")
    for name in ("imdb_top_1000.csv", "amazon_furniture_dataset.csv"):
        (root / "seeds" / name).write_bytes((repo / "seeds" / name).read_bytes())
    rows = {r.name: r.rows_affected for r in enrich.seed(root).results}
    assert rows == {"imdb_top_1000": 1000, "amazon_furniture_dataset": 312}
