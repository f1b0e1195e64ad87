from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import enrich
from enrich.cli import COMMANDS, build_parser, main


def test_run_prints_each_node_and_exits_zero(
    basic_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--project-dir", str(basic_project)]) == 0
    out = capsys.readouterr().out
    assert "seed  people" in out and "model people_by_city" in out
    assert "5 built, 0 unchanged, 0 failed, 0 skipped" in out


def test_failed_model_exits_one_and_says_where(
    basic_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (basic_project / "models/other.sql").write_text("select * from nowhere")
    assert main(["run", "--project-dir", str(basic_project)]) == 1
    err = capsys.readouterr().err
    assert "models/other.sql:" in err and "nowhere" in err
    assert "error: some nodes failed" in err


def test_user_mistake_is_one_line_without_traceback(
    basic_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (basic_project / "models/typo.sql").write_text("select * from {{ ref('peeple') }}")
    assert main(["run", "--project-dir", str(basic_project)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: models/typo.sql: ref('peeple') is not a model or seed")
    assert "did you mean 'people'" in err
    assert "Traceback" not in err


def test_syntax_error_reports_file_line_col(
    basic_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (basic_project / "models/bad.sql").write_text("select\n  1 +\nfrom people where")
    assert main(["compile", "bad", "--project-dir", str(basic_project)]) == 1
    assert capsys.readouterr().err.startswith("error: models/bad.sql:3:")


def test_unknown_selector_and_model(
    basic_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-s", "tag:nope", "--project-dir", str(basic_project)]) == 1
    assert "selector tag:nope matches no model or seed" in capsys.readouterr().err
    assert main(["show", "londonrs", "--project-dir", str(basic_project)]) == 1
    assert "did you mean 'londoners'" in capsys.readouterr().err


def test_missing_project_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "--project-dir", str(tmp_path / "nope")]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_seed_ls_compile_show(basic_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "--project-dir", str(basic_project)]) == 0
    assert main(["seed", "--project-dir", str(basic_project)]) == 0
    assert "UNCHANGED" in capsys.readouterr().out
    assert main(["ls", "-s", "+londoners", "--project-dir", str(basic_project)]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == [
        "people",
        "stg_people",
        "londoners",
    ]
    assert main(["compile", "people_by_city", "--project-dir", str(basic_project)]) == 0
    assert 'from "stg_people" group by city' in capsys.readouterr().out
    assert main(["run", "--project-dir", str(basic_project)]) == 0
    capsys.readouterr()
    assert main(["show", "stg_people", "--limit", "1", "--project-dir", str(basic_project)]) == 0
    out = capsys.readouterr().out
    assert "ADA" in out and "GRACE" not in out


@pytest.mark.parametrize("command", [c[0] for c in COMMANDS])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([command, "--help"])
    assert info.value.code == 0
    assert "--project-dir" in capsys.readouterr().out


def test_python_dash_m_runs_the_cli(basic_project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "enrich", "run", "--project-dir", str(basic_project)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "5 built" in done.stdout


def test_public_api_is_exactly_all() -> None:
    public = {name for name in vars(enrich) if not name.startswith("_")} - {"annotations"}
    modules = {name for name, value in vars(enrich).items() if type(value).__name__ == "module"}
    assert public - modules == set(enrich.__all__)
    for name in enrich.__all__:
        assert getattr(enrich, name).__doc__, name
