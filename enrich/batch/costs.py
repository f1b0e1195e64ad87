"""What requests cost: a price table at Batch API prices (half the synchronous price).

Prices are USD per million tokens. :data:`DEFAULT_PRICES` covers common models; a project adds
or overrides entries under ``[tool.enrich.prices."MODEL"]``. Estimates use the offline token
counts of :mod:`enrich.tokens`; actual costs use the usage the API reported.

>>> round(cost(1_000_000, 100_000, DEFAULT_PRICES["gpt-4o-mini"]), 4)
0.105
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# When no parameter caps the answer, a request is estimated to produce this many tokens.
DEFAULT_COMPLETION_TOKENS = 150


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens, at batch prices."""

    input: float
    output: float = 0.0


DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-4o-mini": Price(0.075, 0.30),
    "gpt-4o": Price(1.25, 5.00),
    "gpt-4.1": Price(1.00, 4.00),
    "gpt-4.1-mini": Price(0.20, 0.80),
    "gpt-4.1-nano": Price(0.05, 0.20),
    "gpt-5": Price(0.625, 5.00),
    "gpt-5-mini": Price(0.125, 1.00),
    "gpt-5-nano": Price(0.025, 0.20),
    "text-embedding-3-small": Price(0.01),
    "text-embedding-3-large": Price(0.065),
}


def price_for(model: str, prices: Mapping[str, Price]) -> Price | None:
    """The price of `model`; a dated snapshot (``gpt-4o-mini-2024-07-18``) gets its base's."""
    if model in prices:
        return prices[model]
    base = [name for name in prices if model.startswith(name + "-")]
    return prices[max(base, key=len)] if base else None


def cost(prompt_tokens: int, completion_tokens: int, price: Price) -> float:
    """USD for that many tokens."""
    return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000
