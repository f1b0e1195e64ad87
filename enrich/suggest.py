"""Suggestions for misspelled names: the "did you mean …" of every error message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest candidate, or an empty string.

    >>> did_you_mean("moive", ["movie", "seed"])
    " (did you mean 'movie'?)"
    >>> did_you_mean("zzz", ["movie"])
    ''
    """
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
