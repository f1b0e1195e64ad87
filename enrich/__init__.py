"""enrich: dbt-style SQL models in DuckDB, enriched with LLMs through the OpenAI Batch API."""

from __future__ import annotations

from .client import ApiConfig
from .db import Table
from .errors import (
    ApiError,
    CostLimitError,
    DependencyError,
    EnrichError,
    ExecutionError,
    ProjectError,
    SeedError,
    SelectionError,
    SqlError,
)
from .materializations import EnrichEvent, EnrichOptions
from .project import Model, Project, Seed, Settings, load_project
from .results import NodeResult, RunResult
from .runner import (
    Node,
    StatusReport,
    compile_model,
    list_nodes,
    preview,
    run,
    seed,
    show,
    status,
)

__version__ = "0.1.0"

__all__ = [
    "ApiConfig",
    "ApiError",
    "CostLimitError",
    "DependencyError",
    "EnrichError",
    "EnrichEvent",
    "EnrichOptions",
    "ExecutionError",
    "Model",
    "Node",
    "NodeResult",
    "Project",
    "ProjectError",
    "RunResult",
    "Seed",
    "SeedError",
    "SelectionError",
    "Settings",
    "SqlError",
    "StatusReport",
    "Table",
    "compile_model",
    "list_nodes",
    "load_project",
    "preview",
    "run",
    "seed",
    "show",
    "status",
]
