"""Acknowledge a write only once Redis replicas have it (``WAIT``).

Redis replicates asynchronously: a primary that dies right after answering may take the
last writes with it, and the replica that takes over never had them. A job accepted in
that window would be lost. :meth:`ReplicationBarrier.wait` makes one small write of its
own and ``WAIT``\\ s on the same connection for ``replicas`` replicas to confirm it;
replication is in order, so a confirmed barrier means every earlier write - the job just
stored, on whatever connection - is on those replicas too, and Sentinel promotes the
most advanced replica.
"""

from __future__ import annotations

import redis

from simfarm.common.errors import NotReplicated
from simfarm.common.store.keys import Keys


class ReplicationBarrier:
    """``WAIT`` for ``replicas`` replicas after the writes made so far (0: no wait)."""

    def __init__(self, connection: redis.Redis, keys: Keys, replicas: int,
                 timeout_ms: int) -> None:
        self.connection = connection
        self.key = keys.replicated
        self.replicas = replicas
        self.timeout_ms = timeout_ms

    def wait(self) -> None:
        """Return once enough replicas have every write made before this call; raise
        :class:`~simfarm.common.errors.NotReplicated` after ``timeout_ms`` otherwise."""
        if self.replicas <= 0:
            return
        pipe = self.connection.pipeline(transaction=False)  # one connection: WAIT's scope
        pipe.incr(self.key)
        pipe.wait(self.replicas, self.timeout_ms)
        confirmed = int(pipe.execute()[1])
        if confirmed < self.replicas:
            raise NotReplicated(self.replicas, confirmed, self.timeout_ms)
