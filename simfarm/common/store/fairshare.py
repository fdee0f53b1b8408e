"""The fair-share usage the dispatcher leader keeps (``P fairshare``): every account's
and user's decayed usage and the time it was counted up to, so a new leader goes on
from there and the gateway can report it (:mod:`simfarm.common.fairshare`)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import redis

from simfarm.common.fairshare import Who
from simfarm.common.store.keys import Keys


class FairShareStore:
    """Reads and writes the stored usage: one small JSON value."""

    def __init__(self, connection: redis.Redis, prefix: str = "simfarm:") -> None:
        self.connection = connection
        self.keys = Keys(prefix)

    def save(self, at: float, usage: Mapping[Who, float]) -> None:
        """Store the usage counted up to ``at``."""
        rows = [[account, user, round(value, 3)] for (account, user), value in
                sorted(usage.items()) if value > 0]
        self.connection.set(self.keys.fairshare,
                            json.dumps({"at": at, "usage": rows}, separators=(",", ":")))

    def load(self) -> tuple[float | None, dict[Who, float]]:
        """``(counted up to, usage by (account, user))``; ``(None, {})`` before any."""
        raw = self.connection.get(self.keys.fairshare)
        if not raw:
            return None, {}
        data = json.loads(raw)
        return float(data["at"]), {(str(a), str(u)): float(v) for a, u, v in data["usage"]}
