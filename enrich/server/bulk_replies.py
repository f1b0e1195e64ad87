"""The offline responder's answers for every request of one shape at once, as DuckDB SQL.

The Python responder (:mod:`.offline`) answers the shape (:mod:`.shapes`) once; what differs from
one request to the next (the text read from its messages, the answer, the token counts, the ids)
is cut out of that answer as holes and computed in SQL with the same rules: the same text, the
same sampled values (:mod:`.sampling_sql`), the same estimates (:mod:`enrich.batch.tokens`). The
result line around the answer is a template too, and so are the lines the injected line faults
give (an HTTP error, a timeout, status 0, a truncated answer, a refusal).

The SQL reads the columns ``custom_id`` (its JSON), ``body`` (the request body's JSON),
``digest`` (the body's sha256) and ``kind`` (the line's fault, or NULL), and adds the columns of
:attr:`Answer.columns` in turn.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..batch import tokens
from .outcomes import REFUSAL
from .replies import LineError, Reply
from .sampling_sql import Unsupported, compile_sample
from .shapes import CHAT, EMBEDDINGS, RESPONSES, is_plain

# Python's str.isspace(), for RE2: what str.split() and str.strip() take away.
SPACE = (
    r"[\x{9}-\x{d}\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
    r"\x{202f}\x{205f}\x{3000}]"
)
TIMEOUT = LineError("request_timeout", "The underlying call to the model timed out.")
_NONCE = secrets.token_hex(8)
_HOLE = re.compile(rf'"\\u0000{_NONCE}:(\w+)\\u0000"')
_HEX = "replace(gen_random_uuid()::VARCHAR, '-', '')"
_IDS = {
    "req": f"('\"batch_req_' || {_HEX} || '\"')",
    "custom_id": "custom_id",
    "request": f"('\"' || {_HEX} || '\"')",
}
# What the Responses token estimate counts: separators outside JSON strings, and characters
# json.dumps escapes as one or two \\uXXXX.
_JSON_STRING = r'"(?:[^"\\]|\\.)*"'
_NON_ASCII = r"[^\x00-\x7f]"
_ASTRAL = r"[\x{10000}-\x{10ffff}]"
_TWO_32 = float(2**32)


def hole(name: str) -> str:
    """A value marking where a template has a hole named `name`."""
    return f"\x00{_NONCE}:{name}\x00"


@dataclass
class Answer:
    """SQL answering lines: columns added in turn, then each line's status and result line."""

    columns: list[tuple[str, str]] = field(default_factory=list)
    status: str = "NULL"
    line: str = "NULL"
    params: dict[str, Any] = field(default_factory=dict)
    faults: bool = False  # whether lines may have a fault kind: SQL without it is simpler

    def by_kind(self, kinds: Mapping[str, str], otherwise: str) -> str:
        """SQL choosing by the line's fault kind, or `otherwise` (all of it when no line has
        one)."""
        if not self.faults:
            return otherwise
        cases = " ".join(f"WHEN '{kind}' THEN {sql}" for kind, sql in kinds.items())
        return f"CASE kind {cases} ELSE {otherwise} END"

    def param(self, value: Any) -> str:
        """A named parameter holding `value`."""
        name = f"a{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def fill(self, document: Any, holes: Mapping[str, str]) -> str:
        """SQL writing ``json.dumps(document)``, each hole filled by its SQL."""
        pieces = _HOLE.split(json.dumps(document))
        sql = [
            holes[piece] if i % 2 else self.param(piece)
            for i, piece in enumerate(pieces)
            if i % 2 or piece
        ]
        return "(" + " || ".join(sql) + ")"


Build = Callable[[Answer, Mapping[str, Any], dict[str, Any]], dict[str, str]]


def answer(
    url: str, shape: Mapping[str, Any], reply: Reply, fail: Reply | None, now: float
) -> Answer | None:
    """SQL for the lines of one shape, from the responder's `reply` to the shape itself and the
    reply of a ``fail`` fault (None: no line has a fault); None when only the Python responder
    can answer them."""
    build = _BUILDERS.get(url)
    if build is None or reply.status != 200 or not is_plain(url, shape):
        return None
    result, document = Answer(faults=fail is not None), json.loads(json.dumps(reply.body))
    try:
        holes = build(result, shape, document)
    except Unsupported:
        return None
    holes |= {"created": f"'{int(now)}'"}  # an integer this code made: safe in the SQL
    ok = result.fill(_line(200, hole("request"), document), _IDS | holes)
    result.status, result.line = "200", ok
    if fail is not None:
        failed = result.fill(_line(fail.status, hole("request"), fail.body), _IDS)
        zero = result.fill(_line(0, "", {}), _IDS)
        timeout = result.fill(error_line(TIMEOUT), _IDS)
        statuses = {"fail": str(int(fail.status)), "timeout": "NULL", "zero": "0"}
        result.status = result.by_kind(statuses, "200")
        result.line = result.by_kind({"fail": failed, "timeout": timeout, "zero": zero}, ok)
    return result


