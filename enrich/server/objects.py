"""The JSON objects the server answers with (File, Batch, list pages), and batch create checks."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from .replies import ApiError

ENDPOINTS = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
)


def file_object(
    fid: str, filename: str, purpose: str, size: int, now: int, lifetime: int | None
) -> dict[str, Any]:
    return {
        "id": fid,
        "object": "file",
        "bytes": size,
        "created_at": now,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": now + lifetime if lifetime else None,
    }


def public_file(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if not k.startswith("_")}


def page(items: list[dict[str, Any]], limit: int, after: str | None) -> dict[str, Any]:
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    data = items[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(items) > limit,
    }


def check_create(params: Mapping[str, Any]) -> None:
    for key in ("input_file_id", "endpoint", "completion_window"):
        if not params.get(key):
            raise ApiError(
                400, f"Missing required parameter: '{key}'.", key, "missing_required_parameter"
            )
    if params["endpoint"] not in ENDPOINTS:
        raise ApiError(
            400,
            f"Invalid value: '{params['endpoint']}'. Supported values are: "
            + ", ".join(f"'{e}'" for e in ENDPOINTS)
            + ".",
            "endpoint",
            "invalid_value",
        )
    if params["completion_window"] != "24h":
        raise ApiError(
            400,
            f"Invalid value: '{params['completion_window']}'. Supported values are: '24h'.",
            "completion_window",
            "invalid_value",
        )
    check_metadata(params.get("metadata"))


def check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise ApiError(
            400, "Invalid type for 'metadata': expected an object.", "metadata", "invalid_type"
        )
    if len(metadata) > 16:
        raise ApiError(
            400,
            "Invalid 'metadata': too many properties. Expected an object with at most 16 "
            f"properties, but got an object with {len(metadata)} properties instead.",
            "metadata",
            "object_above_max_properties",
        )
    for key, value in metadata.items():
        if len(key) > 64:
            raise ApiError(
                400,
                f"Invalid 'metadata': key '{key[:20]}…' is longer than 64 characters.",
                "metadata",
                "invalid_value",
            )
        if not isinstance(value, str):
            raise ApiError(
                400,
                f"Invalid type for 'metadata.{key}': expected a string, but got "
                f"{type(value).__name__} instead.",
                f"metadata.{key}",
                "invalid_type",
            )
        if len(value) > 512:
            raise ApiError(
                400,
                f"Invalid 'metadata.{key}': string too long. Expected a string with "
                "maximum length 512.",
                f"metadata.{key}",
                "string_above_max_length",
            )


def batch_object(params: Mapping[str, Any], now: int, window: float) -> dict[str, Any]:
    return {
        "id": "batch_" + secrets.token_hex(16),
        "object": "batch",
        "endpoint": params["endpoint"],
        "model": None,
        "errors": None,
        "input_file_id": params["input_file_id"],
        "completion_window": "24h",
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": now,
        "in_progress_at": None,
        "expires_at": int(now + window),
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "usage": None,
        "metadata": params.get("metadata"),
    }
