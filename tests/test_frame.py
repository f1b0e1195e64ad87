"""enrich.frame: a Polars or pandas DataFrame in, the same kind out, answers cached in DuckDB.

Against the local server over HTTP (the strict SDK, a manual clock the run's sleep advances);
requests are counted from the server's own record.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

import enrich
from enrich import ProjectError

from .enrich.conftest import Env, start_env

ROWS = 1000
LABELS = ["pets", "weather", "other"]
OUTPUT = {"label": LABELS, "tags": "VARCHAR[]", "score": "DOUBLE"}
OUTPUTS = ["label", "tags", "score"]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from start_env(tmp_path, {})


def notes(rows: int = ROWS) -> pl.DataFrame:
    """`rows` distinct notes keyed by `id`, and a column enrich is not asked about."""
    ids = pl.int_range(rows, eager=True).alias("id")
    text = pl.format("Note {}: the cat sat in the rain.", ids)
    return pl.select(ids, text.alias("text"), (ids % 7).alias("ignored"))


def label(env: Env, df: Any, **changes: Any) -> Any:
    """`df` through enrich.frame with a label, a list and a number, against the test server."""
    arguments: dict[str, Any] = {
        "key": "id",
        "prompt": "text",
        "output": OUTPUT,
        "system_prompt": "Label the note, tag it and score it.",
        "cache": env.root / "frames.duckdb",
        "options": env.options(),
    }
    return enrich.frame(df, **(arguments | changes))


def test_a_polars_frame_comes_back_typed_and_a_second_call_sends_nothing(env: Env) -> None:
    df = notes()
    out = label(env, df)
    assert isinstance(out, pl.DataFrame) and out.height == ROWS
    assert out["id"].to_list() == df["id"].to_list()  # the input's rows, in its order
    assert out.schema["id"] == pl.Int64
    assert out.schema["label"] == pl.Enum(LABELS)
    assert out.schema["tags"] == pl.List(pl.String)
    assert out.schema["score"] == pl.Float64
    assert out.schema["_enrich_status"] == pl.Enum(["answered", "pending", "failed"])
    assert set(out["_enrich_status"]) == {"answered"} and out["_enrich_error"].null_count() == ROWS
    assert out["label"].null_count() == 0 and out["score"].null_count() == 0
    assert {"_enrich_request_hash", "_enrich_source", "_enrich_batch_id"} <= set(out.columns)
    assert "text" not in out.columns and "ignored" not in out.columns
    assert len(env.received()) == ROWS

    again = label(env, df)
    assert len(env.received()) == ROWS  # nothing sent
    assert again.equals(out)


def test_a_pandas_frame_comes_back_as_pandas_and_shares_answers_with_polars(env: Env) -> None:
    df = pd.DataFrame(notes().to_dict(as_series=False))  # (to_pandas would need pyarrow)
    out = label(env, df)
    assert isinstance(out, pd.DataFrame) and len(out) == ROWS
    assert out["id"].dtype == df["id"].dtype
    assert isinstance(out["label"].dtype, pd.CategoricalDtype)
    assert list(out["label"].cat.categories) == LABELS
    assert out["score"].dtype == "float64"
    assert all(len(tags) >= 0 for tags in out["tags"])
    assert set(out["_enrich_status"]) == {"answered"}
    assert len(env.received()) == ROWS

    same = label(env, notes())  # the same rows as Polars: the same requests, already answered
    assert len(env.received()) == ROWS
    assert same["label"].cast(pl.String).to_list() == out["label"].astype(str).tolist()


def test_editing_one_row_sends_one_request(env: Env) -> None:
    df = notes()
    label(env, df)
    edited = df.with_columns(
        pl.when(pl.col("id") == 500).then(pl.lit("A dog barked.")).otherwise("text").alias("text")
    )
    out = label(env, edited)
    assert len(env.received()) == ROWS + 1
    assert set(out["_enrich_status"]) == {"answered"}


def test_a_frame_that_does_not_wait_is_collected_by_a_later_call_without_resending(
    env: Env,
) -> None:
    df = notes(50)
    first = label(env, df, wait=False)
    assert set(first["_enrich_status"]) == {"pending"}
    assert first["label"].null_count() == 50 and first["id"].to_list() == df["id"].to_list()
    env.clock.advance(3600)  # the batch finishes on the server meanwhile
    later = label(env, df, wait=False)
    assert set(later["_enrich_status"]) == {"answered"}
    assert len(env.received()) == 50 and env.files_uploaded() == 1


def test_failed_rows_say_why_and_other_config_keys_pass_through(env: Env) -> None:
    env.faults(fail_fraction=1.0, fail_status=400)
    out = label(env, notes(3), max_attempts=1, temperature=0.25)
    assert set(out["_enrich_status"]) == {"failed"} and out["label"].null_count() == 3
    assert all(error.startswith("http_400: ") for error in out["_enrich_error"])
    env.faults(fail_fraction=0.0)
    label(env, notes(3), max_attempts=1, temperature=0.25)
    assert len(env.received()) == 3  # out of attempts: not sent again
    out = label(env, notes(3), max_attempts=1, temperature=0.5)  # another request
    assert len(env.received()) == 6 and set(out["_enrich_status"]) == {"answered"}


def test_a_composite_key_keeps_its_dtypes(env: Env) -> None:
    df = pd.DataFrame(
        {"city": ["Oslo", "Oslo", "Rome"], "day": [1, 2, 1], "text": ["Rain.", "Sun.", "Sun."]}
    )
    out = label(env, df, key=["city", "day"])
    assert out[["city", "day"]].equals(df[["city", "day"]])
    assert list(out.dtypes[["city", "day"]]) == list(df.dtypes[["city", "day"]])
    assert len(env.received()) == 2  # the two identical requests are sent once


def test_an_image_column_goes_with_the_prompt(env: Env) -> None:
    df = pl.DataFrame(
        {"sku": ["a1"], "title": ["Oak chair"], "photo": ["https://img.example/a1.jpg"]}
    )
    out = label(env, df, key="sku", prompt="title", image="photo", output=None)
    assert out.columns[:2] == ["sku", "response"]
    assert "The image at https://img.example/a1.jpg shows it." in out["response"][0]


def test_offline_needs_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the default cache, here
    df = pl.DataFrame({"id": [1, 2], "text": ["The cat sat.", "Rain soon."]})
    out = enrich.frame(df, key="id", prompt="text", output={"label": LABELS}, offline=True)
    assert out["_enrich_status"].to_list() == ["answered", "answered"]
    assert set(out["_enrich_source"]) == {"offline"}
    assert (tmp_path / "enrich" / "frames.duckdb").exists()


def test_without_a_key_the_error_points_to_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    df = pl.DataFrame({"id": [1], "text": ["Hi."]})
    with pytest.raises(enrich.ApiError, match=r"offline=True to enrich\.frame") as raised:
        enrich.frame(df, key="id", prompt="text", cache=tmp_path / "f.duckdb")
    assert "\n" not in str(raised.value)


BAD = [
    (
        {"key": "idd"},
        "enrich.frame: key column 'idd' is not in the DataFrame (did you mean 'id'?); "
        "it has: id, text",
    ),
    ({"prompt": "body"}, "enrich.frame: prompt column 'body' is not in the DataFrame"),
    ({"image": "photo"}, "enrich.frame: image column 'photo' is not in the DataFrame"),
    ({"rows": {"id": [1, 1]}}, 'enrich.frame: key {"id":1} appears 2 times (1 key(s) repeat)'),
    ({"rows": {"id": [1, None]}}, 'enrich.frame: key {"id":null} has a NULL part'),
    (
        {"rows": {"text": ["Hi.", None]}},
        "enrich.frame: prompt column 'text' is NULL or empty at key {\"id\":2}",
    ),
    ({"rows": {"text": ["Hi.", "  "]}}, "enrich.frame: prompt column 'text' is NULL or empty"),
    ({"temprature": 0}, "enrich.frame: config key 'temprature' is unknown (did you mean"),
    ({"unique_key": "id"}, "enrich.frame: pass key=..., not unique_key=..."),
    ({"output": {"label": []}}, "enrich.frame: "),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_input_is_one_line_naming_the_column_and_nothing_is_sent(
    env: Env, change: dict[str, Any], message: str
) -> None:
    columns = {"id": [1, 2], "text": ["The cat sat.", "Rain soon."]} | change.pop("rows", {})
    with pytest.raises(ProjectError) as raised:
        label(env, pl.DataFrame(columns), **change)
    said = str(raised.value)
    assert said.startswith(message) and "\n" not in said
    assert env.received() == [] and env.files_uploaded() == 0


def test_a_pandas_index_is_not_a_key_and_the_error_says_so(env: Env) -> None:
    df = pd.DataFrame({"text": ["Hi."]}, index=pd.Index([7], name="id"))
    with pytest.raises(ProjectError, match=r"an index is not a column: df\.reset_index\(\)"):
        label(env, df)


def test_something_that_is_not_a_dataframe_is_refused(env: Env) -> None:
    with pytest.raises(ProjectError, match=r"^enrich\.frame: takes a Polars or pandas DataFrame"):
        label(env, {"id": [1], "text": ["Hi."]})
