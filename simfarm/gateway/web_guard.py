"""What keeps a web page from driving the farm through a user's browser.

Checked before authentication, on every gateway:

* **Host** must be one of the gateway's names (``gateway_hostnames``, the machine's own
  names, ``localhost``) or an IP address: a DNS-rebinding page (``Host:
  evil.example``, resolved to 127.0.0.1) gets 400.
* **Origin**, when a browser sends one on a WebSocket upgrade or a state-changing
  request (POST, PUT, PATCH, DELETE), must be the gateway's own or one of
  ``gateway_origins``: a cross-site WebSocket or ``fetch`` gets 403. ``Sec-Fetch-Site:
  cross-site`` without an Origin is refused the same way.
* **No form posts**: a state-changing request whose body is form-encoded, multipart or
  ``text/plain`` (what an HTML form can send cross-site without a preflight) gets 415.

Every answer carries the usual security headers (no sniffing, no framing, no referrer,
a same-origin Content-Security-Policy).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, jsonify, request

from simfarm.common.settings import Settings

log = logging.getLogger(__name__)

_EXTENSION = "simfarm.web_guard"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


@functools.lru_cache(maxsize=1)
def machine_names() -> frozenset[str]:
    """This machine's own names (host name and fully qualified name), lower case."""
    names = {"localhost", "localhost.localdomain"}
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.add(name.lower().rstrip("."))
    return frozenset(names)


class HostPolicy:
    """The Host and Origin values a gateway accepts."""

    def __init__(self, settings: Settings) -> None:
        self.names = frozenset(n.lower().rstrip(".") for n in settings.gateway_hostnames)
        self.any_host = "*" in self.names
        self.origins = frozenset(o.rstrip("/").lower() for o in settings.gateway_origins)

    def host_ok(self, host_header: str) -> bool:
        """Whether a ``Host`` header names this gateway."""
        host = _hostname(host_header)
        if host is None:
            return False
        if self.any_host or host in self.names or host in machine_names():
            return True
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return True  # an address typed by the user cannot be rebound to another one

    def origin_ok(self, origin: str, host_header: str) -> bool:
        """Whether a browser's ``Origin`` is this gateway itself (or an allowed one)."""
        origin = origin.rstrip("/").lower()
        if origin in self.origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (sandboxed frames, file: pages) is never trusted
        return parts.netloc == host_header.lower()


def _hostname(host_header: str) -> str | None:
    value = host_header.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else None
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".") or None


def _refuse(status: int, error: str, detail: str, field: str) -> Response:
    response = jsonify({"error": error, "detail": detail,
                        "fields": [{"field": field, "reason": detail}]})
    response.status_code = status
    return response


def check_request() -> Response | None:
    """Refuse requests a hostile web page could make; None lets the request on."""
    policy: HostPolicy = current_app.extensions[_EXTENSION]
    host = request.headers.get("Host", "")
    if not policy.host_ok(host):
        log.warning("refused Host %r from %s on %s", host[:100], request.remote_addr,
                    request.path)
        return _refuse(400, "bad_request", "this gateway does not answer to that host name "
                       "(set gateway_hostnames to add one)", "Host")
    upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
    if request.method not in UNSAFE and not upgrade:
        return None
    origin = request.headers.get("Origin")
    if origin is not None and not policy.origin_ok(origin, host):
        log.warning("refused Origin %r from %s on %s %s", origin[:100], request.remote_addr,
                    request.method, request.path)
        return _refuse(403, "forbidden", "cross-origin requests may not change anything or "
                       "open a WebSocket (set gateway_origins to allow a site)", "Origin")
    if origin is None and request.headers.get("Sec-Fetch-Site") == "cross-site":
        return _refuse(403, "forbidden", "cross-site requests may not change anything",
                       "Sec-Fetch-Site")
    if request.method in UNSAFE and request.mimetype in FORM_TYPES:
        return _refuse(415, "unsupported_media_type", "form bodies are not accepted; send "
                       "JSON with Content-Type: application/json", "Content-Type")
    return None


def add_headers(response: Response) -> Response:
    """The security headers of every answer."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def install_web_guard(app: Flask, settings: Settings) -> None:
    """Check Host, Origin and body types of every request of ``app``; add headers."""
    app.extensions[_EXTENSION] = HostPolicy(settings)
    app.before_request(check_request)
    app.after_request(add_headers)
