"""Who is calling the gateway, and which jobs they may see.

Every request is authenticated before it reaches a blueprint (default deny: a view is
open only if decorated with :func:`public`). Blueprints ask:

* :func:`current_user` — the caller's :class:`Principal` (user name, admin flag);
* :func:`can_see` / :func:`require_visible` — whether the caller may see or change a
  job owned by someone (others' jobs answer 404, so their ids are not confirmed);
* :func:`owner_for_submit` — the owner a new job gets;
* :func:`require_admin` — 403 unless admin.

Modes:

* **token mode** (``auth_tokens`` configured): ``Authorization: Bearer <token>`` is
  required on every non-public route (401 otherwise). WebSocket upgrades may pass the
  token as ``?access_token=`` because browsers cannot set headers on them. The
  dashboard keeps the token in the ``simfarm_token`` cookie, which is accepted for
  ``GET``/``HEAD`` only (page loads, WebSocket upgrades), so a cross-site form can
  never change anything with it. A browser asking for a page without a token gets a
  small sign-in page instead of the JSON 401.
* **open mode** (no tokens): only for a gateway bound to a loopback address — the
  single-user embedded farm. The caller is an anonymous admin, and requests that do
  not come from a loopback address are refused (403), in case the app is served on a
  public address by an outside WSGI server.

:func:`check_bind` makes the gateway refuse to start on a non-loopback address
without tokens.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from pydantic import BaseModel, Field

from simfarm.common.errors import JobNotFound, SimfarmError
from simfarm.common.settings import Settings
from simfarm.common.tokens import TokenTable
from simfarm.gateway.errors import ApiError
from simfarm.gateway.openapi.registry import document
from simfarm.gateway.services import services

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_EXTENSION = "simfarm.auth"
COOKIE = "simfarm_token"
_PUBLIC_ATTR = "_simfarm_public"

bp = Blueprint("auth", __name__, url_prefix="/api/v1")


class MeOut(BaseModel):
    """The caller, as ``GET /api/v1/me`` reports it."""

    user: str | None = Field(description="user name of the token; null in open mode")
    admin: bool = Field(description="sees and cancels every user's jobs")
    authenticated: bool = Field(description="a token was presented and checked")


class AuthConfigError(SimfarmError):
    """The gateway's settings would expose it without authentication."""


@dataclass(frozen=True)
class Principal:
    """The caller of a request."""

    user: str | None
    """User name from the token; None in open mode (anonymous local user)."""
    admin: bool
    """Admins see and cancel every job."""
    authenticated: bool
    """True when a token was checked (token mode)."""


def public(view: F) -> F:
    """Mark a view as reachable without a token (health, OpenAPI document)."""
    setattr(view, _PUBLIC_ATTR, True)
    return view


def is_public(view: Callable[..., Any] | None) -> bool:
    """Whether a view was marked with :func:`public`."""
    return bool(getattr(view, _PUBLIC_ATTR, False))


@functools.lru_cache(maxsize=4096)
def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is only reachable from this machine."""
    if host.strip().lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse to serve a non-loopback address without tokens (raises AuthConfigError)."""
    if settings.auth_tokens or is_loopback(settings.gateway_host):
        return
    raise AuthConfigError(
        f"refusing to start: the gateway would listen on {settings.gateway_host}, which is "
        "reachable from other machines, but no tokens are configured. Create one with "
        "`simfarm hash-token --user NAME` and put the printed entry in SIMFARM_AUTH_TOKENS "
        "(or [[auth_tokens]] in simfarm.toml), or bind 127.0.0.1."
    )


def current_user() -> Principal:
    """The caller of the current request."""
    principal: Principal = g.simfarm_principal
    return principal


def can_see(owner: str | None) -> bool:
    """Whether the caller may see and change a job owned by ``owner``."""
    principal = current_user()
    return principal.admin or (owner or None) == principal.user


def require_admin() -> None:
    """403 unless the caller is an admin."""
    if not current_user().admin:
        raise ApiError(403, "forbidden", "this needs an admin token")


def require_visible(job_id: str) -> None:
    """404 (:class:`JobNotFound`) unless the job exists and the caller may see it.
    One cheap Redis read; call it before acting on a job by id."""
    principal = current_user()
    owner = services().jobs.owner_of(job_id)  # JobNotFound when there is no such job
    if not principal.admin and (owner or None) != principal.user:
        raise JobNotFound(job_id)


