"""Runs the gateway under a production WSGI server: gunicorn on POSIX (gevent workers by
default: a greenlet per connection, see gevent_worker.py; or gthread), waitress on
Windows (without WebSocket support there)."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

import redis
from flask import Flask

from simfarm.common.errors import SimfarmError
from simfarm.common.redis_url import connect as redis_connect
from simfarm.common.settings import Settings, redact_url
from simfarm.gateway import ws
from simfarm.gateway.app import create_app

log = logging.getLogger(__name__)


def startup_summary(settings: Settings) -> str:
    """What the gateway says when it starts: where it listens, the Redis it uses (and
    whether it answers), how it authenticates."""
    host, port = settings.gateway_host, settings.gateway_port
    redis_url = redact_url(settings.require_redis_url())
    probe = redis_connect(settings.require_redis_url(), socket_timeout=2,
                                 socket_connect_timeout=2)
    try:
        probe.ping()
        redis_state = "answers"
    except redis.RedisError as exc:
        redis_state = f"does not answer yet ({exc})"
    finally:
        probe.close()
    tokens = len(settings.auth_tokens)
    auth = f"{tokens} token user(s)" if tokens else "no tokens (loopback only)"
    server = ("waitress, no WebSocket" if sys.platform == "win32" else
              f"{settings.gateway_processes} process(es) x {settings.gateway_threads} threads"
              if settings.gateway_worker_class == "gthread" else
              f"{settings.gateway_processes} gevent process(es) x "
              f"{settings.gateway_connections} connections")
    return (f"gateway listening on http://{host}:{port} (dashboard /, API docs /api/v1/docs; "
            f"{server}); Redis {redis_url} {redis_state}, key prefix {settings.key_prefix!r}; "
            f"auth: {auth}")


def serve(settings: Settings, app: Flask | None = None) -> None:
    """Serve the gateway on ``settings.gateway_host:gateway_port`` until stopped."""
    wsgi_app = app or create_app(settings)
    host, port = settings.gateway_host, settings.gateway_port
    log.info("%s", startup_summary(settings))
    if sys.platform == "win32":
        import waitress

        waitress.serve(wsgi_app, host=host, port=port, threads=settings.gateway_threads)
        return
    from gunicorn.app.base import BaseApplication

    gevent = settings.gateway_worker_class == "gevent" and app is None
    loaded: list[Flask] = [wsgi_app]
    if gevent:
        from simfarm.gateway.gevent_worker import GuardedGeventWorker

        GuardedGeventWorker.read_timeout_s = settings.gateway_read_timeout_s
        GuardedGeventWorker.client_connections = settings.gateway_client_connections
        _raise_open_files_limit(settings.gateway_connections + 256)

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options: dict[str, Any] = {
                "bind": f"{host}:{port}",
                # Each process has its own WebSocket hub (reading the Redis event stream) and
                # /metrics histograms; more processes use more cores for the REST API.
                "workers": settings.gateway_processes,
                "worker_class": GuardedGeventWorker if gevent else "gthread",
                "worker_connections": settings.gateway_connections,
                "threads": settings.gateway_threads,
                "timeout": 120,
                "graceful_timeout": max(1, round(settings.gateway_stop_grace_s)),
                # also the time a request's line and headers may take (gevent workers)
                "keepalive": max(1, round(settings.gateway_header_timeout_s)),
                "accesslog": None,
                "loglevel": "warning",
                "post_worker_init": _close_websockets_on_sigterm,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            if gevent:  # built again in the worker, after gevent patched threads and sockets
                loaded[0] = create_app(settings)
            return loaded[0]

    def _close_websockets_on_sigterm(worker: Any) -> None:
        # gunicorn waits up to graceful_timeout for open connections when it stops;
        # WebSockets and idle keep-alive connections never end by themselves, so close
        # them (WebSockets with 1001) as the stop begins.
        previous = signal.getsignal(signal.SIGTERM)

        def _on_sigterm(signum: int, frame: Any) -> None:
            ws.shutdown(loaded[0])
            close_idle = getattr(worker, "close_idle_connections", None)
            if callable(close_idle):
                close_idle()
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGTERM, _on_sigterm)
        signal.siginterrupt(signal.SIGTERM, False)

    _Gunicorn().run()


def _raise_open_files_limit(wanted: int) -> None:
    """Allow this many open files (each connection is one), up to the hard limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        log.info("open files limit raised from %d to %d", soft, target)


def main() -> None:
    """``python -m simfarm.gateway.server``: serve, or exit 1 with a clear message when the
    settings are unsafe or incomplete."""
    from simfarm.common.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, settings.node_name)
    try:
        serve(settings)
    except (SimfarmError, RuntimeError) as exc:
        log.error("%s", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