def unrun(error: LineError) -> Answer:
    """SQL for the error lines of requests that never ran (``batch_expired`` …)."""
    result = Answer()
    result.line = result.fill(error_line(error), _IDS)
    return result


def _line(status: int, request_id: str, body: Any) -> dict[str, Any]:
    response = {"status_code": status, "request_id": request_id, "body": body}
    return {"id": hole("req"), "custom_id": hole("custom_id"), "response": response, "error": None}


def error_line(error: LineError) -> dict[str, Any]:
    """A result line without a response, as :func:`.outcomes.result_line` writes it."""
    failure = {"code": error.code, "message": error.message}
    return {"id": hole("req"), "custom_id": hole("custom_id"), "response": None, "error": failure}


def estimate(text: str) -> str:
    """:func:`enrich.batch.tokens.estimate_text` of the SQL text `text`."""
    per = tokens.CHARS_PER_TOKEN
    return (
        f"CASE WHEN coalesce({text}, '') = '' THEN 0 "
        f"ELSE greatest(1, (length({text}) + {per - 1}) // {per}) END"
    )


def prompt_tokens(url: str, result: Answer) -> str | None:
    """SQL for :func:`enrich.batch.tokens.estimate_prompt` of a plain ``body``, its parameters
    put in `result`."""
    if url == CHAT:
        return _chat_tokens()
    if url == RESPONSES:
        return _responses_tokens(result)
    if url == EMBEDDINGS:
        return f"list_sum(list_transform({_EMBEDDED}, lambda x: {estimate('x')}))"
    return None


# Chat completions.


def _chat(result: Answer, shape: Mapping[str, Any], body: dict[str, Any]) -> dict[str, str]:
    _read_messages(result, "json_extract(body, '$.messages[*]')", "image_url")
    result.columns.append(("prompt_tokens", _chat_tokens("messages")))
    _answer_text(result, shape.get("response_format"))
    limit = shape.get("max_completion_tokens") or shape.get("max_tokens")
    _cap(result, limit if isinstance(limit, int) else None)
    choice = body["choices"][0]
    choice["finish_reason"] = hole("finish")
    choice["message"].update(content=hole("content"), refusal=hole("refusal"))
    body.update(id=hole("id"), created=hole("created"))
    body["usage"].update(_usage_holes("prompt_tokens", "completion_tokens"))
    half = "left(content, greatest(1, length(content) // 2)::INTEGER)"
    refusal = result.param(json.dumps(REFUSAL)) if result.faults else ""
    return {
        "id": "('\"chatcmpl-' || left(digest, 24) || '\"')",
        "content": result.by_kind(
            {"truncated": f"to_json({half})::VARCHAR", "refusal": "'null'"},
            "to_json(content)::VARCHAR",
        ),
        "refusal": result.by_kind({"refusal": refusal}, "'null'"),
        "finish": "CASE WHEN over THEN '\"length\"' ELSE "
        + result.by_kind({"truncated": "'\"length\"'"}, "'\"stop\"'")
        + " END",
        **_usage_sql("prompt_tokens", "completion_tokens"),
    }


def _read_messages(result: Answer, messages: str, image: str) -> None:
    """Columns ``messages``, ``text`` and ``images``: what ``offline._inputs`` reads of the
    messages (parts of type `image` are images, any other part is text)."""
    result.columns.append(("messages", messages))
    others = "list_filter(messages, lambda m: (m ->> 'role') IS DISTINCT FROM 'system')"
    parts = "json_extract(m, '$.content[*]')"
    kind = result.param(image)
    text_parts = f"list_filter({parts}, lambda p: (p ->> 'type') IS DISTINCT FROM {kind})"
    image_parts = f"list_filter({parts}, lambda p: (p ->> 'type') = {kind})"
    url = "coalesce(json_extract_string(p, '$.image_url.url'), p ->> 'image_url')"
    texts = (
        f"flatten(list_transform({others}, lambda m: CASE WHEN json_type(m, '$.content') = "
        f"'VARCHAR' THEN [m ->> 'content'] ELSE list_transform({text_parts}, "
        "lambda p: p ->> 'text') END))"
    )
    images = (
        f"flatten(list_transform({others}, lambda m: CASE WHEN json_type(m, '$.content') = "
        f"'ARRAY' THEN list_transform({image_parts}, lambda p: {url}) ELSE [] END))"
    )
    space = result.param(SPACE)
    ends = f"'^' || {space} || '+|' || {space} || '+$'"
    text = f"regexp_replace(array_to_string({texts}, ' '), {ends}, '', 'g')"
    result.columns += [("text", text), ("images", images)]


