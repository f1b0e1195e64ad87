"""What happens to each request line of a batch: injected faults, result lines, usage totals."""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Mapping
from typing import Any

from .replies import LineError, Reply

REFUSAL = "I'm sorry, but I can't help with that request."


def gone(record: Mapping[str, Any]) -> bool:
    after = record["faults"]["disappear_after_polls"]
    return after is not None and record["retrieves"] >= after


def line_faults(record: Mapping[str, Any], total: int, seed: int) -> dict[str, str]:
    faults = record["faults"]
    order = list(range(total))
    random.Random(f"{seed}:{record['batch']['id']}:faults").shuffle(order)
    kinds: dict[str, str] = {}
    position = 0
    for kind, share in (
        ("fail", faults["fail_fraction"]),
        ("timeout", faults["timeout_fraction"]),
        ("zero", faults["status_zero_fraction"]),
        ("truncated", faults["truncated_fraction"]),
        ("refusal", faults["refusal_fraction"]),
    ):
        count = round(share * total)
        kinds.update({str(i): kind for i in order[position : position + count]})
        position += count
    return kinds


def distort(kind: str | None, reply: Reply) -> Reply:
    choices = reply.body.get("choices") if reply.status == 200 else None
    if not kind or not choices:
        return reply
    body = json.loads(json.dumps(reply.body))
    message = body["choices"][0]["message"]
    if kind == "truncated":
        text = message.get("content") or ""
        message["content"] = text[: max(1, len(text) // 2)]
        body["choices"][0]["finish_reason"] = "length"
    elif kind == "refusal":
        message.update(content=None, refusal=REFUSAL)
    return Reply(200, body)


def result_line(line: Mapping[str, Any], outcome: Reply | LineError) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "batch_req_" + secrets.token_hex(16),
        "custom_id": line["custom_id"],
    }
    if isinstance(outcome, LineError):
        return entry | {
            "response": None,
            "error": {"code": outcome.code, "message": outcome.message},
        }
    request_id = "" if outcome.status == 0 else secrets.token_hex(16)
    response = {"status_code": outcome.status, "request_id": request_id, "body": outcome.body}
    return entry | {"response": response, "error": None}


def succeeded(line: Mapping[str, Any]) -> bool:
    response = line.get("response")
    return isinstance(response, Mapping) and response.get("status_code") == 200


def usage(prompt: int, completion: int) -> dict[str, Any]:
    """A Batch's ``usage``: the tokens of its answered lines (chat and embeddings count prompt and
    completion tokens, the Responses API input and output tokens)."""
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }
