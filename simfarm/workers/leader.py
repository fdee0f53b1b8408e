"""Leader election for the dispatcher: a Redis lock with a TTL and a fencing token.

The token increases with every new leader; transitions made by the dispatcher check it
inside Redis, so a paused old leader cannot dispatch after it lost the lock.
"""

from __future__ import annotations

import redis

from simfarm.common.store.keys import Keys

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaderLock:
    """Holds or tries to take the dispatcher lock."""

    def __init__(self, connection: redis.Redis, keys: Keys, ttl_s: float) -> None:
        self.connection = connection
        self.keys = keys
        self.ttl_ms = int(ttl_s * 1000)
        self.token: int | None = None
        self._renew = connection.register_script(_RENEW)
        self._release = connection.register_script(_RELEASE)

    @property
    def fence(self) -> tuple[str, int] | None:
        """``(lock key, token)`` to check inside store transitions, while leader."""
        return (self.keys.dispatch_lock, self.token) if self.token is not None else None

    def acquire_or_renew(self) -> bool:
        """Keep or take leadership; True while this process is the leader."""
        if self.token is not None:
            if self._renew(keys=[self.keys.dispatch_lock], args=[self.token, self.ttl_ms]):
                return True
            self.token = None
        token = int(self.connection.incr(self.keys.dispatch_fence))
        if self.connection.set(self.keys.dispatch_lock, token, nx=True, px=self.ttl_ms):
            self.token = token
            return True
        return False

    def release(self) -> None:
        """Give up leadership now."""
        if self.token is not None:
            self._release(keys=[self.keys.dispatch_lock], args=[self.token])
            self.token = None
