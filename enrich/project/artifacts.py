"""The files a run leaves in ``target/``: ``manifest.json`` and ``run_results.json``."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from .nodes import Project
from .run_results import NodeResult

SCHEMA_VERSION = 1


def write_manifest(project: Project, generated_at: datetime) -> Path:
    """Every node with its dependencies and config, as loaded."""
    nodes: dict[str, Any] = {
        name: {"kind": "seed", "path": seed.path, "depends_on": [], "config": asdict(seed.settings)}
        for name, seed in project.seeds.items()
    }
    for name, model in project.models.items():
        nodes[name] = {
            "kind": "model",
            "path": model.path,
            "depends_on": sorted(model.depends_on),
            "sources": [list(s) for s in model.sources],
            "config": _config(model.config),
            "compiled_sql": model.sql,
        }
    document = {"metadata": _metadata(project, generated_at), "nodes": nodes}
    return _write(project.settings.target_path / "manifest.json", document)


def write_run_results(
    project: Project, results: Iterable[NodeResult], started_at: datetime, finished_at: datetime
) -> Path:
    """Per node: status, rows affected, timing, message, and whatever its materialization adds."""
    document = {
        "metadata": _metadata(project, finished_at),
        "elapsed_time": (finished_at - started_at).total_seconds(),
        "results": [_result(r) for r in results],
    }
    return _write(project.settings.target_path / "run_results.json", document)


def _result(result: NodeResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "kind": result.kind,
        "path": result.path,
        "status": result.status,
        "rows_affected": result.rows_affected,
        "timing": {
            "started_at": result.started_at.isoformat(),
            "execution_time": round(result.seconds, 6),
        },
        "message": result.message,
        **result.extra,
    }


def _config(config: Any) -> dict[str, Any]:
    values = asdict(config)
    values.update(values.pop("options"))
    return values


def _metadata(project: Project, generated_at: datetime) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": generated_at.isoformat(),
        "project_dir": str(project.settings.root),
        "database": project.settings.database,
    }


def _write(path: Path, document: dict[str, Any]) -> Path:
    """Write `path` whole: through a temporary file of this writer's own, so two runs starting
    at once each replace the file with a complete document instead of racing on one name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, default=str) + "\n"
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=path.name + ".", suffix=".tmp", delete=False
    ) as tmp:
        tmp.write(text)
    Path(tmp.name).replace(path)
    return path