def _chat_tokens(messages: str = "json_extract(body, '$.messages[*]')") -> str:
    """``estimate_prompt`` of a chat body, or of its `messages`."""
    text, content = estimate("p ->> 'text'"), estimate("m ->> 'content'")
    per_part = (
        f"CASE WHEN (p ->> 'type') = 'image_url' THEN {tokens.TOKENS_PER_IMAGE} ELSE {text} END"
    )
    parts = f"list_transform(json_extract(m, '$.content[*]'), lambda p: {per_part})"
    per_message = (
        f"{tokens.TOKENS_PER_MESSAGE} + CASE WHEN json_type(m, '$.content') = 'VARCHAR' "
        f"THEN {content} ELSE coalesce(list_sum({parts}), 0) END"
    )
    return f"list_sum(list_transform({messages}, lambda m: {per_message}))"


def _answer_text(result: Answer, response_format: Any) -> None:
    """Column ``raw``: the answer before any token limit (``offline._content``)."""
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        compiled = compile_sample(spec.get("schema") or {}, "text")
        result.params.update(compiled.params)
        result.columns.append(("words", compiled.words))
        raw = compiled.sql
    elif kind == "json_object":
        opening = result.param('{"answer": ')
        raw = f"{opening} || to_json({_sentence(result)})::VARCHAR || '}}'"
    else:
        raw = _sentence(result)
    result.columns.append(("raw", raw))


def _sentence(result: Answer) -> str:
    """``offline._sentence``: the input's first 160 characters (column ``shown``) and its
    images."""
    shown = f"left(trim(regexp_replace(text, {result.param(SPACE)} || '+', ' ', 'g')), 160)"
    result.columns.append(("shown", shown))
    before, after = result.param(" The image at "), result.param(" shows it.")
    seen = f"array_to_string(list_transform(images, lambda u: {before} || u || {after}), '')"
    about, bare = result.param("Offline answer about: "), result.param("Offline answer.")
    return f"CASE WHEN shown <> '' THEN {about} || shown || '.' || {seen} ELSE {bare} || {seen} END"


def _cap(result: Answer, cap: int | None) -> None:
    """Columns ``over`` (the answer is over the token limit), ``content`` (cut to the limit, as
    the responder does) and ``completion_tokens``."""
    over = f"{estimate('raw')} > {int(cap)}" if cap is not None else "false"
    limit = int(cap or 0) * tokens.CHARS_PER_TOKEN
    result.columns += [
        ("over", over),
        ("content", f"CASE WHEN over THEN left(raw, {limit}) ELSE raw END"),
        ("completion_tokens", estimate("content")),
    ]


def _usage_holes(prompt: str, completion: str) -> dict[str, str]:
    return {
        prompt: hole("prompt_tokens"),
        completion: hole("completion_tokens"),
        "total_tokens": hole("total"),
    }


def _usage_sql(prompt: str, completion: str) -> dict[str, str]:
    return {
        "prompt_tokens": f"{prompt}::VARCHAR",
        "completion_tokens": f"{completion}::VARCHAR",
        "total": f"({prompt} + {completion})::VARCHAR",
    }


# Responses.


def _responses(result: Answer, shape: Mapping[str, Any], body: dict[str, Any]) -> dict[str, str]:
    one = "[json_object('role', 'user', 'content', body ->> 'input')]"
    items = (
        f"CASE WHEN json_type(body, '$.input') = 'VARCHAR' THEN {one} "
        "ELSE json_extract(body, '$.input[*]') END"
    )
    _read_messages(result, items, "input_image")
    result.columns.append(("prompt_tokens", _responses_tokens(result)))
    text = shape.get("text")
    spec = text.get("format") if isinstance(text, Mapping) else None
    schema = isinstance(spec, Mapping) and spec.get("type") == "json_schema"
    _answer_text(result, {"type": "json_schema", "json_schema": spec} if schema else spec)
    limit = shape.get("max_output_tokens")
    _cap(result, limit if isinstance(limit, int) else None)
    message = body["output"][0]
    message.update(id=hole("msg"))
    message["content"][0]["text"] = hole("content")
    body.update(
        id=hole("id"),
        created_at=hole("created"),
        status=hole("status"),
        incomplete_details=hole("incomplete"),
        instructions=hole("instructions"),
    )
    body["usage"].update(_usage_holes("input_tokens", "output_tokens"))
    reason = result.param(json.dumps({"reason": "max_output_tokens"}))
    return {
        "id": "('\"resp_' || left(digest, 24) || '\"')",
        "msg": "('\"msg_' || substr(digest, 25, 24) || '\"')",
        "content": "to_json(content)::VARCHAR",
        "status": "CASE WHEN over THEN '\"incomplete\"' ELSE '\"completed\"' END",
        "incomplete": f"CASE WHEN over THEN {reason} ELSE 'null' END",
        "instructions": "coalesce(json_extract(body, '$.instructions')::VARCHAR, 'null')",
        **_usage_sql("prompt_tokens", "completion_tokens"),
    }


