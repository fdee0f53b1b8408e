"""JSON errors for the API: ``{error, detail, fields}`` with the right 4xx status."""

from __future__ import annotations

import logging

import redis
from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from simfarm.common.errors import DuplicateJob, IllegalTransition, JobNotFound, NotReplicated
from simfarm.common.paths import PathRejected

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as JSON with an HTTP status."""

    def __init__(
        self, status: int, error: str, detail: str, fields: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.fields = fields or []


def field_error(field: str, reason: str, status: int = 422) -> ApiError:
    """A 422 (by default) naming one bad field."""
    return ApiError(
        status, "validation_error", f"{field}: {reason}", [{"field": field, "reason": reason}]
    )


def pyedb_error(status: int, error: str, fields: list[dict[str, str]] | None = None) -> Response:
    """The PyEDB routes' failure body: PyEDB's ``success``/``error`` with simfarm's
    ``detail`` and ``fields``."""
    response = jsonify({"success": False, "error": error, "detail": error, "fields": fields or []})
    response.status_code = status
    return response


def validation_fields(exc: ValidationError) -> list[dict[str, str]]:
    """The field paths and reasons of a pydantic error, in API form."""
    out = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"]) or "body"
        out.append({"field": path, "reason": err["msg"]})
    return out


def _body(status: int, error: str, detail: str, fields: list[dict[str, str]]) -> Response:
    response = jsonify({"error": error, "detail": detail, "fields": fields})
    response.status_code = status
    return response


def _unexpected(exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _body(500, "internal_error", "unexpected server error; see the gateway log", [])


def install_error_handlers(app: Flask) -> None:
    """Answer every error, including Flask's own, as JSON."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return _body(exc.status, exc.error, exc.detail, exc.fields)

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    @app.errorhandler(redis.exceptions.BusyLoadingError)
    def _redis_down(exc: redis.RedisError) -> Response:
        # Nothing was stored: the client may retry (with the same Idempotency-Key).
        log.warning("Redis unavailable on %s %s: %s", request.method, request.path, exc)
        response = _body(503, "unavailable", f"the job store (Redis) is unavailable: {exc}; "
                         "nothing was changed, retry shortly", [])
        response.headers["Retry-After"] = "2"
        return response

    @app.errorhandler(redis.ResponseError)
    def _redis_refused(exc: redis.ResponseError) -> Response:
        message = str(exc)
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or message.startswith("OOM"):
            # redis-py strips the "OOM" code from the message (OutOfMemoryError). A script
            # is refused at its first write only, so nothing was stored.
            log.error("Redis out of memory on %s %s: %s", request.method, request.path, exc)
            response = _body(507, "insufficient_storage", "the job store (Redis) is out of "
                             f"memory (maxmemory) and refuses writes: {message}; nothing was "
                             "changed: retry later, once memory is freed", [])
            response.headers["Retry-After"] = "10"
            return response
        if isinstance(exc, redis.exceptions.ReadOnlyError):
            # A replica after a failover, before this gateway moved to the new primary.
            log.warning("Redis read-only on %s %s: %s", request.method, request.path, exc)
            response = _body(503, "unavailable", f"the job store (Redis) is read-only "
                             f"(failing over?): {message}; nothing was changed, retry shortly",
                             [])
            response.headers["Retry-After"] = "2"
            return response
        if "MISCONF" in message:
            # Redis cannot persist (disk full, AOF write error).
            log.error("Redis refuses writes on %s %s: %s", request.method, request.path, exc)
            response = _body(507, "insufficient_storage", f"the job store (Redis) refuses "
                             f"writes: {message}; free space where Redis keeps its data", [])
            response.headers["Retry-After"] = "10"
            return response
        return _unexpected(exc)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        fields = validation_fields(exc)
        detail = "; ".join(f"{f['field']}: {f['reason']}" for f in fields)
        return _body(422, "validation_error", detail, fields)

    @app.errorhandler(NotReplicated)
    def _not_replicated(exc: NotReplicated) -> Response:
        # Stored on the primary, but a failover now could lose it: not acknowledged. A
        # retry with the same Idempotency-Key returns this job instead of a second one.
        log.warning("%s %s not acknowledged: %s", request.method, request.path, exc)
        response = _body(503, "not_replicated", f"the job store's replicas did not confirm "
                         f"the write in time ({exc}); retry with the same Idempotency-Key: "
                         "the job is then created at most once", [])
        response.headers["Retry-After"] = "2"
        return response

    @app.errorhandler(JobNotFound)
    def _not_found(exc: JobNotFound) -> Response:
        return _body(404, "not_found", str(exc), [])

    @app.errorhandler(PathRejected)
    def _bad_path(exc: PathRejected) -> Response:
        return _body(422, "validation_error", str(exc), [{"field": exc.field,
                                                           "reason": exc.reason}])

    @app.errorhandler(IllegalTransition)
    def _conflict(exc: IllegalTransition) -> Response:
        return _body(409, "conflict", str(exc), [{"field": "state", "reason": exc.current}])

    @app.errorhandler(DuplicateJob)
    def _duplicate(exc: DuplicateJob) -> Response:
        return _body(409, "conflict", str(exc), [{"field": "id", "reason": "already exists"}])

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        names = {
            413: "payload_too_large",
            404: "not_found",
            405: "method_not_allowed",
            400: "bad_request",
            415: "unsupported_media_type",
        }
        response = _body(
            status,
            names.get(status, exc.name.lower().replace(" ", "_")),
            exc.description or exc.name,
            [],
        )
        for name, value in exc.get_headers():  # Allow (405), WWW-Authenticate...
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    app.register_error_handler(Exception, _unexpected)
