"""Parsing of request bodies and query parameters into clear 4xx errors."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel

from simfarm.gateway.errors import ApiError, field_error

M = TypeVar("M", bound=BaseModel)
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
JOB_ID = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


def json_body() -> Any:
    """The request's JSON body, or a 415/400 explaining what is wrong with it."""
    if not request.is_json:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        )
    raw = request.get_data(cache=True)
    if not raw:
        raise ApiError(400, "bad_request", "the request body is empty; send a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_request", f"malformed JSON: {exc}") from exc


def parse_body(model: type[M]) -> M:
    """The JSON body validated as ``model`` (422 with field paths when invalid)."""
    data = json_body()
    if not isinstance(data, dict):
        raise ApiError(
            422,
            "validation_error",
            "the body must be a JSON object",
            [{"field": "body", "reason": "must be an object"}],
        )
    return model.model_validate(data)


def int_arg(name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``[low, high]``."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise field_error(name, "must be an integer") from None
    if not low <= value <= high:
        raise field_error(name, f"must be between {low} and {high}")
    return value


def float_arg(name: str, default: float, low: float, high: float) -> float:
    """A number query parameter within ``[low, high]``."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise field_error(name, "must be a number") from None
    if not low <= value <= high:
        raise field_error(name, f"must be between {low:g} and {high:g}")
    return value


def idempotency_key() -> str | None:
    """The Idempotency-Key header, validated."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.match(key):
        raise field_error("Idempotency-Key", "1-200 characters of A-Z a-z 0-9 _ . : -", 400)
    return key


def check_job_id(job_id: str) -> str:
    """A syntactically valid job id (anything else cannot exist: 404)."""
    if not JOB_ID.match(job_id):
        raise ApiError(404, "not_found", f"job {job_id[:64]} not found")
    return job_id
