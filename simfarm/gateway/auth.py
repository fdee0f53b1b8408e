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
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from pydantic import BaseModel, Field

from simfarm.common.errors import JobNotFound, SimfarmError
from simfarm.common.settings import Settings
from simfarm.common.store.logins import LoginCodes
from simfarm.common.tokens import TokenTable
from simfarm.gateway import peer
from simfarm.gateway.errors import ApiError
from simfarm.gateway.openapi.registry import Body, document
from simfarm.gateway.services import services

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_EXTENSION = "simfarm.auth"
_LOGIN = "simfarm.login"
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
    worker: bool = False
    """A worker's token: blobs and results of running jobs only."""


#: What a worker's token may call (staged files: fetch the project, send the results).
WORKER_ENDPOINTS = frozenset({"files.get_blob", "files.put_blob", "files.attach_results"})


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
    """Refuse to serve without tokens a non-loopback address, or loopback on a platform
    where the gateway cannot tell which local account connects (raises AuthConfigError)."""
    if settings.auth_tokens:
        return
    if is_loopback(settings.gateway_host):
        if peer.supported():
            return
        raise AuthConfigError(
            "refusing to start without tokens: on this platform the gateway cannot tell "
            "which local account connects, so any account could use it. Configure a token "
            "(`simfarm hash-token --user NAME`), or use `simfarm up`, which makes one.")
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
        if not _same_account():
            return _forbidden_account()
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
    if entry.worker and request.endpoint not in WORKER_ENDPOINTS and not _is_public():
        response = jsonify({"error": "forbidden", "detail": "a worker's token only moves "
                            "blobs and attaches results", "fields": []})
        response.status_code = 403
        return response
    g.simfarm_principal = Principal(user=entry.user, admin=entry.admin and not entry.worker,
                                    authenticated=True, worker=entry.worker)
    return None


def _same_account() -> bool:
    """Open mode: whether the connection comes from a process of the gateway's own OS
    account (Linux: the socket's owner in /proc/net/tcp). A request with no network
    connection at all (an in-process WSGI call) is the gateway's own."""
    environ = request.environ
    if "REMOTE_PORT" not in environ:
        return True
    if not peer.supported():
        return False
    uid = peer.connection_uid(environ, request.remote_addr or "")
    return uid is not None and uid == os.geteuid()


def _forbidden_account() -> Response:
    log.warning("open mode: refused a connection from another local account (%s:%s) on %s",
                request.remote_addr, request.environ.get("REMOTE_PORT"), request.path)
    response = jsonify(
        {
            "error": "forbidden",
            "detail": "this gateway has no tokens configured and serves only the account it "
            "runs as; use a token (simfarm up writes one for its owner)",
            "fields": [],
        }
    )
    response.status_code = 403
    return response


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


login_bp = Blueprint("login", __name__)
_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>simfarm: signing in</title></head>
<body><p>Signing in ...</p><script>
window.localStorage.setItem("simfarm.token", TOKEN);
document.cookie = "COOKIE=" + encodeURIComponent(TOKEN) + "; path=/; SameSite=Strict";
window.location.replace("/");
</script></body></html>
"""


class OneTimeLogin:
    """The one-time dashboard login code of ``simfarm up``: the first browser that opens
    the printed URL gets the owner's token, nobody after it - on any process of any
    gateway sharing the farm's Redis (:class:`~simfarm.common.store.logins.LoginCodes`)."""

    def __init__(self, settings: Settings, codes: LoginCodes) -> None:
        self.code_sha256 = settings.login_code_sha256
        self.token = settings.local_token
        self.codes = codes
        self._lock = threading.Lock()

    def redeem(self, code: str) -> str | None:
        """The token for a valid, unused code (then used), else None."""
        if not (self.code_sha256 and self.token and code):
            return None
        digest = hashlib.sha256(code.encode()).hexdigest()
        with self._lock:
            if self.code_sha256 is None or not hmac.compare_digest(digest, self.code_sha256):
                return None
            first = self.codes.use(digest)  # a Redis error leaves the code unused
            self.code_sha256 = None  # used, here or on another gateway: never ask again
            return self.token if first else None


class LoginQuery(BaseModel):
    """The one-time code of the login URL."""

    code: str = Field(default="", description="the code `simfarm up` printed")


@login_bp.get("/login")
@document(tags=["dashboard"], query=LoginQuery,
          responses={200: Body(None, "signs the browser in, then opens the dashboard",
                               media_type="text/html"),
                     403: Body(None, "the code is not valid or was used", media_type="text/html")})
@public
def login() -> Response:
    """Sign a browser in with the one-time code of the URL `simfarm up` prints.

    The first request with the code gets a page that stores the owner's token in the
    browser and opens the dashboard; the code is then used up."""
    token = current_app.extensions[_LOGIN].redeem(request.args.get("code", ""))
    if token is None:
        log.warning("refused a dashboard login code from %s", request.remote_addr)
        page = Response("<!doctype html><p>This login link is not valid or was used "
                        "already. Restart <code>simfarm up</code> for a new one.</p>", 403,
                        mimetype="text/html")
    else:
        body = _LOGIN_PAGE.replace("TOKEN", json.dumps(token)).replace("COOKIE", COOKIE)
        page = Response(body, 200, mimetype="text/html")
        log.info("dashboard signed in with the one-time login code from %s",
                 request.remote_addr)
    page.headers["Cache-Control"] = "no-store"
    return page


def install_auth(app: Flask, settings: Settings) -> None:
    """Check the bind address, then authenticate every request of ``app``."""
    check_bind(settings)
    app.extensions[_EXTENSION] = TokenTable(list(settings.auth_tokens))
    svc = app.extensions["simfarm"]
    app.extensions[_LOGIN] = OneTimeLogin(settings, LoginCodes(svc.redis, settings.key_prefix))
    app.before_request(_authenticate)
    app.register_blueprint(bp)
    app.register_blueprint(login_bp)