def _responses_tokens(result: Answer) -> str:
    """``estimate_prompt`` of a Responses body: of a string input, or of each input item's
    ``json.dumps``: its minified JSON, one more character for each ``:`` and ``,`` between
    values, non-ASCII characters escaped (6 characters, 12 beyond the BMP)."""
    bare = f"regexp_replace(i::VARCHAR, {result.param(_JSON_STRING)}, '\"\"', 'g')"
    separators = f"(length({bare}) - length(regexp_replace({bare}, '[:,]', '', 'g')))"
    wide = _count("i::VARCHAR", result.param(_NON_ASCII))
    astral = _count("i::VARCHAR", result.param(_ASTRAL))
    dumped = f"(length(i::VARCHAR) + {separators} + 5 * {wide} + 6 * {astral})"
    per = tokens.CHARS_PER_TOKEN
    each = f"CASE WHEN {dumped} = 0 THEN 0 ELSE greatest(1, ({dumped} + {per - 1}) // {per}) END"
    items = f"list_transform(json_extract(body, '$.input[*]'), lambda i: {each})"
    text = estimate("(body ->> 'input')")
    return (
        f"CASE WHEN json_type(body, '$.input') = 'VARCHAR' THEN {text} "
        f"ELSE coalesce(list_sum({items}), 0) END"
    )


def _count(text: str, pattern: str) -> str:
    """SQL counting the characters of `text` that match the RE2 class `pattern`."""
    return f"(length({text}) - length(regexp_replace({text}, {pattern}, '', 'g')))"


# Embeddings.

_EMBEDDED = (
    "CASE WHEN json_type(body, '$.input') = 'VARCHAR' THEN [body ->> 'input'] "
    "ELSE list_transform(json_extract(body, '$.input[*]'), lambda x: x ->> '$') END"
)


def _embeddings(result: Answer, shape: Mapping[str, Any], body: dict[str, Any]) -> dict[str, str]:
    result.columns.append(("inputs", _EMBEDDED))
    result.columns.append(
        ("prompt_tokens", f"list_sum(list_transform(inputs, lambda x: {estimate('x')}))")
    )
    default = 3072 if "large" in str(shape["model"]) else 1536
    vector = vector_sql("inputs[i + 1]", int(shape.get("dimensions") or default))
    opening, middle = (
        result.param('{"object": "embedding", "index": '),
        result.param(', "embedding": '),
    )
    item = f"{opening} || i::VARCHAR || {middle} || to_json({vector})::VARCHAR || '}}'"
    data = f"list_transform(range(len(inputs)), lambda i: {item})"
    body["data"] = hole("data")
    body["usage"].update(prompt_tokens=hole("prompt_tokens"), total_tokens=hole("total"))
    return {
        "data": f"('[' || array_to_string({data}, ', ') || ']')",
        "prompt_tokens": "prompt_tokens::VARCHAR",
        "total": "prompt_tokens::VARCHAR",
    }


def vector_sql(text: str, dimensions: int) -> str:
    """SQL for ``offline.vector(text, dimensions)``: a unit vector seeded by the text's sha256."""
    seed = (
        f"list_transform([sha256({text})], lambda d: [('0x' || substr(d, 1, 8))::UBIGINT, "
        "('0x' || substr(d, 9, 8))::UBIGINT])[1]"
    )
    wave = f"sin((k + 1) * (n[1] / {_TWO_32} * 1000 + 1) + n[2] / {_TWO_32} * 6.283185307179586)"
    waves = f"list_transform(range({int(dimensions)}), lambda k: {wave})"
    raw = f"list_transform([{seed}], lambda n: {waves})[1]"
    norm = "coalesce(nullif(sqrt(list_sum(list_transform(v, lambda y: y * y))), 0), 1.0)"
    scaled = f"list_transform([{norm}], lambda r: list_transform(v, lambda x: x / r))[1]"
    return f"list_transform([{raw}], lambda v: {scaled})[1]"


_BUILDERS: dict[str, Build] = {CHAT: _chat, RESPONSES: _responses, EMBEDDINGS: _embeddings}
