"""Per-route API metadata: the ``@document`` decorator and its lookup.

Every route of the gateway carries a :class:`RouteDoc`; the OpenAPI document is built
from them and from the pydantic models they name (see :mod:`.builder`). How to document
a new route::

    from simfarm.gateway.openapi import Body, document

    @bp.patch("/jobs/<job_id>")
    @document(
        tags=["jobs"],
        body=PriorityChange,                 # pydantic model of the JSON body
        responses={200: JobOut},             # status -> model, Body(...) or a description
        errors=(404, 409, 422),              # standard JSON error bodies
        path_params={"job_id": "the job's id"},
    )
    def patch_job(job_id: str) -> Response:
        \"\"\"Change a queued job (first paragraph = summary, rest = description).\"\"\"

``@document`` goes *below* the route decorator (it must see the plain function). It only
stores metadata on the function, so it also works under ``flask_sock``'s ``route`` (which
copies the function's attributes with ``functools.wraps``). For a view you cannot edit,
call ``document(...)(view)`` from another module before the app serves requests.
``tests/test_openapi.py`` fails for any route of ``app.url_map`` without metadata.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
ATTRIBUTE = "__simfarm_openapi__"
JSON = "application/json"


@dataclass(frozen=True)
class Body:
    """A request or response body: a type pydantic can describe, its media type and text.

    ``type`` is a pydantic model or anything :class:`pydantic.TypeAdapter` accepts
    (``list[Job]``, ``dict[str, int]``...); ``None`` means a body without a schema
    (HTML pages, Prometheus text, files).
    """

    type: Any = None
    description: str = ""
    media_type: str = JSON


@dataclass(frozen=True)
class RouteDoc:
    """What the OpenAPI document says about one view function (all its rules/methods)."""

    summary: str
    description: str = ""
    tags: tuple[str, ...] = ()
    body: Body | None = None
    query: type[Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    path_params: Mapping[str, str] = field(default_factory=dict)
    responses: Mapping[int, Body] = field(default_factory=dict)
    deprecated: bool = False
    websocket: bool = False


_ERROR_TEXT = {
    400: "bad request (malformed JSON, bad header)",
    401: "missing or invalid token",
    403: "not allowed for this user",
    404: "not found",
    409: "conflict with the job's current state",
    413: "body too large",
    415: "body is not JSON",
    422: "validation error; `fields` names each bad field and why",
    429: "a limit is reached (the user's or account's `max_pending_jobs`); `detail` names it",
    503: "Redis unavailable",
}


def _as_body(value: Any, status: int) -> Body:
    if isinstance(value, Body):
        return value
    if isinstance(value, str):
        return Body(None, value, media_type="")
    return Body(value, "")


def document(
    *,
    summary: str | None = None,
    description: str | None = None,
    tags: Sequence[str] = (),
    body: Any = None,
    query: type[Any] | None = None,
    headers: Mapping[str, str] | None = None,
    path_params: Mapping[str, str] | None = None,
    responses: Mapping[int, Any] | None = None,
    errors: Sequence[int] = (),
    deprecated: bool = False,
    websocket: bool = False,
) -> Callable[[F], F]:
    """Attach OpenAPI metadata to a view function (see the module docstring).

    ``summary``/``description`` default to the docstring's first paragraph and the rest.
    ``query`` is a pydantic model whose fields are the query parameters. ``responses``
    maps a status to a model/type, a :class:`Body` or a plain description (no body).
    ``errors`` adds simfarm's JSON error body (``{error, detail, fields}``) for those
    statuses.
    """
    from simfarm.gateway.openapi.bodies import ErrorBody

    def attach(view: F) -> F:
        # Docstrings use reST ``literals``; OpenAPI renders Markdown.
        text = (inspect.getdoc(view) or "").strip().replace("``", "`")
        paragraphs = text.split("\n\n", 1)
        first = " ".join(paragraphs[0].split())
        all_responses = {s: _as_body(v, s) for s, v in (responses or {}).items()}
        for status in errors:
            all_responses.setdefault(status, Body(ErrorBody, _ERROR_TEXT.get(status, "error")))
        setattr(
            view,
            ATTRIBUTE,
            RouteDoc(
                summary=summary or first,
                description=description
                if description is not None
                else (paragraphs[1].strip() if len(paragraphs) > 1 else ""),
                tags=tuple(tags),
                body=None if body is None else _as_body(body, 0),
                query=query,
                headers=dict(headers or {}),
                path_params=dict(path_params or {}),
                responses=all_responses,
                deprecated=deprecated,
                websocket=websocket,
            ),
        )
        return view

    return attach


def route_doc(view: Callable[..., Any]) -> RouteDoc | None:
    """The metadata of a view function, following ``__wrapped__`` chains."""
    seen = 0
    current: Any = view
    while current is not None and seen < 10:
        doc = getattr(current, ATTRIBUTE, None)
        if isinstance(doc, RouteDoc):
            return doc
        current = getattr(current, "__wrapped__", None)
        seen += 1
    return None
