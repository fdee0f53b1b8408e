"""What the Redis server says about itself: whether it takes writes now.

Redis answers reads but refuses writes when it is at ``maxmemory`` (with a policy that
cannot evict simfarm's keys), when it cannot persist (a failed AOF write or snapshot:
``MISCONF``), or when it is a read-only replica (after a failover, before clients moved to
the new primary). Health reports those as ``degraded``.
"""

from __future__ import annotations

from typing import Any

import redis

EVICTING = ("allkeys-lru", "allkeys-lfu", "allkeys-random")


def write_refusal(client: redis.Redis) -> str | None:
    """Why Redis refuses writes now, or None when it takes them (one ``INFO`` call;
    raises the client's error when Redis does not answer)."""
    info: dict[str, Any] = client.info("memory", "persistence", "replication")
    used = int(info.get("used_memory", 0))
    limit = int(info.get("maxmemory", 0))
    if limit and used >= limit and info.get("maxmemory_policy") not in EVICTING:
        return (f"out of memory: {used / 2**20:.1f} MiB used of maxmemory "
                f"{limit / 2**20:.1f} MiB; writes are refused until memory is freed")
    if info.get("aof_last_write_status", "ok") != "ok":
        return "cannot persist: the last append-only file write failed (disk full?)"
    if info.get("rdb_last_bgsave_status", "ok") != "ok":
        return "cannot persist: the last snapshot failed (disk full?)"
    if info.get("role") not in (None, "master"):
        return "read-only replica: writes go to the primary"
    return None
