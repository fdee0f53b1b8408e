"""Tunables of the placement policy."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from simfarm.common.accounts import Account
from simfarm.common.user_limits import Limits


class BackfillMode(StrEnum):
    """How jobs may start ahead of a blocked higher-priority job.

    ``reservation``: only if that cannot delay the blocked job's reservation (default).
    ``none``: never; dispatch stops at the first job that cannot start (strict order).
    ``greedy``: any job that fits starts (first-fit; large jobs can starve). Baselines only.
    """

    RESERVATION = "reservation"
    NONE = "none"
    GREEDY = "greedy"


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Settings of :class:`~simfarm.workers.dispatch.policy.Scheduler`."""

    backfill: BackfillMode = BackfillMode.RESERVATION
    #: at most this many blocked jobs hold a reservation at once: the best-ranked ones
    max_reservations: int = 16
    #: how many of the first jobs of each request shape hold a reservation
    reservations_per_shape: int = 1
    #: planning estimate for how long a running job without a time limit still runs
    unlimited_runtime_s: float = 4 * 3600.0
    #: when a running job outlives its planned end, assume it ends this much later
    overrun_grace_s: float = 60.0
    #: aging: seconds of waiting worth one priority level (None = strict priority order)
    aging_s_per_priority: float | None = 3600.0
    #: job-size credit (with aging only): seconds of waiting each requested core is worth
    size_credit_s_per_core: float = 450.0
    #: fair share: seconds of waiting a factor of 1 is worth (0: no fair share)
    fairshare_s: float = 86400.0
    #: fair share: usage counts half after this long
    half_life_s: float = 86400.0
    #: the accounts and their shares (none: every account has one share)
    accounts: tuple[Account, ...] = ()
    #: running limits of users and accounts (None: none)
    limits: Limits | None = None
