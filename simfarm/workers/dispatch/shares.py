"""Who the jobs belong to, for the policy: fair share and the running limits.

Every pending and running job belongs to a :class:`Bucket`, an account and a user in it.
A bucket keeps the decayed usage of its jobs (core-seconds plus licence-seconds of the
farm's pools, accrued exactly from the rate of what it runs, each round and when a job
ends) and its fair-share **offset**: ``fairshare_s`` times its factor
(:mod:`simfarm.common.fairshare`), in steps of ``1 / FACTOR_STEPS`` of the factor. A
job's rank is its own order key moved earlier by its bucket's offset, so between
buckets the one furthest below its share goes first, and inside one the jobs keep
their order. When a bucket's offset changes, only its classes (and the reservations
they hold) are re-ranked: a round costs what changed, not the queue.

A :class:`Tally` counts what one user, or one account, runs now (jobs, cores, pool
licences) against its limits (:mod:`simfarm.common.user_limits`); a class whose next
job would break one is *parked* on the tally and woken when one of its jobs ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from simfarm.common.accounts import Account
from simfarm.common.fairshare import Who, accrued, decayed, standings
from simfarm.common.user_limits import NO_LIMITS, Limits, LimitSet, over_running
from simfarm.workers.dispatch.classes import JobClass

#: the factor's resolution in the rank (a bucket is re-ranked when it moves a step)
FACTOR_STEPS = 200
#: factors are computed again at least this often (seconds) while jobs run, and at
#: once when a bucket starts or stops waiting
REFRESH_S = 10.0


class Tally:
    """What one user or one account runs now, its limits, and the classes waiting for
    room under them."""

    __slots__ = ("cores", "kind", "licenses", "limits", "name", "parked", "running")

    def __init__(self, kind: str, name: str, limits: LimitSet) -> None:
        self.kind, self.name, self.limits = kind, name, limits
        self.running = 0
        self.cores = 0
        self.licenses: dict[str, int] = {}
        self.parked: dict[int, JobClass] = {}

    def add(self, cores: int, licenses: Mapping[str, int], sign: int) -> None:
        """Count one job more (``sign`` 1) or less (-1)."""
        self.running += sign
        self.cores += sign * cores
        for name, n in licenses.items():
            self.licenses[name] = self.licenses.get(name, 0) + sign * n

    def over(self, cls: JobClass) -> str | None:
        """Why one more job of ``cls`` would break a limit, in words, or None."""
        if not self.limits.running_limited:
            return None
        limit = over_running(self.limits, self.running, self.cores, self.licenses, cls.c,
                             cls.pool)
        if limit is None:
            return None
        if self.kind == "user":
            return f"user {self.name} is at their limit of {limit}"
        return f"account {self.name} is at its limit of {limit}"


class Bucket:
    """An account and a user in it: their usage, fair-share offset and classes."""

    __slots__ = ("account", "classes", "offset", "over", "pending", "rate", "tallies",
                 "usage", "user")

    def __init__(self, account: str, user: str, tallies: tuple[Tally, Tally]) -> None:
        self.account, self.user = account, user
        self.tallies = tallies
        self.classes: dict[int, JobClass] = {}
        #: decayed usage (unit-seconds) and what it runs now (units per second)
        self.usage = 0.0
        self.rate = 0.0
        self.offset = 0.0
        #: pending jobs
        self.pending = 0
        #: "account cfd is over its share: ..." while it is and others wait too
        self.over: str | None = None

    @property
    def who(self) -> Who:
        return self.account, self.user

    def limited(self, cls: JobClass) -> tuple[Tally, str] | None:
        """The tally whose limit one more job of ``cls`` would break, and why."""
        for tally in self.tallies:
            why = tally.over(cls)
            if why is not None:
                return tally, why
        return None


class ShareBook:
    """Every bucket and tally, the usage clock, and the fair-share offsets."""

    def __init__(self, accounts: tuple[Account, ...], limits: Limits | None,
                 weight_s: float, half_life_s: float,
                 rekey: Callable[[Bucket, float], None]) -> None:
        self.accounts = accounts
        self.limits = limits or Limits()
        self.weight_s = weight_s
        self.half_life_s = half_life_s
        self._rekey = rekey
        self.buckets: dict[Who, Bucket] = {}
        self._tallies: dict[tuple[str, str], Tally] = {}
        #: the time usage was last brought up to (None: before the first round)
        self.clock: float | None = None
        #: a bucket came or went, or started or stopped waiting: re-rank next round
        self._dirty = True
        self._next_refresh = 0.0

    # ------------------------------------------------------------------ buckets
    def bucket(self, account: str, user: str) -> Bucket:
        """The bucket of ``(account, user)``, made on first use."""
        found = self.buckets.get((account, user))
        if found is None:
            found = Bucket(account, user, (self._tally("user", user),
                                           self._tally("account", account)))
            self.buckets[(account, user)] = found
            self._dirty = True
        return found

    def _tally(self, kind: str, name: str) -> Tally:
        found = self._tallies.get((kind, name))
        if found is None:
            limits = (self.limits.of_user(name) if kind == "user" else
                      self.limits.of_account(name)) if name else NO_LIMITS
            found = self._tallies[(kind, name)] = Tally(kind, name, limits)
        return found

    def tallies(self) -> list[Tally]:
        """Every tally (for tests and the report)."""
        return list(self._tallies.values())

    # ------------------------------------------------------------------ usage
    def load(self, at: float, usage: Mapping[Who, float]) -> None:
        """Start from stored usage counted up to ``at`` (a new leader's term)."""
        self.clock = at
        for (account, user), value in usage.items():
            self.bucket(account, user).usage = value
        self._dirty = True

    def usage(self) -> dict[Who, float]:
        """Every bucket's decayed usage as of :attr:`clock`."""
        return {b.who: b.usage for b in self.buckets.values() if b.usage > 0}

    def busy(self) -> bool:
        """Whether any job is being charged now."""
        return any(b.rate for b in self.buckets.values())

    def charge(self, bucket: Bucket, units: float, sign: int, since: float | None = None) -> None:
        """A job of ``units`` per second starts (``sign`` 1) or ends (-1) being counted
        from the usage clock on. A job found running that started after the clock
        (between the stored usage's time and a new leader's first round) is not charged
        for the time before it started."""
        if not units:
            return
        bucket.rate += sign * units
        if sign > 0 and since is not None and self.clock is not None and since > self.clock:
            bucket.usage -= units * (since - self.clock)

    def settle(self, at: float) -> None:
        """Bring usage up to ``at`` before a job ends there (no re-ranking)."""
        if self.clock is not None and at > self.clock:
            self._accrue(at)

    def advance(self, now: float) -> None:
        """Bring every bucket's usage up to ``now``; re-rank the buckets whose fair-share
        offset moved a step."""
        if self.clock is None:
            self.clock = now
        self._accrue(now)
        if len(self.buckets) < 2:
            return  # one user ranks as before: offsets matter once a second one comes
        if self._dirty or now >= self._next_refresh:
            self._dirty = False
            self._next_refresh = now + REFRESH_S
            self._refresh()

    def _accrue(self, now: float) -> None:
        assert self.clock is not None
        dt = now - self.clock
        if dt > 0:
            half = self.half_life_s
            for b in self.buckets.values():
                if b.rate:
                    b.usage = accrued(b.usage, b.rate, dt, half)
                elif b.usage:
                    b.usage = decayed(b.usage, dt, half)
            self.clock = now

    def _refresh(self) -> None:
        """The factors from the usage; re-rank the buckets whose offset moved."""
        waiting = [b for b in self.buckets.values() if b.pending]
        active = [b.who for b in self.buckets.values() if b.pending or b.rate]
        accounts, users = standings(self.accounts, self.usage(), active)
        contended = len(waiting) > 1
        for b in self.buckets.values():
            user = users.get(b.who)
            if user is None:
                continue
            offset = round(user.factor * FACTOR_STEPS) * self.weight_s / FACTOR_STEPS
            over = None
            if contended:
                over = accounts[b.account].over_text() or user.over_text()
            if offset != b.offset or over != b.over:
                old, b.offset, b.over = b.offset, offset, over
                self._rekey(b, old)

    def pending_changed(self, bucket: Bucket, delta: int) -> None:
        """A job of ``bucket`` joined (1) or left (-1) the queue."""
        before = bucket.pending
        bucket.pending += delta
        if (before == 0) != (bucket.pending == 0):
            self._dirty = True
