"""The usage roll-ups: one hash per UTC day with a row for each account's and each node's
users, written only by the Lua that ends an attempt (``record_usage`` in
``lua/lib.lua``), read here for reports (by user, account or node: their rows added up)
and trimmed by the retention sweep (:mod:`simfarm.common.usage` has the models and
arithmetic)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import cast

import redis

from simfarm.common.store.keys import Keys
from simfarm.common.usage import DayRow, Dimension

log = logging.getLogger(__name__)

#: the rows kept: each account's and each node's users (``<dim>|<first>|<user>``); a
#: report by user, account or node adds up the rows of one of them
STORED = ("account.user", "node.user")
#: roll-ups of the first version of usage accounting (by user, account, node as well):
#: no longer written, deleted by the retention sweep with the others
_FORMER = ("user", "account", "node")


def _day_rows(raw: dict[bytes, bytes], dim: str) -> Iterator[tuple[str, str, str, float]]:
    """(first, user, metric, value) of a day's roll-up (``<dim>|<first>|<user>`` -> JSON
    map of metrics), the rows of ``dim`` only."""
    for field, value in raw.items():
        kind, _, row = field.decode().partition("|")
        if kind != dim:
            continue
        first, _, owner = row.rpartition("|")
        for metric, number in json.loads(value).items():
            yield first, owner, metric, float(number)


def _former_rows(raw: dict[bytes, bytes]) -> Iterator[tuple[str, str, str, float]]:
    """The same of a day's roll-up as written before 2026-12 (``<first>|<user>|<metric>``
    -> number, one hash per dimension)."""
    for field, value in raw.items():
        row, _, metric = field.decode().rpartition("|")
        first, _, owner = row.rpartition("|")
        yield first, owner, metric, float(value)


def _add_up(day: int, found: Iterable[tuple[str, str, str, float]], by: Dimension,
            user: str | None) -> list[DayRow]:
    """Rows by ``by`` (the first part, or the user), added up; with ``user``, that user's
    usage only."""
    rows: dict[str, dict[str, float]] = {}
    for first, owner, metric, value in found:
        if user is not None and owner != user:
            continue
        metrics = rows.setdefault(owner if by == "user" else first, {})
        metrics[metric] = metrics.get(metric, 0.0) + value
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
        One round trip per call; reads one hash per day that has usage (and the day's
        roll-up of the former layout, if any)."""
        days = self.days(first, last)
        dim = "node.user" if by == "node" else "account.user"
        pipe = self.connection.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(self.keys.usage_rollup(day))
            pipe.hgetall(self.keys.usage_day(day, dim))
        replies = cast(list[dict[bytes, bytes]], pipe.execute())
        found: list[DayRow] = []
        for i, day in enumerate(days):
            rows = [*_day_rows(replies[2 * i], dim), *_former_rows(replies[2 * i + 1])]
            found.extend(_add_up(day, rows, by, user))
        return found

    def forget_before(self, day: int) -> int:
        """Delete the roll-ups of days before ``day`` (the retention sweep); returns how
        many days went."""
        old = self.days(-(2**31), day - 1)
        if not old:
            return 0
        pipe = self.connection.pipeline(transaction=False)
        for d in old:
            pipe.delete(self.keys.usage_rollup(d),
                        *(self.keys.usage_day(d, dim) for dim in (*STORED, *_FORMER)))
        pipe.zremrangebyscore(self.keys.usage_days, "-inf", day - 1)
        pipe.execute()
        log.info("usage: roll-ups of %d days before day %d forgotten", len(old), day)
        return len(old)
