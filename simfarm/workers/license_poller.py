"""Keeps the farm's licence pools true to their FlexLM servers: run by the dispatcher
leader only, in a thread of its own (a slow or hung ``lmstat`` never delays dispatch).

Every ``license_poll_s`` it recounts what farm jobs hold from the jobs themselves
(repairing drift, with a warning), runs ``lmutil lmstat -a -c port@host`` once per
server, and publishes each pool's limit — what farm jobs may hold at once now:

* a pool without a server: its configured ``count``;
* a server that answers with the feature: ``min(count, issued - outside)``, where
  ``outside`` is what the server has in use beyond what the farm's running jobs hold,
  and never less than what its checkout lines show on hosts that are no farm node (a
  farm job that has not checked its licences out yet hides none of those);
* a server that does not answer, answers garbage or lacks the feature: its last good
  figures for ``license_grace_s``, then the configured count; both with a warning.

The transitions that place jobs draw against the published limit
(:mod:`simfarm.common.store.licenses`).
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from simfarm.common.license_pools import Checkout, LicensePool, LicenseStatus
from simfarm.common.lmstat import ServerReport, parse_lmstat
from simfarm.common.store.licenses import LicenseStore, Reconciled
from simfarm.workers.context import WorkerContext
from simfarm.workers.leader_thread import LeaderThread

log = logging.getLogger(__name__)
#: how often holdings are recounted when no server is polled
RECONCILE_S = 10.0
#: how often a worker looks whether it leads (the first tick of a term comes that soon)
LEADER_CHECK_S = 0.1
CHECKOUTS_SHOWN = 20


@dataclass
class Good:
    """A pool's figures from the last poll that had them."""

    issued: int
    in_use: int
    at: float
    checkouts: list[Checkout] = field(default_factory=list)
    #: checked out on hosts that are no farm node: outside the farm for certain
    elsewhere: int = 0


def _short(host: str) -> str:
    return host.split(".", 1)[0].lower()


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


