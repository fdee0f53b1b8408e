"""What ``Client`` and ``AsyncClient`` share besides the flows: where the gateway is,
the token, the embedded service, the WebSocket URL."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
)

from simfarm.client import api
from simfarm.client.flows import WsClosed, WsUnavailable
from simfarm.common.settings import Settings
from simfarm.common.ws_protocol import WS_PATH

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8765"


def resolve_url(url: str | None = None) -> str:
    """The gateway URL: explicit, ``SIMFARM_URL``, a running ``simfarm up``, or the default."""
    if url:
        return url.rstrip("/")
    if os.environ.get("SIMFARM_URL"):
        return os.environ["SIMFARM_URL"].rstrip("/")
    from simfarm.client.embedded import read_state_file

    state = read_state_file(Settings().state_dir)
    if state and state.get("url"):
        return state["url"].rstrip("/")
    return DEFAULT_URL


def resolve_token(token: str | None = None, url: str | None = None) -> str | None:
    """The bearer token: explicit, else ``SIMFARM_TOKEN``, else the local token of the
    running ``simfarm up`` when ``url`` is its gateway (or not given)."""
    if token or os.environ.get("SIMFARM_TOKEN"):
        return token or os.environ.get("SIMFARM_TOKEN")
    return token_from_state(Settings().state_dir, url)


def token_from_state(state_dir: Path, url: str | None = None) -> str | None:
    """The local token of the embedded service started from ``state_dir``, when it runs
    at ``url`` (any URL when None). Only its owner can read the file (0600)."""
    from simfarm.client.embedded import read_state_file

    state = read_state_file(state_dir)
    if state and state.get("token") and (url is None or _same_url(url, state.get("url"))):
        return state["token"]
    return None


def _same_url(url: str, other: str | None) -> bool:
    if not other:
        return False
    return url.rstrip("/").replace("://localhost:", "://127.0.0.1:") == other.rstrip("/")


def ws_url(base_url: str) -> str:
    """The WebSocket URL of a gateway (``http`` → ``ws``, ``https`` → ``wss``)."""
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://") :] + WS_PATH
    if base_url.startswith("http://"):
        return "ws://" + base_url[len("http://") :] + WS_PATH
    raise ValueError(f"gateway URL must start with http:// or https://, not {base_url!r}")


class EmbeddedHandle:
    """A private farm (redis-server, gateway, one worker) for one client, in a fresh state
    folder; stopped by :meth:`stop`, or at interpreter exit at the latest."""

    def __init__(self, settings: Settings | None = None) -> None:
        from simfarm.client.embedded import EmbeddedService, free_port

        self._own_dir: Path | None = None
        if settings is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="simfarm-embedded-"))
            settings = Settings(redis_url=None, state_dir=self._own_dir)
        self._lock = threading.Lock()
        self._service: EmbeddedService | None = EmbeddedService(settings, gateway_port=free_port())
        atexit.register(self.stop)
        try:
            self._service.start()
        except BaseException:
            atexit.unregister(self.stop)  # the service cleaned up; keep its logs to read
            raise
        self.url = self._service.url
        self.token = self._service.local_token.token
        log.info("embedded simfarm running at %s", self.url)

    def stop(self) -> None:
        """Stop the service (idempotent, thread-safe)."""
        with self._lock:
            service, self._service = self._service, None
        if service is None:
            return
        atexit.unregister(self.stop)
        service.stop()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)


class ClientConfig:
    """Connection settings shared by both façades."""

    def __init__(
        self,
        url: str | None,
        token: str | None,
        embedded: bool,
        timeout: float,
        settings: Settings | None = None,
    ) -> None:
        if embedded and url:
            raise ValueError("give either url or embedded=True, not both")
        self.embedded = EmbeddedHandle(settings) if embedded else None
        self.url = self.embedded.url if self.embedded else resolve_url(url)
        self.ws_url = ws_url(self.url)
        self.token = (self.embedded.token if self.embedded else None) or resolve_token(
            token, self.url)
        self.timeout = timeout

    @property
    def headers(self) -> dict[str, str]:
        """Headers of every request (the token, when there is one)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def connection_error(self, exc: BaseException) -> str:
        """The one-line message for an unreachable gateway."""
        return (
            f"cannot reach the simfarm gateway at {self.url} ({exc}); "
            "start it with `simfarm up` or set SIMFARM_URL"
        )

    def close(self) -> None:
        """Stop the embedded service, if this client started one."""
        if self.embedded is not None:
            self.embedded.stop()


def ws_error(exc: BaseException) -> BaseException:
    """What a failed WebSocket open/receive means to a flow (same for both façades)."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in (401, 403):
            return api.error_for(status, api.decode_json(exc.response.body), str(exc))
        if status >= 500:  # a gateway (or its balancer) restarting or overloaded: retry
            return WsClosed(1006, f"HTTP {status} to the WebSocket handshake")
        return WsUnavailable(f"HTTP {status}")
    if isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError):
        # the connection closed before any answer: a gateway going down or coming up,
        # not one without WebSocket support (that one answers with an HTTP status)
        return WsClosed(1006, f"connection closed during the WebSocket handshake: {exc}")
    if isinstance(exc, InvalidHandshake):
        return WsUnavailable(str(exc))
    if isinstance(exc, ConnectionClosed):
        rcvd = exc.rcvd
        return WsClosed(rcvd.code if rcvd else 1006, rcvd.reason if rcvd else "")
    return WsClosed(1006, str(exc))
