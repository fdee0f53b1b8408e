"""The Celery broker transport: kombu's Redis transport, for which Redis refusing writes
is an outage to ride out, not an unrecoverable error.

Redis at ``maxmemory`` (``OOM``: Redis 7 refuses every command queued in a MULTI, so
kombu's acknowledgement fails) and a Redis that became a read-only replica
(``READONLY``) answer with error replies. kombu counts those as channel errors and
Celery's consumer then stops the worker ("Unrecoverable error"). Counted as connection
errors, the consumer reconnects with back-off until Redis takes writes again, while
running jobs go on (their outcomes wait in simfarm's own retry loop).
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis
from redis import exceptions

#: Error replies after which the broker is retried like a lost connection.
REFUSED_WRITES = (exceptions.OutOfMemoryError, exceptions.ReadOnlyError)


class Transport(kombu_redis.Transport):
    """``redis://`` broker transport that rides out refused writes (see module doc)."""

    connection_errors = kombu_redis.Transport.connection_errors + REFUSED_WRITES


class SentinelTransport(kombu_redis.SentinelTransport):
    """kombu's ``sentinel://`` transport (the primary asked from the sentinels at every
    connect), riding out refused writes the same way."""

    connection_errors = kombu_redis.SentinelTransport.connection_errors + REFUSED_WRITES


TRANSPORT = f"{__name__}:Transport"
SENTINEL_TRANSPORT = f"{__name__}:SentinelTransport"
