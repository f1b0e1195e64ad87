"""dbt's ``materialized='enrich'``, with real ``dbt`` processes (dbt-core, dbt-duckdb) against
``enrich serve-local`` in its own process, counted on the wire and in the server's own record.

dbt takes seconds to start, so one project goes through few invocations: a first ``dbt build``
on a new database with four threads, a second ``dbt run``, ``dbt build --full-refresh``,
``dbt run --empty``, then a shared ledger: ``dbt run`` with it, and ``dbt build --target prod``
into another database file, each checked for what it must do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from enrich import cli
from tests.reliability.test_crash import KEY, serve_local
from tests.wire import Wire, wire_proxy

NOTES = "id,body\n" + "".join(
    f"{i},{'A long note about the weather and the markets. ' * 4 if i <= 3 else 'Note'} {i}\n"
    for i in range(1, 11)
)
PRODUCTS = """asin,title,image_url
B01,Oak chair,https://images.example.com/b01.jpg
B02,Pine table,https://images.example.com/b02.jpg
B03,Steel lamp,https://images.example.com/b03.jpg
"""
LABELS = "['pets', 'weather', 'markets', 'other']"

FILES = {
    "dbt_project.yml": """
        name: shop
        version: "1.0"
        config-version: 2
        profile: shop
    """,
    "seeds/notes.csv": NOTES,
    "seeds/products.csv": PRODUCTS,
    "models/note_labels.sql": f"""
        {{{{ config(materialized='enrich', unique_key='id', system_prompt='Label the note.',
                  output={{'label': {LABELS}}}) }}}}
        select id, body as prompt from {{{{ ref('notes') }}}}
    """,
    "models/note_topics.sql": """
        {{ config(materialized='enrich', unique_key='id', model='gpt-4o-mini',
                  system_prompt='List the topics of the note and summarize it.',
                  output={'topics': 'VARCHAR[]', 'summary': 'VARCHAR'}) }}
        select id, body as prompt from {{ ref('notes') }}
    """,
    "models/product_captions.sql": """
        {{ config(materialized='enrich', unique_key='asin', max_tokens=300,
                  system_prompt='Caption the product from its photo.', output_column='caption') }}
        select asin, title as prompt, image_url from {{ ref('products') }}
    """,
    # The offline answer repeats the note: the three long notes do not fit 20 tokens and fail.
    "models/notes_warned.sql": """
        {{ config(materialized='enrich', unique_key='id', max_tokens=20, max_attempts=1,
                  system_prompt='Say it again.') }}
        select id, body as prompt from {{ ref('notes') }}
    """,
    "models/notes_errored.sql": """
        {{ config(materialized='enrich', unique_key='id', max_tokens=20, max_attempts=1,
                  system_prompt='Say it once more.', error_if_failed=2) }}
        select id, body as prompt from {{ ref('notes') }}
    """,
    "models/bad_keys.sql": """
        {{ config(materialized='enrich', unique_key='id') }}
        select 1 as id, 'one' as prompt union all select 1 as id, 'uno' as prompt
    """,
    "models/labelled_notes.sql": """
        {{ config(materialized='table') }}
        select n.id, n.body, l.label
        from {{ ref('notes') }} as n join {{ ref('note_labels') }} as l using (id)
    """,
    "models/schema.yml": f"""
        version: 2
        models:
          - name: note_labels
            columns:
              - name: label
                data_tests:
                  - not_null
                  - accepted_values:
                      values: {LABELS}
    """,
}
ENRICH_MODELS = ("note_labels", "note_topics", "product_captions", "notes_warned", "notes_errored")
SENT_FIRST = 10 + 10 + 3 + 10 + 10  # the rows of the enrich models; bad_keys sends nothing


@dataclass
class Shop:
    root: Path
    server_data: Path
    wire: Wire
    first: subprocess.CompletedProcess[str] | None = None  # the first build
    first_results: dict[str, dict[str, Any]] | None = None
    first_rows: dict[str, int] | None = None  # rows in each table right after it

    def dbt(self, *args: str) -> subprocess.CompletedProcess[str]:
        """One dbt command in its own process, reaching the server through the wire proxy."""
        env = {
            **os.environ,
            "OPENAI_BASE_URL": self.wire.base_url,
            "OPENAI_API_KEY": KEY,
            "DBT_PROFILES_DIR": str(self.root),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_VERSION_CHECK": "false",
        }
        done = subprocess.run(
            [str(Path(sys.executable).with_name("dbt")), *args, "--project-dir", str(self.root)],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert KEY not in done.stdout + done.stderr
        return done

    def executed(self) -> Counter[str]:
        """How many times the server ran each request, from its own record."""
        path = self.server_data / "executions.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return Counter(json.loads(line)["custom_id"] for line in lines if line.strip())

    def results(self) -> dict[str, dict[str, Any]]:
        """run_results.json of the last command, by node name."""
        data = json.loads((self.root / "target" / "run_results.json").read_text())
        return {r["unique_id"].split(".")[-1]: r for r in data["results"]}

    def rows(self) -> dict[str, int]:
        """Rows in each table of the project's schema."""
        tables = self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        )
        return {t: self.query(f'SELECT count(*) FROM "{t}"')[0][0] for (t,) in tables}

    def query(self, statement: str, database: str = "shop.duckdb") -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.root / database), read_only=True) as con:
            return con.execute(statement).fetchall()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """The project, enrich's package added by ``enrich dbt init`` and installed by dbt deps,
    built once with ``dbt build --threads 4`` on a new database."""
    base = tmp_path_factory.mktemp("dbt")
    root = base / "shop"
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    database, prod = (json.dumps(str(root / name)) for name in ("shop.duckdb", "prod.duckdb"))
    (root / "profiles.yml").write_text(
        f"shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {database}\n      threads: 1\n"
        f"    prod:\n      type: duckdb\n      path: {prod}\n      threads: 4\n"
    )
    assert cli.main(["dbt", "init", str(root)]) == 0
    data = base / "server"
    with serve_local(data, "--time-scale", "100000") as base_url, wire_proxy(base_url) as wire:
        shop = Shop(root, data, wire)
        deps = shop.dbt("deps")
        assert deps.returncode == 0, deps.stdout
        shop.first = shop.dbt("build", "--threads", "4")
        shop.first_results = shop.results()
        shop.first_rows = shop.rows()
        yield shop


