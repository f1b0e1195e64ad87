"""What an enrichment model asks for: its ``config(...)`` checked and resolved into an EnrichSpec.

Defaults come from ``[tool.enrich.defaults]``; the model's own config wins. Everything here is
checked when the project loads, so a wrong key or type stops the run before a row is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ProjectError
from ..suggest import did_you_mean
from . import parameters
from .endpoints import ENDPOINTS, Endpoint
from .outputs import PROVENANCE_PREFIX, Output, parse_output

# Request parameters a model may set as config keys; anything else goes in params={...}.
REQUEST_PARAMS = frozenset(parameters.RULES)
ENRICH_KEYS = REQUEST_PARAMS | frozenset(
    {
        "unique_key",
        "model",
        "endpoint",
        "prompt_column",
        "image_column",
        "system_prompt_column",
        "system_prompt",
        "system_prompt_file",
        "output",
        "output_column",
        "response_format",
        "params",
        "max_attempts",
        "keep_removed",
        "warn_if_failed",
        "error_if_failed",
    }
)
RESPONSE_FORMATS = ("json_schema", "json_object", "text")
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MODEL = "gpt-4o-mini"  # the cookbook's, when neither the model nor the defaults say
# The structured-output schema's name is part of every request, so of its hash: a constant, so
# renaming a model neither changes what is sent nor pays for it again.
SCHEMA_NAME = "answer"


@dataclass(frozen=True)
class EnrichSpec:
    """One enrichment model, resolved: which columns make a request and what comes back."""

    path: str
    name: str
    unique_key: tuple[str, ...]
    model: str
    endpoint: Endpoint
    prompt_column: str = "prompt"
    image_column: str = "image_url"
    system_prompt_column: str = "system_prompt"
    system_prompt: str | None = None
    output: Output | None = None
    output_column: str = "response"
    json_object: bool = False
    params: Mapping[str, Any] | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    keep_removed: bool = False
    warn_if_failed: Threshold = field(default_factory=lambda: Threshold(count=1))
    error_if_failed: Threshold = field(default_factory=lambda: Threshold(percent=100.0))

    def constant_body(self, schema_name: str = SCHEMA_NAME) -> dict[str, Any]:
        """The part of every request body that is the same for all rows."""
        schema = self.output.json_schema() if self.output and not self.json_object else None
        body: dict[str, Any] = {"model": self.model, **(self.params or {})}
        for key, value in self.endpoint.format(schema_name, schema, self.json_object).items():
            # `text` may hold both the Responses API's verbosity and its format.
            body[key] = {**body[key], **value} if isinstance(body.get(key), dict) else value
        return body

    @property
    def completion_budget(self) -> int | None:
        """The most completion tokens a request may use, when a parameter caps it."""
        params = self.params or {}
        for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
            if isinstance(params.get(key), int):
                return int(params[key])
        return None


def resolve(
    name: str, path: str, options: Mapping[str, Any], defaults: Mapping[str, Any], root: Path
) -> EnrichSpec:
    """Check an enrich model's config (over the project defaults) and resolve it."""
    config = {**defaults, **options}
    endpoint = _endpoint(config, path)
    output = parse_output(config["output"], path) if "output" in config else None
    json_object = _response_format(config, output, endpoint, path)
    keys = _unique_key(config.get("unique_key"), path)
    spec = EnrichSpec(
        path=path,
        name=name,
        unique_key=keys,
        model=_model(config, path),
        endpoint=endpoint,
        prompt_column=_column(config, "prompt_column", "prompt", path),
        image_column=_column(config, "image_column", "image_url", path),
        system_prompt_column=_column(config, "system_prompt_column", "system_prompt", path),
        system_prompt=_system_prompt(config, root, path),
        output=output,
        output_column=_column(config, "output_column", endpoint.default_column, path),
        json_object=json_object,
        params=_params(options, defaults, endpoint.url, _model(config, path), path),
        max_attempts=_positive_int(config, "max_attempts", DEFAULT_MAX_ATTEMPTS, path),
        keep_removed=bool(config.get("keep_removed", False)),
        warn_if_failed=_threshold(config, "warn_if_failed", 1, path),
        error_if_failed=_threshold(config, "error_if_failed", "100%", path),
    )
    _check_names(spec)
    return spec


def _endpoint(config: Mapping[str, Any], path: str) -> Endpoint:
    url = str(config.get("endpoint", "/v1/chat/completions"))
    if url not in ENDPOINTS:
        raise ProjectError(
            f"{path}: endpoint {url!r} is not supported{did_you_mean(url, ENDPOINTS)}; "
            f"use one of: {', '.join(ENDPOINTS)}"
        )
    return ENDPOINTS[url]


def _response_format(
    config: Mapping[str, Any], output: Output | None, endpoint: Endpoint, path: str
) -> bool:
    kind = config.get("response_format", "json_schema" if output else "text")
    if kind not in RESPONSE_FORMATS:
        raise ProjectError(
            f"{path}: response_format={kind!r} is unknown; use one of: "
            f"{', '.join(RESPONSE_FORMATS)}"
        )
    if output and not endpoint.structured:
        raise ProjectError(f"{path}: {endpoint.url} answers are vectors; remove output=...")
    if kind != "text" and output is None:
        raise ProjectError(
            f"{path}: response_format={kind!r} needs output={{field: type, ...}} to check answers"
        )
    if kind == "text" and output is not None:
        raise ProjectError(
            f"{path}: output=... needs response_format 'json_schema' or 'json_object'"
        )
    return bool(kind == "json_object")


