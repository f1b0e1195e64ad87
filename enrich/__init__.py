"""enrich: dbt-style SQL models in DuckDB, enriched with LLMs through the OpenAI Batch API."""

from __future__ import annotations

from .batch.client import ApiConfig
from .batch.options import EnrichEvent, EnrichOptions
from .batch.session import Done
from .errors import (
    ApiError,
    CostLimitError,
    DependencyError,
    EnrichError,
    ExecutionError,
    ProjectError,
    ResourceError,
    SeedError,
    SelectionError,
    SqlError,
)
from .frames import frame
from .project.enrich_query import enrich_query
from .project.loader import load_project
from .project.nodes import Model, Project, Seed, Settings
from .project.run_results import NodeResult, RunResult
from .project.runner import (
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
from .warehouse.db import Table

__version__ = "0.1.0"

__all__ = [
    "ApiConfig",
    "ApiError",
    "CostLimitError",
    "DependencyError",
    "Done",
    "EnrichError",
    "EnrichEvent",
    "EnrichOptions",
    "ExecutionError",
    "Model",
    "Node",
    "NodeResult",
    "Project",
    "ProjectError",
    "ResourceError",
    "RunResult",
    "Seed",
    "SeedError",
    "SelectionError",
    "Settings",
    "SqlError",
    "StatusReport",
    "Table",
    "compile_model",
    "enrich_query",
    "frame",
    "list_nodes",
    "load_project",
    "preview",
    "run",
    "seed",
    "show",
    "status",
]
