"""A request body's shape: the body with its free text replaced by placeholders, in DuckDB.

Requests in a batch differ mostly in their text: the messages, a Responses input, an embedding's
input. Everything the API checks about a body, and everything the offline answer's structure
depends on, is in its shape, so checking one body per shape checks them all. The placeholders keep
what the checks read of a text: ``""`` for an empty one (embeddings refuse it), ``"json"`` for one
that says JSON in any case (JSON mode needs the word), ``"text"`` for any other; URLs become
``"url"``. Only strings are replaced, so a value of another type stays and is checked as it is.

A shape is *plain* when every text is where the SQL answers (:mod:`.bulk_replies`) read it: chat
messages whose content is a string or text and ``image_url`` parts, Responses input that is a
string or such messages, and embeddings of strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

CHAT, EMBEDDINGS, RESPONSES = "/v1/chat/completions", "/v1/embeddings", "/v1/responses"


def shape_sql(url: str, body: str) -> str:
    """SQL for the shape of the JSON body in column `body`, as JSON."""
    if url == CHAT:
        patches = [_each(body, "messages", "m", _message)]
    elif url == RESPONSES:
        patches = [_string(body, "input", _text), _each(body, "input", "m", _message)]
        patches.append(_string(body, "instructions", _text))
    elif url == EMBEDDINGS:
        patches = [_string(body, "input", _text), _each(body, "input", "x", _input)]
    else:
        return body
    return f"json_merge_patch({body}, {', '.join(patches)})"


def _text(value: str) -> str:
    return (
        f"CASE WHEN {value} = '' THEN '' WHEN contains(lower({value}), 'json') THEN 'json' "
        "ELSE 'text' END"
    )


def _url(value: str) -> str:
    return f"CASE WHEN {value} = '' THEN '' ELSE 'url' END"


# Each of these gives a merge patch for the JSON value `obj` (a column or a lambda variable):
# an object that changes one thing, or {} that changes nothing.


def _string(obj: str, key: str, placeholder: Callable[[str], str]) -> str:
    """The patch replacing the string at `key` (a dotted path) by its placeholder."""
    path = f"'$.{key}'"
    patch = placeholder(f"json_extract_string({obj}, {path})")
    for step in reversed(key.split(".")):
        patch = f"json_object('{step}', {patch})"
    return f"CASE WHEN json_type({obj}, {path}) = 'VARCHAR' THEN {patch} ELSE '{{}}'::JSON END"


def _each(obj: str, key: str, var: str, item: Callable[[str], str]) -> str:
    """The patch replacing each element of the array at `key` by `item` of it."""
    items = f"list_transform(json_extract({obj}, '$.{key}[*]'), lambda {var}: {item(var)})"
    return (
        f"CASE WHEN json_type({obj}, '$.{key}') = 'ARRAY' "
        f"THEN json_object('{key}', {items}) ELSE '{{}}'::JSON END"
    )


def _message(message: str) -> str:
    """A chat message or Responses input item: its string content, or the texts of its parts."""
    patches = [_string(message, "content", _text), _each(message, "content", "p", _part)]
    return _patched(message, patches)


def _part(part: str) -> str:
    """A content part: its text, and its image URL (chat nests it under ``url``)."""
    patches = [
        _string(part, "text", _text),
        _string(part, "image_url.url", _url),
        _string(part, "image_url", _url),
    ]
    return _patched(part, patches)


def _patched(obj: str, patches: list[str]) -> str:
    """`obj` with the patches applied, if it is an object (a patch makes anything else {})."""
    merged = f"json_merge_patch({obj}, {', '.join(patches)})"
    return f"CASE WHEN json_type({obj}) = 'OBJECT' THEN {merged} ELSE {obj} END"


def _input(value: str) -> str:
    placeholder = _text(f"({value} ->> '$')")
    return f"CASE WHEN json_type({value}) = 'VARCHAR' THEN to_json({placeholder}) ELSE {value} END"


# Which shapes the SQL answers cover.


def is_plain(url: str, shape: Mapping[str, Any]) -> bool:
    """Whether the SQL answers read every text of bodies of this shape."""
    if not isinstance(shape.get("model"), str) or not shape["model"]:
        return False
    if url == CHAT:
        messages = shape.get("messages")
        return _plain_list(messages) and all(_plain_message(m, _chat_part) for m in messages)
    if url == RESPONSES:
        source = shape.get("input")
        if isinstance(source, str):
            return True
        return _plain_list(source) and all(_plain_message(m, _input_part) for m in source)
    if url == EMBEDDINGS:
        source = shape.get("input")
        strings = isinstance(source, str) or (
            _plain_list(source) and all(isinstance(x, str) for x in source)
        )
        return strings and shape.get("encoding_format") != "base64"
    return False


def _plain_list(value: Any) -> TypeGuard[list[Any]]:
    return isinstance(value, list) and bool(value)


def _plain_message(message: Any, part: Callable[[Any], bool]) -> bool:
    if not isinstance(message, Mapping):
        return False
    content = message.get("content")
    return isinstance(content, str) or (isinstance(content, list) and all(part(p) for p in content))


def _chat_part(part: Any) -> bool:
    if not isinstance(part, Mapping):
        return False
    if part.get("type") == "text":
        return isinstance(part.get("text"), str)
    image = part.get("image_url")
    return (
        part.get("type") == "image_url"
        and isinstance(image, Mapping)
        and isinstance(image.get("url"), str)
    )


def _input_part(part: Any) -> bool:
    if not isinstance(part, Mapping):
        return False
    if part.get("type") == "input_text":
        return isinstance(part.get("text"), str)
    return part.get("type") == "input_image" and isinstance(part.get("image_url"), str)