class LicensePoller(LeaderThread):
    """Polls the servers and publishes the pools while ``is_leader()`` holds."""

    what, failure = "licence poller", "tick failed"

    def __init__(self, ctx: WorkerContext, is_leader: Callable[[], bool]) -> None:
        super().__init__("license-poller", ctx.node_name, is_leader, LEADER_CHECK_S)
        self.settings = ctx.settings
        self.pools: list[LicensePool] = list(ctx.settings.licenses)
        self.store = LicenseStore(ctx.redis, ctx.settings.key_prefix)
        self.nodes = ctx.nodes
        self._good: dict[str, Good] = {}
        self._said: dict[str, str | None] = {}
        #: short host names of the farm's nodes (checkouts there may be farm jobs')
        self.farm_hosts: set[str] = set()
        self._restored = False
        self._next_tick = 0.0

    @property
    def interval_s(self) -> float:
        """Time between two ticks."""
        return self.settings.license_poll_s or RECONCILE_S

    def start(self) -> None:
        if self.pools:
            super().start()

    def lead(self, now: float) -> None:
        if time.monotonic() < self._next_tick:
            return
        self._next_tick = time.monotonic() + self.interval_s
        self.tick(now)

    def not_leading(self) -> None:
        self._restored, self._next_tick = False, 0.0

    # ------------------------------------------------------------------ one tick
    def tick(self, now: float) -> list[LicenseStatus]:
        """Recount, poll every server once, publish every pool; returns what it published."""
        if not self._restored:
            self._restore()
        counted = self.store.reconcile()
        for name, held, recorded in counted.drift:
            log.warning("licences: pool %s was recorded as held %d times but the farm's "
                        "jobs hold %d; repaired", name, recorded, held)
        reports: dict[str, ServerReport] = {}
        if self.settings.license_poll_s > 0:
            for server in sorted({p.server for p in self.pools if p.server}):
                reports[server] = self.poll(server)
        self.farm_hosts = {_short(n.hostname) for n in self.nodes.all()} if reports else set()
        statuses = [self.status(p, reports.get(p.server) if p.server else None, counted, now)
                    for p in self.pools]
        self.store.publish(statuses)
        return statuses

    def _restore(self) -> None:
        """A new term keeps the last leader's good figures (and their age)."""
        for name, status in self.store.statuses().items():
            if status.last_good_at is not None and status.issued is not None \
                    and status.in_use is not None and name not in self._good:
                self._good[name] = Good(status.issued, status.in_use, status.last_good_at,
                                        list(status.checkouts), status.outside)
        self._restored = True

    def poll(self, server: str) -> ServerReport:
        """What ``lmutil lmstat -a -c server`` says (an error report when it fails)."""
        argv = [self.settings.license_lmutil, "lmstat", "-a", "-c", server]
        timeout = self.settings.license_poll_timeout_s
        try:
            done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                                  timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            return ServerReport(server, error=f"{argv[0]} not found (license_lmutil)")
        except subprocess.TimeoutExpired:
            return ServerReport(server, error=f"no answer within {timeout:g} s")
        except OSError as exc:
            return ServerReport(server, error=f"{argv[0]} failed: {exc}")
        return parse_lmstat(done.stdout + done.stderr, server)

    def status(self, pool: LicensePool, report: ServerReport | None, counted: Reconciled,
               now: float) -> LicenseStatus:
        """One pool's limit and status from its server's report (None: not polled)."""
        base = LicenseStatus(name=pool.name, count=pool.count, server=pool.server,
                             feature=pool.vendor_feature, limit=pool.count)
        if pool.server is None or report is None:
            quiet = "no server" if pool.server is None else "not polled (license_poll_s = 0)"
            return self._said_once(base.model_copy(update={"poll_status": quiet}))
        usage = report.features.get(pool.vendor_feature) if report.ok else None
        why: str | None = None
        good: Good | None
        if usage is not None and usage.issued is not None:
            elsewhere = sum(c.licenses for c in usage.checkouts
                            if _short(c.host) not in self.farm_hosts)
            good = self._good[pool.name] = Good(usage.issued, usage.in_use, now, [
                Checkout(user=c.user, host=c.host, licenses=c.licenses)
                for c in usage.checkouts[:CHECKOUTS_SHOWN]], elsewhere)
            source = "server"
        else:
            if not report.ok:
                why = report.error
            elif usage is None:
                why = f"{pool.vendor_feature} is not served by {pool.server}"
            else:
                why = f"{pool.vendor_feature}: {usage.error}"
            good = self._good.get(pool.name)
            fresh = good is not None and now - good.at <= self.settings.license_grace_s
            source = "last-good" if fresh else "fallback"
            if not fresh:
                good = None
        polled = base.model_copy(update={"polled_at": now, "poll_status": why or "ok",
                                         "source": source})
        if good is None:
            return self._said_once(polled.model_copy(update={"warning": (
                f"{pool.server}: {why}; the {pool.name} pool falls back to its configured "
                f"count {pool.count}")}))
        outside = max(good.elsewhere, good.in_use - counted.running.get(pool.name, 0), 0)
        warning = None
        if source == "last-good":
            warning = (f"{pool.server}: {why}; the {pool.name} pool keeps the figures of "
                       f"{_clock(good.at)} for up to {self.settings.license_grace_s:g} s")
        elif good.issued < pool.count:
            warning = (f"{pool.server} issues {good.issued} {pool.vendor_feature}, fewer than "
                       f"the pool's configured {pool.count}")
        return self._said_once(polled.model_copy(update={
            "limit": max(0, min(pool.count, good.issued - outside)), "outside": outside,
            "issued": good.issued, "in_use": good.in_use, "last_good_at": good.at,
            "warning": warning, "checkouts": good.checkouts}))

    def _said_once(self, status: LicenseStatus) -> LicenseStatus:
        """Log a pool's warning when it changes (not at every poll)."""
        said = status.warning.split("; ", 1)[-1] if status.warning else None
        if said != self._said.get(status.name, None):
            if status.warning:
                log.warning("licences: %s", status.warning)
            elif status.name in self._said:
                log.info("licences: %s on %s answers again (limit %d)", status.name,
                         status.server or "no server", status.limit)
            self._said[status.name] = said
        return status
