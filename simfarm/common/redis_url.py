"""Redis connections from simfarm's one Redis URL: a single server, or a primary watched by
Redis Sentinel, for the job store, the WebSocket fan-out and Celery alike.

``SIMFARM_REDIS_URL`` is either an ordinary ``redis://``/``rediss://``/``unix://`` URL or

    redis+sentinel://[[user]:password@]host1:26379,host2:26379,host3:26379/mymaster[/db]
        [?sentinel_password=...]

that is, the sentinels to ask, the name of the monitored primary and the database
(default 0). The password is the data servers'; the sentinels' own, if they have one, is
``sentinel_password``. A connection from :func:`connect` asks
the sentinels for the primary whenever it (re)connects, and drops a connection to a
former primary that answers ``READONLY`` after a failover, so clients follow the new
primary by reconnecting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import redis
import redis.sentinel

SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelUrl:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def parse_sentinel_url(url: str) -> SentinelUrl | None:
    """The parts of a ``redis+sentinel://`` URL; None for any other URL. Raises
    ``ValueError`` naming what is wrong with a malformed one."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != SENTINEL_SCHEME:
        return None
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = []
    for item in (i.strip() for i in hosts.split(",")):
        if item.startswith("["):  # an IPv6 address: [::1]:26379
            host, _, port = item[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        if not host:
            raise ValueError(f"Sentinel URL {redact(url)!r}: empty host in {hosts!r}")
        try:
            sentinels.append((host, int(port) if port else DEFAULT_SENTINEL_PORT))
        except ValueError:
            raise ValueError(f"Sentinel URL {redact(url)!r}: bad port in {item!r}") from None
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise ValueError(f"Sentinel URL {redact(url)!r}: the primary's name is missing "
                         "(redis+sentinel://host:26379,.../mymaster/0)")
    try:
        db = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ValueError(f"Sentinel URL {redact(url)!r}: bad database {parts[1]!r}") from None
    options = parse_qs(query)
    return SentinelUrl(
        sentinels=tuple(sentinels), service=unquote(parts[0]), db=db, username=username,
        password=password, sentinel_password=next(iter(options.get("sentinel_password", [])), None))


def redact(url: str) -> str:
    """``url`` with its passwords replaced by ``***`` (for log lines and messages)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if sep and at and ":" in userinfo:
        rest = f"{userinfo.split(':', 1)[0]}:***@{host}"
    if "sentinel_password=" in rest:
        head, _, tail = rest.partition("sentinel_password=")
        _, amp, after = tail.partition("&")
        rest = f"{head}sentinel_password=***{amp}{after}"
    return f"{scheme}{sep}{rest}"


def connect(url: str, **options: Any) -> redis.Redis:
    """A client for ``url`` (``options``: redis-py connection options such as
    ``socket_timeout``). For a Sentinel URL, a client of the current primary."""
    parsed = parse_sentinel_url(url)
    if parsed is None:
        return redis.Redis.from_url(url, **options)
    sentinel_kwargs: dict[str, Any] = {
        k: options[k] for k in ("socket_timeout", "socket_connect_timeout") if k in options}
    if parsed.sentinel_password:
        sentinel_kwargs["password"] = parsed.sentinel_password
    # Any: redis-py types Sentinel in some releases and not in others (8.2 does)
    sentinel: Any = redis.sentinel.Sentinel
    manager = sentinel(list(parsed.sentinels), sentinel_kwargs=sentinel_kwargs)
    client: redis.Redis = manager.master_for(
        parsed.service, db=parsed.db, username=parsed.username, password=parsed.password,
        **options)
    return client


def celery_urls(url: str) -> tuple[str, dict[str, Any]]:
    """Celery's broker/backend URL for ``url`` and the transport options it needs
    (kombu's ``sentinel://h1:26379;sentinel://h2:26379/0`` with ``master_name``)."""
    parsed = parse_sentinel_url(url)
    if parsed is None:
        return url, {}
    auth = ""
    if parsed.password is not None or parsed.username:
        auth = f"{quote(parsed.username or '')}:{quote(parsed.password or '')}@"
    chunks = [f"sentinel://{auth}{host}:{port}/{parsed.db}" for host, port in parsed.sentinels]
    options: dict[str, Any] = {"master_name": parsed.service}
    if parsed.sentinel_password:
        options["sentinel_kwargs"] = {"password": parsed.sentinel_password}
    return ";".join(chunks), options
