"""The dispatcher leader lock: one dispatcher at a time, with a fencing token.

The token increases with every new leader; transitions made by the dispatcher carry it
(``JobStore.transition(fence=...)``) and the transition script checks it against the
lock inside Redis, so a paused old leader cannot dispatch after it lost the lock.
"""

from __future__ import annotations

import redis

from simfarm.common.store import scripts
from simfarm.common.store.keys import Keys


class LeaderLock:
    """Holds or tries to take the dispatcher lock (one round trip per call)."""

    def __init__(self, connection: redis.Redis, prefix: str = "simfarm:", *,
                 ttl_s: float) -> None:
        self.keys = Keys(prefix)
        self.ttl_ms = int(ttl_s * 1000)
        self.token: int | None = None
        self._take = scripts.register(connection, "leader", self.keys)
        self._release = scripts.register(connection, "leader_release", self.keys)

    @property
    def fence(self) -> int | None:
        """The fencing token to pass to store transitions, while leader."""
        return self.token

    def acquire_or_renew(self) -> bool:
        """Keep or take leadership; True while this process is the leader."""
        token = int(self._take(keys=[self.keys.dispatch_lock, self.keys.dispatch_fence],
                               args=["" if self.token is None else self.token, self.ttl_ms]))
        self.token = token or None
        return self.token is not None

    def release(self) -> None:
        """Give up leadership now."""
        if self.token is not None:
            self._release(keys=[self.keys.dispatch_lock], args=[self.token])
            self.token = None
