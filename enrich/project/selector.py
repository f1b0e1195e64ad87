"""dbt-style node selection: ``name``, ``+name``, ``name+``, ``2+name+1``, ``tag:x``, ``path:dir``.

A selector list is a union; a comma inside one selector intersects (``tag:nightly,path:models/a``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..errors import SelectionError
from ..suggest import did_you_mean
from . import dag

_SELECTOR = re.compile(r"^(?P<up>\d*\+)?(?P<body>[^+]+?)(?P<down>\+\d*)?$")


@dataclass(frozen=True)
class NodeInfo:
    """What selectors can match on besides the name."""

    tags: tuple[str, ...]
    path: str  # relative to the project, POSIX style


@dataclass(frozen=True)
class Criterion:
    """One parsed selector term."""

    method: str  # "name", "tag" or "path"
    value: str
    upstream: int | None  # None: not asked for; -1: all the way
    downstream: int | None


def parse(text: str) -> Criterion:
    """Parse one selector term.

    >>> parse("2+tag:nightly+")
    Criterion(method='tag', value='nightly', upstream=2, downstream=-1)
    """
    match = _SELECTOR.match(text.strip())
    if match is None:
        raise SelectionError(
            f"cannot read selector {text!r}; write name, +name, name+, tag:x or path:dir"
        )
    method, _, value = match["body"].rpartition(":")
    method = method or "name"
    if method not in ("name", "tag", "path") or not value:
        raise SelectionError(
            f"unknown selector method in {text!r}; use tag:x or path:dir or a name"
        )
    return Criterion(method, value, _depth(match["up"], "+"), _depth(match["down"], "+"))


def _depth(part: str | None, plus: str) -> int | None:
    if part is None:
        return None
    digits = part.replace(plus, "")
    return int(digits) if digits else -1


def select(
    graph: dag.Graph,
    info: Mapping[str, NodeInfo],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> set[str]:
    """The nodes chosen by `include` (all nodes when empty) minus those chosen by `exclude`."""
    chosen = set(graph) if not include else _union(graph, info, include)
    return chosen - _union(graph, info, exclude)


def _union(graph: dag.Graph, info: Mapping[str, NodeInfo], selectors: Sequence[str]) -> set[str]:
    nodes: set[str] = set()
    for selector in selectors:
        for term in selector.split():
            parts = [_expand(graph, info, parse(p)) for p in term.split(",")]
            nodes |= set.intersection(*parts)
    return nodes


def _expand(graph: dag.Graph, info: Mapping[str, NodeInfo], criterion: Criterion) -> set[str]:
    matched = _match(info, criterion)
    if not matched:
        hint = did_you_mean(criterion.value, _values(info, criterion.method))
        raise SelectionError(
            f"selector {criterion.method}:{criterion.value} matches no model or seed{hint}; "
            "run 'enrich ls' to see what exists"
        )
    result = set(matched)
    if criterion.upstream is not None:
        result |= dag.upstream(
            graph, matched, None if criterion.upstream < 0 else criterion.upstream
        )
    if criterion.downstream is not None:
        depth = None if criterion.downstream < 0 else criterion.downstream
        result |= dag.downstream(graph, matched, depth)
    return result


def _match(info: Mapping[str, NodeInfo], criterion: Criterion) -> set[str]:
    if criterion.method == "tag":
        return {name for name, node in info.items() if criterion.value in node.tags}
    if criterion.method == "path":
        return {name for name, node in info.items() if _under(node.path, criterion.value)}
    return {name for name in info if fnmatch.fnmatchcase(name, criterion.value)}


def _under(path: str, prefix: str) -> bool:
    target = PurePosixPath(prefix.strip("/").removeprefix("./"))
    candidate = PurePosixPath(path)
    return candidate == target or target in candidate.parents


def _values(info: Mapping[str, NodeInfo], method: str) -> Set[str]:
    if method == "tag":
        return {tag for node in info.values() for tag in node.tags}
    if method == "path":
        return {node.path for node in info.values()}
    return set(info)