def _unique_key(value: Any, path: str) -> tuple[str, ...]:
    keys = (value,) if isinstance(value, str) else tuple(value or ())
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise ProjectError(
            f"{path}: an enrich model needs unique_key='column' or unique_key=['a', 'b'] naming "
            "the columns that identify a row"
        )
    if len(set(keys)) != len(keys):
        raise ProjectError(f"{path}: unique_key names a column twice")
    return keys


def _model(config: Mapping[str, Any], path: str) -> str:
    model = config.get("model", DEFAULT_MODEL)
    if not isinstance(model, str) or not model:
        raise ProjectError(
            f"{path}: model must name a model, like model='{DEFAULT_MODEL}' in its config or "
            'model = "..." under [tool.enrich.defaults] in pyproject.toml'
        )
    return model


def _column(config: Mapping[str, Any], key: str, default: str, path: str) -> str:
    value = config.get(key, default)
    if not isinstance(value, str) or not value:
        raise ProjectError(f"{path}: {key} must name a column")
    return value


def _system_prompt(config: Mapping[str, Any], root: Path, path: str) -> str | None:
    if "system_prompt" in config and "system_prompt_file" in config:
        raise ProjectError(f"{path}: set system_prompt or system_prompt_file, not both")
    if "system_prompt_file" not in config:
        text = config.get("system_prompt")
        return None if text is None else str(text)
    file = root / str(config["system_prompt_file"])
    try:
        return file.read_text(encoding="utf-8").strip()
    except FileNotFoundError as err:
        raise ProjectError(
            f"{path}: system_prompt_file {config['system_prompt_file']!r} does not exist "
            "(paths are relative to the project folder)"
        ) from err
    except UnicodeDecodeError as err:
        raise ProjectError(f"{path}: system_prompt_file is not UTF-8 text") from err


def _params(
    options: Mapping[str, Any], defaults: Mapping[str, Any], endpoint: str, model: str, path: str
) -> dict[str, Any]:
    """The model's request parameters placed for its endpoint and model (see parameters.py)."""
    explicit, inherited = _requested(options, path), _requested(defaults, path)
    return parameters.place(explicit, inherited, endpoint, model, path)


def _requested(config: Mapping[str, Any], path: str) -> dict[str, Any]:
    extra = config.get("params", {})
    if not isinstance(extra, Mapping):
        raise ProjectError(f"{path}: params must be a mapping of request parameters")
    clash = {"model", "messages", "input", "response_format", "text", "reasoning"} & set(extra)
    if clash:
        raise ProjectError(f"{path}: params may not set {sorted(clash)[0]!r}; enrich builds it")
    return {**dict(extra), **{k: v for k, v in config.items() if k in REQUEST_PARAMS}}


@dataclass(frozen=True)
class Threshold:
    """How many failed rows make a model warn or fail: a count, or a percentage of its rows."""

    count: int | None = None
    percent: float | None = None

    def reached(self, failed: int, rows: int) -> bool:
        """Whether `failed` of `rows` reach it (never with no failure)."""
        if failed == 0:
            return False
        if self.count is not None:
            return failed >= self.count
        return self.percent is not None and failed * 100 >= self.percent * rows

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else str(self.count)


def _threshold(config: Mapping[str, Any], key: str, default: int | str, path: str) -> Threshold:
    value = config.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return Threshold(count=value)
    text = str(value).strip()
    if text.endswith("%"):
        try:
            percent = float(text[:-1])
        except ValueError:
            percent = -1.0
        if 0 < percent <= 100:
            return Threshold(percent=percent)
    raise ProjectError(
        f"{path}: {key} is a number of failed rows (at least 1) or a percentage like '10%'"
    )


def _positive_int(config: Mapping[str, Any], key: str, default: int, path: str) -> int:
    value = config.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ProjectError(f"{path}: {key} must be a whole number of at least 1")
    return value


# Columns enrich adds beside a model's key columns while it plans (``enrich_rows``); a key or
# output of the same name, in any case, would silently take their place.
RESERVED = frozenset(
    {
        "request_hash",
        "tokens",
        "_prompt",
        "_system",
        "_images",
        "rowid",
        "_ledger_row",
        "_claimable",
    }
)


def _check_names(spec: EnrichSpec) -> None:
    """Key and output columns are distinct from each other and from enrich's own names, compared
    case-insensitively as DuckDB compares identifiers."""
    outputs = [f.name for f in spec.output.fields] if spec.output else [spec.output_column]
    seen: dict[str, str] = {}
    for role, name in [
        *(("unique_key", k) for k in spec.unique_key),
        *(("output", o) for o in outputs),
    ]:
        folded = name.casefold()
        if folded in RESERVED or folded.startswith(PROVENANCE_PREFIX):
            raise ProjectError(
                f"{spec.path}: {role} column {name!r} has a name enrich uses for its own columns "
                f"({', '.join(sorted(RESERVED))} and {PROVENANCE_PREFIX}*); rename it in the "
                "model's SELECT or output"
            )
        if folded in seen:
            raise ProjectError(
                f"{spec.path}: {role} column {name!r} and column {seen[folded]!r} differ only in "
                "case, and DuckDB would take them for one; rename one"
            )
        seen[folded] = name