def _types(shop: Shop, table: str) -> dict[str, str]:
    rows = shop.query(
        f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = "
        f"'{table}' AND table_schema = 'main'"
    )
    return {str(name): str(kind) for name, kind in rows}


def test_a_first_build_on_a_new_database_with_four_threads(shop: Shop) -> None:
    assert shop.first and shop.first_results and shop.first_rows
    build, results, rows = shop.first, shop.first_results, shop.first_rows
    out = build.stdout

    # Typed tables, every row sent once (later commands send nothing, checked below).
    sent = shop.wire.sent_for_execution()
    assert len(sent) == SENT_FIRST and max(sent.values()) == 1, out
    assert shop.executed() == sent
    assert _types(shop, "note_labels")["label"] == f"ENUM({LABELS[1:-1]})"
    assert _types(shop, "note_topics")["topics"] == "VARCHAR[]"
    assert _types(shop, "product_captions")["caption"] == "VARCHAR"
    assert rows["note_labels"] == rows["labelled_notes"] == rows["note_topics"] == 10
    for name in ("note_labels", "note_topics", "product_captions", "labelled_notes"):
        assert results[name]["status"] == "success", out
    assert results["note_labels"]["message"] == "OK 10 rows, 10 sent"
    assert all(r["status"] == "pass" for n, r in results.items() if n.startswith("accepted_"))

    # Failed rows over warn_if_failed: WARN, and the run says which model and why.
    assert results["notes_warned"]["status"] == "success"
    assert results["notes_warned"]["message"] == "WARN 7 rows, 3 failed"
    assert "notes_warned: 10 rows: 0 cached, 10 sent, 7 succeeded, 3 failed" in out
    assert "3 failed rows reach warn_if_failed = 1" in out

    # Over error_if_failed: ERROR, its table still built with what succeeded.
    assert results["notes_errored"]["status"] == "error"
    assert "3 failed rows reach error_if_failed = 2" in results["notes_errored"]["message"]
    assert rows["notes_errored"] == 7

    # A mistake fails its model in one line that names it, never a traceback.
    assert results["bad_keys"]["status"] == "error"
    assert "Database Error in model bad_keys (models/bad_keys.sql)" in out
    said = [line for line in out.splitlines() if "unique_key is not unique" in line]
    assert len(said) == 1 and said[0].strip().startswith("models/bad_keys.sql: "), out
    assert "Traceback" not in out + build.stderr
    assert build.returncode == 1


