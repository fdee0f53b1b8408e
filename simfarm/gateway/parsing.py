"""Parsing of request bodies and query parameters into clear 4xx errors."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from flask import Flask, current_app, g, request
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel
from werkzeug.exceptions import RequestEntityTooLarge

from simfarm.gateway.errors import ApiError, field_error

M = TypeVar("M", bound=BaseModel)
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
JOB_ID = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def strict_json_loads(raw: str | bytes) -> Any:
    """Parse standard JSON only: no NaN/Infinity, no lone UTF-16 surrogates (they cannot
    be stored or sent back), and too-deep nesting is a ValueError rather than a crash."""
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    escaped = b"\\u" in raw if isinstance(raw, bytes) else "\\u" in raw
    if escaped:
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("contains an unpaired UTF-16 surrogate escape") from None
        except RecursionError:
            raise ValueError("nested too deeply") from None
    return data


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with :func:`strict_json_loads` for every ``get_json``."""

    sort_keys = False  # answers keep the models' field order

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return strict_json_loads(s)


def enforce_body_limit() -> None:
    """413 for a body without Content-Length (chunked) that reaches the size limit.

    Werkzeug stops reading such a stream at ``MAX_CONTENT_LENGTH`` and returns the
    truncated body silently; this reads it up front (it is cached for the view) and
    answers 413 instead of a confusing parse error."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length is not None or limit is None:
        return
    if request.method in ("POST", "PUT", "PATCH") and len(request.get_data(cache=True)) >= limit:
        raise RequestEntityTooLarge()


def install_request_parsing(app: Flask) -> None:
    """Strict JSON and the streamed-body size limit for ``app``."""
    app.json = StrictJSONProvider(app)
    app.before_request(enforce_body_limit)


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
        data = strict_json_loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_request", f"malformed JSON: {exc}") from exc
    g.simfarm_json = data  # parsed once: the audit hook reads it too
    return data


def parsed_json() -> Any:
    """The body :func:`json_body` parsed for this request, else ``request.get_json``."""
    if "simfarm_json" in g:
        return g.simfarm_json
    return request.get_json(silent=True)


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
