"""The Celery broker transport: kombu's Redis transport, for which Redis refusing writes
is an outage to ride out, not an unrecoverable error.

Redis at ``maxmemory`` (``OOM``: Redis 7 refuses every command queued in a MULTI, so
kombu's acknowledgement fails) and a Redis that became a read-only replica
(``READONLY``) answer with error replies. kombu counts those as channel errors and
Celery's consumer then stops the worker ("Unrecoverable error"). Counted as connection
errors, the consumer reconnects with back-off until Redis takes writes again, while
running jobs go on (their outcomes wait in simfarm's own retry loop).

A channel left behind by a reconnect must not stop the worker either. When the
consumer reconnects (a failover, a restarted Redis) kombu releases the old connection:
its transport's ``client`` becomes None, and a closed channel's ``connection`` too. Two
things still reach such a channel and raised ``AttributeError`` building a Redis client
from it, which Celery's consumer treats as unrecoverable: closing it (kombu hands its
unacknowledged messages back to the queue) and acknowledging a message it delivered
whose task ended after the reconnect. Seen in the soak with Redis failing over under
three busy workers: each worker stopped within two failovers. On such a channel both
are skipped: its messages stay in kombu's unacked index and come back after the
visibility timeout, and simfarm's attempt fencing makes such a late copy do nothing
(the attempt it names was claimed and recorded already).

A node's queue is read without acknowledgements (``no_ack``, see ``worker_app`` in
:mod:`simfarm.workers.main`); Celery acknowledges its messages all the same, and the
channel skips those acknowledgements (there is nothing to remove from the unacked index).
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from redis import exceptions

log = logging.getLogger(__name__)

#: Error replies after which the broker is retried like a lost connection.
REFUSED_WRITES = (exceptions.OutOfMemoryError, exceptions.ReadOnlyError)


class _ClosesAfterRelease:
    """Channel mixin: a channel whose connection was released by a reconnect skips the
    hand back of unacknowledged messages at close and the acknowledgements of messages
    it delivered, instead of failing (see module doc)."""

    connection: Any
    do_restore: bool
    qos: Any

    def _released(self) -> bool:
        return getattr(self.connection, "client", None) is None

    def close(self) -> None:
        if self._released():
            self.do_restore = False
        try:
            super().close()  # type: ignore[misc]
        except AttributeError as exc:  # released while closing (another thread's reconnect)
            log.info("broker: a channel released by a reconnect closed without handing "
                     "back its messages (%s); they come back after the visibility timeout",
                     exc)

    def _unacknowledged(self, delivery_tag: Any) -> bool:
        """Whether the message was delivered for acknowledgement (not from a queue read
        with ``no_ack``, as a node's queue is: Celery acknowledges those too)."""
        return delivery_tag in self.qos._delivered

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        if not multiple and not self._unacknowledged(delivery_tag):
            return
        try:
            if not self._released():
                super().basic_ack(delivery_tag, multiple)  # type: ignore[misc]
                return
        except AttributeError:  # released meanwhile
            pass
        log.info("broker: message %s was delivered before a reconnect; it comes back after "
                 "the visibility timeout and its stale attempt does nothing", delivery_tag)

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        if self._released() or not self._unacknowledged(delivery_tag):
            return
        super().basic_reject(delivery_tag, requeue)  # type: ignore[misc]


class Channel(_ClosesAfterRelease, kombu_redis.Channel):
    """kombu's Redis channel, closing safely after a reconnect."""


class SentinelChannel(_ClosesAfterRelease, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel, closing safely after a reconnect."""


class Transport(kombu_redis.Transport):
    """``redis://`` broker transport that rides out refused writes (see module doc)."""

    Channel = Channel
    connection_errors = kombu_redis.Transport.connection_errors + REFUSED_WRITES


class SentinelTransport(kombu_redis.SentinelTransport):
    """kombu's ``sentinel://`` transport (the primary asked from the sentinels at every
    connect), riding out refused writes the same way."""

    Channel = SentinelChannel
    connection_errors = kombu_redis.SentinelTransport.connection_errors + REFUSED_WRITES


TRANSPORT = f"{__name__}:Transport"
SENTINEL_TRANSPORT = f"{__name__}:SentinelTransport"


def install() -> None:
    """Make kombu take these transports for ``redis://`` and ``sentinel://`` URLs
    everywhere. ``broker_transport`` alone is not enough: a reconnect that moves on to
    the next URL of a ``;`` list (every sentinel is one) parses that URL again and takes
    the transport its scheme names, so after the first failover the worker ran on
    kombu's own transports, without the fixes above."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES["redis"] = TRANSPORT
    TRANSPORT_ALIASES["sentinel"] = SENTINEL_TRANSPORT
