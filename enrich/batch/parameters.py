"""Which request parameters each endpoint and model family takes, and where they go in the body.

:data:`RULES` is the whole mapping, declared as data: one row per parameter a model's config may
set, saying where it goes in a ``/v1/chat/completions``, ``/v1/embeddings`` or ``/v1/responses``
body, for ordinary and for reasoning models (``o1``, ``o3``, ``o4``, the ``gpt-5`` family), or
that it is not taken there. Reasoning models take ``max_completion_tokens`` instead of
``max_tokens`` and only the default sampling; the Responses API takes ``max_output_tokens``,
``reasoning.effort`` and ``text.verbosity``; embeddings take almost nothing.

A parameter set by the model itself that its endpoint or model does not take is an error naming
the model file, before anything is sent; one inherited from ``[tool.enrich.defaults]`` is simply
not sent to it. Keys of ``params={...}`` that no rule names are sent as they are.

>>> place({"temperature": 0}, {}, "/v1/chat/completions", "o4-mini", "m.sql")
Traceback (most recent call last):
...
enrich.errors.ProjectError: m.sql: temperature cannot be sent to o4-mini on ... (reasoning ...
>>> place({"max_tokens": 300}, {"temperature": 0}, "/v1/responses", "gpt-5-mini", "m.sql")
{'max_output_tokens': 300}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ProjectError

CHAT, EMBEDDINGS, RESPONSES = "/v1/chat/completions", "/v1/embeddings", "/v1/responses"
REASONING = re.compile(r"^(ft:)?(o1|o3|o4|gpt-5)([-.:]|$)")

_SAMPLING = "reasoning models take only the default sampling"
_NOT_ON = {
    EMBEDDINGS: "embeddings take only dimensions and user",
    RESPONSES: "the Responses API does not take it",
    CHAT: "chat completions do not take it",
}


@dataclass(frozen=True)
class Rule:
    """Where one config parameter goes in each endpoint's body; None: not taken there."""

    name: str
    chat: str | None
    chat_reasoning: str | None
    responses: str | None
    responses_reasoning: str | None
    embeddings: str | None = None
    why_not_reasoning: str = _SAMPLING

    def target(self, endpoint: str, reasoning: bool) -> str | None:
        """The body path (dots nest) this parameter is sent under, or None."""
        if endpoint == EMBEDDINGS:
            return self.embeddings
        if endpoint == RESPONSES:
            return self.responses_reasoning if reasoning else self.responses
        return self.chat_reasoning if reasoning else self.chat


_NON_REASONING = "only reasoning models take it"

RULES: Mapping[str, Rule] = {
    r.name: r
    for r in (
        Rule("temperature", "temperature", None, "temperature", None),
        Rule("top_p", "top_p", None, "top_p", None),
        Rule("frequency_penalty", "frequency_penalty", None, None, None),
        Rule("presence_penalty", "presence_penalty", None, None, None),
        Rule("logit_bias", "logit_bias", None, None, None),
        Rule("logprobs", "logprobs", None, None, None),
        Rule("top_logprobs", "top_logprobs", None, "top_logprobs", None),
        Rule(
            "max_tokens",
            "max_tokens",
            "max_completion_tokens",
            "max_output_tokens",
            "max_output_tokens",
        ),
        Rule(
            "max_completion_tokens",
            "max_completion_tokens",
            "max_completion_tokens",
            "max_output_tokens",
            "max_output_tokens",
        ),
        Rule(
            "max_output_tokens",
            "max_completion_tokens",
            "max_completion_tokens",
            "max_output_tokens",
            "max_output_tokens",
        ),
        Rule("seed", "seed", "seed", None, None),
        Rule("stop", "stop", None, None, None, why_not_reasoning="reasoning models take no stop"),
        Rule(
            "reasoning_effort",
            None,
            "reasoning_effort",
            None,
            "reasoning.effort",
            why_not_reasoning=_NON_REASONING,
        ),
        Rule(
            "verbosity",
            None,
            "verbosity",
            None,
            "text.verbosity",
            why_not_reasoning=_NON_REASONING,
        ),
        Rule("dimensions", None, None, None, None, embeddings="dimensions"),
        Rule("user", "user", "user", "user", "user", embeddings="user"),
        Rule("service_tier", "service_tier", "service_tier", "service_tier", "service_tier"),
    )
}


def is_reasoning(model: str) -> bool:
    """Whether `model` is a reasoning model (o-series or the gpt-5 family).

    >>> [is_reasoning(m) for m in ("o3", "o4-mini-2025-04-16", "gpt-5-mini", "gpt-4o-mini")]
    [True, True, True, False]
    """
    return REASONING.match(model) is not None


def place(
    explicit: Mapping[str, Any],
    inherited: Mapping[str, Any],
    endpoint: str,
    model: str,
    path: str,
) -> dict[str, Any]:
    """The body parameters of a model, from those it sets (`explicit`) over the project's
    defaults (`inherited`); see the module's rules."""
    reasoning = is_reasoning(model)
    body: dict[str, Any] = {}
    for source, strict in ((inherited, False), (explicit, True)):
        for name, value in source.items():
            rule = RULES.get(name)
            where = name if rule is None else rule.target(endpoint, reasoning)
            if where is None:
                if strict:
                    raise ProjectError(_refusal(rule, name, endpoint, model, reasoning, path))
                continue
            _put(body, where, value)
    return body


def _refusal(
    rule: Rule | None, name: str, endpoint: str, model: str, reasoning: bool, path: str
) -> str:
    on_other = rule is not None and rule.target(endpoint, not reasoning) is not None
    why = rule.why_not_reasoning if rule and on_other else _NOT_ON[endpoint]
    return (
        f"{path}: {name} cannot be sent to {model} on {endpoint} ({why}); remove it from the "
        "model's config"
    )


def _put(body: dict[str, Any], where: str, value: Any) -> None:
    *parents, leaf = where.split(".")
    for key in parents:
        body = body.setdefault(key, {})
    body[leaf] = value
