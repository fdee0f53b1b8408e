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

    def record_upload(self, user: str, sha: str, size: int) -> None:
        """Count a finished upload against ``user``'s quota."""
        self.connection.zadd(self.keys.uploads(user), {sha: size})

    def uploads_of(self, user: str) -> dict[str, int]:
        """The blobs ``user`` uploaded (sha -> size), as recorded."""
        rows = self.connection.zrange(self.keys.uploads(user), 0, -1, withscores=True)
        return {r.decode(): int(score) for r, score in cast(list[tuple[bytes, float]], rows)}

    def forget_uploads(self, user: str, shas: list[str]) -> None:
        """Drop entries of blobs that are no longer stored."""
        if shas:
            self.connection.zrem(self.keys.uploads(user), *shas)