def test_a_second_run_sends_nothing(shop: Shop) -> None:
    uploads, creates, executed = shop.wire.uploads(), shop.wire.batch_creates(), shop.executed()
    again = shop.dbt("run")
    assert shop.wire.uploads() == uploads and shop.wire.batch_creates() == creates, again.stdout
    assert shop.executed() == executed
    results = shop.results()
    assert results["note_labels"]["message"] == "OK 10 rows, 0 sent"
    assert results["notes_warned"]["message"] == "WARN 7 rows, 3 failed"


def test_full_refresh_rebuilds_from_the_answers_it_has_and_the_tests_still_pass(
    shop: Shop,
) -> None:
    uploads, executed = shop.wire.uploads(), shop.executed()
    shop.dbt("build", "--full-refresh")
    assert shop.wire.uploads() == uploads and shop.executed() == executed
    results = shop.results()
    assert results["note_topics"]["message"] == "OK 10 rows, 0 sent"
    assert all(r["status"] == "pass" for n, r in results.items() if n.startswith("accepted_"))
    assert shop.query("SELECT count(*) FROM note_topics") == [(10,)]


def test_empty_builds_empty_typed_tables_and_sends_nothing(shop: Shop) -> None:
    uploads, executed = shop.wire.uploads(), shop.executed()
    empty = shop.dbt("run", "--empty", "--select", *ENRICH_MODELS)
    assert empty.returncode == 0, empty.stdout
    assert shop.wire.uploads() == uploads and shop.executed() == executed
    assert shop.query("SELECT count(*) FROM note_labels") == [(0,)]
    assert _types(shop, "note_labels")["label"] == f"ENUM({LABELS[1:-1]})"


def test_with_a_shared_ledger_prod_is_built_from_what_dev_paid_for(shop: Shop) -> None:
    uploads, creates, executed = shop.wire.uploads(), shop.wire.batch_creates(), shop.executed()
    shared = ("--vars", "{enrich_ledger: ledger.duckdb}")
    dev = shop.dbt("run", *shared)  # dev's own answers move into the shared ledger
    prod = shop.dbt("build", "--target", "prod", *shared)  # another file, a new database
    assert shop.wire.uploads() == uploads and shop.wire.batch_creates() == creates, prod.stdout
    assert shop.executed() == executed
    results = shop.results()
    assert results["note_labels"]["message"] == "OK 10 rows, 0 sent", prod.stdout
    assert results["notes_warned"]["message"] == "WARN 7 rows, 3 failed"
    assert all(r["status"] == "pass" for n, r in results.items() if n.startswith("accepted_"))
    assert "Traceback" not in dev.stdout + dev.stderr + prod.stdout + prod.stderr
    counts = shop.query("SELECT count(*), count(label) FROM note_labels", "prod.duckdb")
    assert counts == [(10, 10)]
    assert shop.query("SELECT count(*) FROM _enrich.requests", "prod.duckdb") == [(0,)]
    assert shop.query("SELECT count(*) FROM _enrich.requests") == [(0,)]
    assert shop.query("SELECT count(*) FROM _enrich.requests", "ledger.duckdb") == [(SENT_FIRST,)]
