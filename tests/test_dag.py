from __future__ import annotations

import pytest

from enrich.errors import DependencyError
from enrich.project import dag


@pytest.mark.parametrize(
    ("graph", "order"),
    [
        ({"a": set(), "b": {"a"}, "c": {"b"}}, ["a", "b", "c"]),
        ({"c": {"a", "b"}, "b": set(), "a": set()}, ["a", "b", "c"]),
        ({"d": {"b", "c"}, "c": {"a"}, "b": {"a"}, "a": set()}, ["a", "b", "c", "d"]),
    ],
)
def test_topological_order_puts_dependencies_first(
    graph: dict[str, set[str]], order: list[str]
) -> None:
    assert dag.topological_order(graph) == order


def test_cycle_is_reported_as_its_path() -> None:
    with pytest.raises(DependencyError) as info:
        dag.topological_order({"a": {"b"}, "b": {"a"}, "c": set()})
    message = str(info.value)
    assert "a → b → a" in message or "b → a → b" in message


def test_upstream_and_downstream_with_depth() -> None:
    graph = {"a": set(), "b": {"a"}, "c": {"b"}, "d": {"c"}}
    assert dag.upstream(graph, ["d"]) == {"a", "b", "c"}
    assert dag.upstream(graph, ["d"], depth=1) == {"c"}
    assert dag.downstream(graph, ["a"]) == {"b", "c", "d"}
    assert dag.downstream(graph, ["a"], depth=2) == {"b", "c"}
