"""The dependency graph of a project: order, upstream/downstream closure, cycles.

A graph maps each node to the set of nodes it depends on.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping, Set

from ..errors import DependencyError

Graph = Mapping[str, Set[str]]


def topological_order(graph: Graph) -> list[str]:
    """Nodes in an order where each comes after everything it depends on; ties broken by name.

    >>> topological_order({"b": {"a"}, "a": set(), "c": {"a"}})
    ['a', 'b', 'c']
    """
    sorter = sorter_for(graph)
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return order


def sorter_for(graph: Graph) -> graphlib.TopologicalSorter[str]:
    """A prepared TopologicalSorter over `graph`; a cycle raises DependencyError with its path."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for node, deps in graph.items():
        sorter.add(node, *(dep for dep in deps if dep in graph))
    try:
        sorter.prepare()
    except graphlib.CycleError as err:
        # graphlib documents the cycle as args[1], listed with each node before its dependency.
        cycle = list(reversed(err.args[1]))
        raise DependencyError(
            f"models depend on each other in a cycle: {' → '.join(cycle)}; "
            "remove one of these ref()s"
        ) from err
    return sorter


def upstream(graph: Graph, nodes: Iterable[str], depth: int | None = None) -> set[str]:
    """Every node that `nodes` depend on, transitively (up to `depth` steps), without `nodes`."""
    return _closure(graph, nodes, depth)


def downstream(graph: Graph, nodes: Iterable[str], depth: int | None = None) -> set[str]:
    """Every node that depends on `nodes`, transitively (up to `depth` steps), without `nodes`."""
    return _closure(reverse(graph), nodes, depth)


def reverse(graph: Graph) -> dict[str, set[str]]:
    """The graph with its edges turned around: node → the nodes that depend on it."""
    reversed_graph: dict[str, set[str]] = {node: set() for node in graph}
    for node, deps in graph.items():
        for dep in deps:
            reversed_graph.setdefault(dep, set()).add(node)
    return reversed_graph


def _closure(graph: Graph, start: Iterable[str], depth: int | None) -> set[str]:
    seen: set[str] = set()
    frontier = set(start)
    steps = 0
    while frontier and (depth is None or steps < depth):
        frontier = {dep for node in frontier for dep in graph.get(node, ())} - seen
        seen |= frontier
        steps += 1
    return seen - set(start)
