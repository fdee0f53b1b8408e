"""The usage roll-ups: one hash per UTC day and dimension, written only by the Lua that
ends an attempt (``record_usage`` in ``lua/lib.lua``), read here for reports and trimmed
by the retention sweep (:mod:`simfarm.common.usage` has the models and arithmetic)."""

from __future__ import annotations

import logging
from typing import cast

import redis

from simfarm.common.store.keys import Keys
from simfarm.common.usage import DayRow, Dimension

log = logging.getLogger(__name__)

#: every dimension a roll-up is kept by; ``<dim>.user``: a user's own rows of ``<dim>``
STORED = ("user", "account", "node", "account.user", "node.user")


def _parse(day: int, raw: dict[bytes, bytes], user: str | None) -> list[DayRow]:
    """A roll-up hash (``<row>|<metric>`` -> number) as rows; with ``user``, a crossed
    dimension's rows of that user only, named by their first part."""
    rows: dict[str, dict[str, float]] = {}
    for field, value in raw.items():
        row, _, metric = field.decode().rpartition("|")
        if user is not None:
            row, _, owner = row.rpartition("|")
            if owner != user:
                continue
        rows.setdefault(row, {})[metric] = float(value)
    return [DayRow(day, name, metrics) for name, metrics in rows.items()]


class UsageStore:
    """Reads and trims the per-day usage roll-ups."""

    def __init__(self, connection: redis.Redis, prefix: str = "simfarm:") -> None:
        self.connection = connection
        self.keys = Keys(prefix)

    def days(self, first: int, last: int) -> list[int]:
        """The day numbers in ``[first, last]`` that have roll-ups, oldest first."""
        raw = self.connection.zrangebyscore(self.keys.usage_days, first, last)
        return [int(d) for d in cast(list[bytes], raw)]

    def rows(self, by: Dimension, first: int, last: int,
             user: str | None = None) -> list[DayRow]:
        """The day rows by ``by`` over days ``[first, last]``: every row, or with ``user``
        only that user's usage (by user: their row; by account or node: theirs in each).
        One round trip per call; reads one hash per day that has usage."""
        days = self.days(first, last)
        crossed = user is not None and by != "user"
        dim = f"{by}.user" if crossed else by
        pipe = self.connection.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(self.keys.usage_day(day, dim))
        found: list[DayRow] = []
        for day, raw in zip(days, pipe.execute(), strict=True):
            rows = _parse(day, cast(dict[bytes, bytes], raw), user if crossed else None)
            found.extend(r for r in rows if crossed or user is None or r.name == user)
        return found

    def forget_before(self, day: int) -> int:
        """Delete the roll-ups of days before ``day`` (the retention sweep); returns how
        many days went."""
        old = self.days(-(2**31), day - 1)
        if not old:
            return 0
        pipe = self.connection.pipeline(transaction=False)
        for d in old:
            pipe.delete(*(self.keys.usage_day(d, dim) for dim in STORED))
        pipe.zremrangebyscore(self.keys.usage_days, "-inf", day - 1)
        pipe.execute()
        log.info("usage: roll-ups of %d days before day %d forgotten", len(old), day)
        return len(old)
