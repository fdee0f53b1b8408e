"""When each blob of the gateway's blob store was last used, for the retention sweep."""

from __future__ import annotations

import time
from typing import cast

import redis

from simfarm.common.store.keys import Keys


class BlobIndex:
    """Last-use times of blobs (uploaded, named by a submitted job, or downloaded)."""

    def __init__(self, connection: redis.Redis, prefix: str = "simfarm:") -> None:
        self.connection = connection
        self.keys = Keys(prefix)

    def touch(self, sha: str) -> None:
        """Record a use of a blob now."""
        self.connection.zadd(self.keys.blobs, {sha: time.time()})

    def unused_since(self, before: float, limit: int = 1000) -> list[str]:
        """Blobs not used since ``before`` (oldest first)."""
        rows = self.connection.zrangebyscore(self.keys.blobs, "-inf", before, start=0, num=limit)
        return [r.decode() for r in cast(list[bytes], rows)]

    def forget(self, sha: str) -> None:
        """Drop a deleted blob from the index."""
        self.connection.zrem(self.keys.blobs, sha)
