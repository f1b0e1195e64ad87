from __future__ import annotations

import pytest

from enrich.errors import SelectionError
from enrich.project import selector
from enrich.project.selector import NodeInfo

GRAPH = {
    "people": set(),
    "stg_people": {"people"},
    "people_by_city": {"stg_people"},
    "londoners": {"stg_people"},
    "other": set(),
}
INFO = {
    "people": NodeInfo((), "seeds/people.csv"),
    "stg_people": NodeInfo(("staging",), "models/staging/stg_people.sql"),
    "people_by_city": NodeInfo(("marts", "nightly"), "models/marts/people_by_city.sql"),
    "londoners": NodeInfo(("marts",), "models/marts/londoners.sql"),
    "other": NodeInfo(("nightly",), "models/other.sql"),
}


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        ([], [], set(GRAPH)),
        (["stg_people"], [], {"stg_people"}),
        (["+stg_people"], [], {"people", "stg_people"}),
        (["stg_people+"], [], {"stg_people", "people_by_city", "londoners"}),
        (["+people_by_city"], [], {"people", "stg_people", "people_by_city"}),
        (["1+people_by_city"], [], {"stg_people", "people_by_city"}),
        (["people+1"], [], {"people", "stg_people"}),
        (["tag:marts"], [], {"people_by_city", "londoners"}),
        (["tag:nightly"], [], {"people_by_city", "other"}),
        (["path:models/marts"], [], {"people_by_city", "londoners"}),
        (["path:models/staging/stg_people.sql"], [], {"stg_people"}),
        (["path:models"], ["tag:marts"], {"stg_people", "other"}),
        (["tag:marts,tag:nightly"], [], {"people_by_city"}),
        (["stg_people other"], [], {"stg_people", "other"}),
        (["people*"], [], {"people", "people_by_city"}),
        ([], ["stg_people+"], {"people", "other"}),
    ],
)
def test_selectors(include: list[str], exclude: list[str], expected: set[str]) -> None:
    assert selector.select(GRAPH, INFO, include, exclude) == expected


def test_unknown_name_suggests_a_close_one() -> None:
    with pytest.raises(SelectionError, match="did you mean 'londoners'"):
        selector.select(GRAPH, INFO, ["londoner"])


@pytest.mark.parametrize("text", ["bogus:x", "tag:", "+"])
def test_malformed_selectors_are_rejected(text: str) -> None:
    with pytest.raises(SelectionError):
        selector.parse(text)