def visible_owner_filter(requested: str | None = None) -> str | None:
    """The owner a listing must be limited to: the caller unless admin (an admin may ask
    for one ``requested`` owner). A non-admin asking for someone else gets 403."""
    principal = current_user()
    if principal.admin:
        return requested or None
    if requested and requested != principal.user:
        raise ApiError(403, "forbidden", "only admins list other users' jobs",
                       [{"field": "owner", "reason": "must be your own user name"}])
    return principal.user


def owner_for_submit(requested: str | None) -> str | None:
    """The owner of a job the caller submits: the caller; an admin (or the anonymous
    local user) may name another owner; anyone else naming another owner gets 403."""
    principal = current_user()
    if principal.user is None:
        return requested or None
    if requested and requested != principal.user:
        if not principal.admin:
            raise ApiError(
                403,
                "forbidden",
                f"you are {principal.user}; only admins submit jobs for other users",
                [{"field": "owner", "reason": "must be your own user name"}],
            )
        return requested
    return principal.user


def _unauthorized(detail: str) -> Response:
    response = jsonify({"error": "unauthorized", "detail": detail, "fields": []})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="simfarm"'
    return response


def _presented_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if request.headers.get("Upgrade", "").lower() == "websocket" and request.args.get(
        "access_token"
    ):
        return request.args["access_token"]
    if request.method in ("GET", "HEAD") and request.cookies.get(COOKIE):
        return unquote(request.cookies[COOKIE])
    return None


def _wants_html() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return request.method == "GET" and best == "text/html"


_SIGN_IN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>simfarm: sign in</title></head>
<body style="font-family: sans-serif; max-width: 30em; margin: 4em auto">
<h1>simfarm</h1><p>This farm needs an API token (ask its administrator, who makes one
with <code>simfarm hash-token</code>).</p>
<form id="f"><label>API token <input id="t" type="password" autocomplete="off" required>
</label> <button>Sign in</button></form>
<script>
document.getElementById("f").addEventListener("submit", function (e) {
  e.preventDefault();
  var t = document.getElementById("t").value;
  window.localStorage.setItem("simfarm.token", t);
  document.cookie = "COOKIE=" + encodeURIComponent(t) + "; path=/; SameSite=Strict";
  window.location.reload();
});
</script></body></html>
"""


def _is_public() -> bool:
    return is_public(current_app.view_functions.get(request.endpoint or ""))


def _authenticate() -> Response | None:
    table: TokenTable = current_app.extensions[_EXTENSION]
    if not table:
        if not is_loopback(request.remote_addr or ""):
            return _forbidden_remote()
        g.simfarm_principal = Principal(user=None, admin=True, authenticated=False)
        return None
    token = _presented_token()
    entry = table.lookup(token) if token else None
    if entry is None:
        if _is_public():
            g.simfarm_principal = Principal(user=None, admin=False, authenticated=False)
            return None
        if _wants_html():
            page = Response(_SIGN_IN.replace("COOKIE", COOKIE), 401, mimetype="text/html")
            page.headers["WWW-Authenticate"] = 'Bearer realm="simfarm"'
            return page
        if token is None:
            return _unauthorized("send 'Authorization: Bearer <token>' (SIMFARM_TOKEN)")
        log.warning("rejected a bad token from %s on %s", request.remote_addr, request.path)
        return _unauthorized("the token is not valid")
    g.simfarm_principal = Principal(user=entry.user, admin=entry.admin, authenticated=True)
    return None


def _forbidden_remote() -> Response:
    response = jsonify(
        {
            "error": "forbidden",
            "detail": "this gateway has no tokens configured and only serves its own machine",
            "fields": [],
        }
    )
    response.status_code = 403
    return response


@bp.get("/me")
@document(tags=["service"], responses={200: MeOut})
def me() -> Response:
    """The caller: user name, admin flag and whether a token was used."""
    principal = current_user()
    return jsonify(
        {"user": principal.user, "admin": principal.admin, "authenticated": principal.authenticated}
    )


def install_auth(app: Flask, settings: Settings) -> None:
    """Check the bind address, then authenticate every request of ``app``."""
    check_bind(settings)
    app.extensions[_EXTENSION] = TokenTable(list(settings.auth_tokens))
    app.before_request(_authenticate)
    app.register_blueprint(bp)
