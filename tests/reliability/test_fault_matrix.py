"""The fault matrix: every failure the local server injects, what enrich makes of it.

Each row: the fault (on for the whole first run), how the model's 10 rows end after that run
(succeeded, failed, pending), whether the hit lines were sent again within the run, and what the
next run sends. For every row: the table holds exactly the rows that succeeded, and no request
ran twice on the server unless the API itself lost its answer (a retried line).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from enrich.project.run_results import RunResult
from enrich.server import Faults, ManualClock, ServerConfig, serve_in_thread

from ..enrich.conftest import API_KEY, NOTES, Env, node, start_env, submitted

TEN_NOTES = "id,body,topic\n" + "".join(f"{i},Note number {i}.,misc\n" for i in range(1, 11))
FILES = NOTES | {"seeds/notes.csv": TEN_NOTES}


@dataclass(frozen=True)
class Case:
    faults: dict[str, Any]
    rows: tuple[int, int, int]  # succeeded, failed, pending after the first run
    resent: bool  # the lines hit were sent again in the same run
    next_run_sends: int
    reason: str | None = None  # the error_code failed rows carry
    seen: list[str] = field(default_factory=list)  # words in what the user is told


MATRIX = {
    "HTTP 500 on 30% of lines": Case({"fail_fraction": 0.3}, (10, 0, 0), True, 0),
    "HTTP 429 on 30% of lines": Case(
        {"fail_fraction": 0.3, "fail_status": 429}, (10, 0, 0), True, 0
    ),
    "request_timeout on 30%": Case({"timeout_fraction": 0.3}, (10, 0, 0), True, 0),
    "status_code 0, empty body, on 30%": Case({"status_zero_fraction": 0.3}, (10, 0, 0), True, 0),
    "HTTP 400 on 30% of lines": Case(
        {"fail_fraction": 0.3, "fail_status": 400}, (7, 3, 0), False, 3, "http_400"
    ),
    "answers cut short (finish_reason length)": Case(
        {"truncated_fraction": 0.3}, (7, 3, 0), False, 3, "truncated"
    ),
    "the model refuses": Case({"refusal_fraction": 0.3}, (7, 3, 0), False, 3, "refusal"),
    "every line fails: completed, no output file": Case(
        {"fail_fraction": 1.0, "fail_status": 400}, (0, 10, 0), False, 10, "http_400"
    ),
    "an unparseable line in the output file": Case(
        {"malformed_output_line": True}, (10, 0, 0), False, 0
    ),
    "answered lines absent from both files": Case({"lost_fraction": 0.3}, (10, 0, 0), True, 0),
    "output_file_id null for a while": Case({"null_output_polls": 3}, (10, 0, 0), False, 0),
    'error_file_id "" instead of null': Case({"empty_error_file_id": True}, (10, 0, 0), False, 0),
    "request_counts that lie": Case({"wrong_request_counts": True}, (10, 0, 0), False, 0),
    "finalizing takes 10 minutes": Case({"slow_finalizing": 600.0}, (10, 0, 0), False, 0),
    "token_limit_exceeded on the first batch": Case(  # resubmitted: the refused batch never ran
        {"token_limit_batches": 1}, (10, 0, 0), True, 0, None, ["enqueued-token limit"]
    ),
}


def figures(result: RunResult) -> tuple[int, int, int]:
    extra = node(result, "note_labels").extra
    return extra["rows_succeeded"], extra["rows_failed"], extra["rows_pending"]


def executed(env: Env) -> Counter[str]:
    return Counter(line["custom_id"] for line in env.received())


@pytest.mark.parametrize("case", MATRIX.values(), ids=MATRIX.keys())
def test_fault_matrix(tmp_path: Path, case: Case) -> None:
    for env in start_env(tmp_path, FILES):
        env.faults(**case.faults)

        first = env.run()

        assert figures(first) == case.rows
        assert (len(node(first, "note_labels").extra["batch_ids"]) > 1) == case.resent
        assert env.query("SELECT count(*) FROM note_labels") == [(case.rows[0],)]
        if case.reason:
            reasons = env.query(
                "SELECT DISTINCT error_code FROM _enrich.requests WHERE status = 'failed'"
            )
            assert reasons == [(case.reason,)]
        said = " ".join(e.message for e in env.events)
        assert all(word in said for word in case.seen)
        if not case.resent:
            assert max(executed(env).values()) == 1  # nothing ran twice

        env.faults(**{name: getattr(Faults(), name) for name in case.faults})  # all off
        second = env.run()

        assert submitted(second, "note_labels") == case.next_run_sends
        assert figures(second) == (10, 0, 0)


def test_an_expired_batch_keeps_the_40_percent_done_and_resends_the_rest(tmp_path: Path) -> None:
    for env in start_env(tmp_path, FILES):
        env.faults(expire_after_fraction=0.4)
        env.run(wait=False)
        env.clock.advance(25 * 3600)  # past the 24h completion window
        env.faults(expire_after_fraction=None)

        result = env.run()

        assert figures(result) == (10, 0, 0)
        assert env.query(
            "SELECT attempts, count(*) FROM _enrich.requests GROUP BY 1 ORDER BY 1"
        ) == [(1, 4), (2, 6)]
        assert max(executed(env).values()) == 1 and len(executed(env)) == 10


def test_token_limit_exceeded_on_the_second_wave_waits_and_resubmits_it(tmp_path: Path) -> None:
    files = FILES | {
        "pyproject.toml": NOTES["pyproject.toml"] + "\n[tool.enrich.batch]\nmax_lines = 5\n"
    }
    for env in start_env(tmp_path, files):
        created: list[str] = []

        def second_wave_hits_the_limit(
            step: str, created: list[str] = created, env: Env = env
        ) -> None:
            if step == "created_recorded":
                created.append(step)
                if len(created) == 1:  # the first wave is in: the next batch meets the limit
                    env.faults(token_limit_batches=1)

        result = env.run(on_step=second_wave_hits_the_limit)

        assert figures(result) == (10, 0, 0)
        assert any("enqueued-token limit" in e.message for e in env.events)
        assert max(executed(env).values()) == 1 and len(executed(env)) == 10


def test_a_batch_that_404s_says_whose_it_may_be_and_keeps_its_state(tmp_path: Path) -> None:
    for env in start_env(tmp_path, FILES):
        env.faults(disappear_after_polls=1)  # as if the key now belongs to another project
        env.run(wait=False)

        lost = env.run()

        message = node(lost, "note_labels").message
        assert "is not found at" in message and "another API key, project or base URL" in message
        assert "run again with the key it was created with (its state is kept)" in message
        assert API_KEY not in message
        kept = env.query(
            "SELECT count(*) FROM _enrich.requests"
            " WHERE status = 'submitted' AND batch_id IS NOT NULL"
        )
        assert kept == [(10,)]  # still waiting for the right key: nothing released, nothing resent
        assert env.query("SELECT count(*) FROM _enrich.batches WHERE collected_at IS NULL") == [
            (1,)
        ]


def test_a_server_that_is_down_loses_nothing_and_is_caught_up_with(tmp_path: Path) -> None:
    root, clock = tmp_path / "project", ManualClock()
    config = ServerConfig(data_dir=tmp_path / "server", api_key=API_KEY)
    for env in start_env(tmp_path, FILES):
        env.run(wait=False)
        base_url = env.server.base_url
    down = Env(root, env.server, clock, [])
    refused = node(down.run(), "note_labels")  # the server is gone: connection refused
    assert "cannot reach" in refused.message and base_url.split("/v1")[0] in refused.message

    with serve_in_thread(config, clock=clock, tick_every=None) as server:  # back, same data
        clock.advance(3600)
        back = Env(root, server, clock, [])
        result = back.run()
        assert figures(result) == (10, 0, 0) and submitted(result, "note_labels") == 0
        assert len(back.received()) == 10


def test_a_connection_reset_mid_download_is_resumed_by_the_next_run(tmp_path: Path) -> None:
    for env in start_env(tmp_path, FILES):
        env.run(wait=False)
        env.clock.advance(60)
        env.faults(reset_downloads=1)

        cut = node(env.run(), "note_labels")
        assert cut.status == "error"
        assert (
            "failed while downloading file" in cut.message and "nothing sent is lost" in cut.message
        )

        result = env.run()
        assert figures(result) == (10, 0, 0) and submitted(result, "note_labels") == 0
        assert max(executed(env).values()) == 1


def test_a_call_that_times_out_stops_the_model_and_the_next_run_carries_on(tmp_path: Path) -> None:
    for env in start_env(tmp_path, FILES):
        env.run(wait=False)
        env.faults(stall_calls=1, stall_seconds=1.0)  # the server answers after 1 s…
        api = env.options().api
        assert api is not None
        api = dataclasses.replace(api, timeout=0.2)  # …the client waits 0.2 s

        timed_out = node(env.run(api=api), "note_labels")
        assert timed_out.status == "error"
        assert "cannot reach" in timed_out.message and "APITimeoutError" in timed_out.message

        env.clock.advance(60)
        result = env.run()
        assert figures(result) == (10, 0, 0) and submitted(result, "note_labels") == 0
        assert max(executed(env).values()) == 1


@pytest.mark.parametrize("status", [500, 503, 429])
def test_an_http_error_on_a_call_mid_run_is_resumed_by_the_next_run(
    tmp_path: Path, status: int
) -> None:
    for env in start_env(tmp_path, FILES):
        env.run(wait=False)
        env.faults(http_error_calls=1, http_error_status=status)

        broken = node(env.run(), "note_labels")
        assert broken.status == "error" and f"answered {status}" in broken.message

        fixed = env.run()
        assert figures(fixed) == (10, 0, 0) and submitted(fixed, "note_labels") == 0
        assert sum(executed(env).values()) == 10
