"""What the stores whose Lua scripts append job events share: the connection, the key
map and the caps of the per-job and global event streams."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

import redis

from simfarm.common.store.keys import Keys

if TYPE_CHECKING:
    from simfarm.common.settings import Settings


class StreamingStore:
    """Base of :class:`~.jobs.JobStore` and :class:`~.gates.GateStore`."""

    def __init__(
        self,
        connection: redis.Redis,
        prefix: str = "simfarm:",
        *,
        events_per_job: int = 10_000,
        events_global: int = 200_000,
    ) -> None:
        self.connection = connection
        self.keys = Keys(prefix)
        self.events_per_job = events_per_job
        self.events_global = events_global
        self._register_scripts(connection)

    def _register_scripts(self, connection: redis.Redis) -> None:
        """Load the store's Lua scripts (subclasses)."""

    @classmethod
    def for_settings(cls, connection: redis.Redis, settings: Settings) -> Self:
        """A store with the key prefix and stream caps of ``settings``."""
        return cls(connection, settings.key_prefix, events_per_job=settings.events_per_job,
                   events_global=settings.events_global)

    @classmethod
    def sharing(cls, other: StreamingStore) -> Self:
        """A store on the same connection, prefix and stream caps as ``other``."""
        return cls(other.connection, other.keys.prefix, events_per_job=other.events_per_job,
                   events_global=other.events_global)
