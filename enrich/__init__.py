"""enrich: dbt-style SQL models in DuckDB, enriched with LLMs through the OpenAI Batch API."""

from __future__ import annotations

from .db import Table
from .errors import (
    DependencyError,
    EnrichError,
    ExecutionError,
    ProjectError,
    SeedError,
    SelectionError,
    SqlError,
)
from .project import Model, Project, Seed, Settings, load_project
from .results import NodeResult, RunResult
from .runner import Node, compile_model, list_nodes, run, seed, show

__version__ = "0.1.0"

__all__ = [
    "DependencyError",
    "EnrichError",
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
    "Table",
    "compile_model",
    "list_nodes",
    "load_project",
    "run",
    "seed",
    "show",
]
