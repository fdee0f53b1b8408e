"""Fair share: how far each account, and each user inside it, is below or above its
share of the farm (HTCondor's user priorities, SLURM's classic fair-share factor).

Usage is core-seconds plus licence-seconds of the farm's pools, decaying with a
half-life (``fairshare_half_life_s``, one day by default): what was used a day ago
counts half. Shares come from the accounts (``shares``, and ``user_shares`` inside an
account, default 1 each). For an account ``a`` and a user ``u`` in it:

* the account's share ``S_a`` is its shares over the shares of every account, the
  user's share inside it ``S_u|a`` is their shares over those of the account's users
  that have used the farm or wait for it, and their share of the farm is
  ``S = S_a * S_u|a``;
* ``U`` is the user's decayed usage in the account over everyone's;
* the **factor** is ``F = 2 ** (-U / S)``: 1 for no usage, 0.5 at exactly the share,
  towards 0 far above it.

The dispatcher ranks jobs with ``F`` (docs/scheduling.md), the gateway reports it
(``GET /api/v1/fairshare``); both compute it here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from simfarm.common.accounts import Account

#: an account and a user in it
Who = tuple[str, str]
LN2 = math.log(2.0)


def decayed(value: float, dt: float, half_life_s: float) -> float:
    """``value`` after ``dt`` seconds of decay."""
    if dt <= 0 or value == 0:
        return value
    return value * math.exp2(-dt / half_life_s)


def accrued(value: float, rate: float, dt: float, half_life_s: float) -> float:
    """``value`` after ``dt`` seconds of decay while ``rate`` units per second were
    added (exact: the integral of the decaying rate)."""
    if dt <= 0:
        return value
    x = -dt / half_life_s * LN2  # ln of what is kept
    return value * math.exp(x) - rate * half_life_s / LN2 * math.expm1(x)


class Standing(NamedTuple):
    """Where one account (``user`` None) or one user inside it stands (a named tuple: the
    dispatcher makes ten of these every few seconds, and a tuple is made fastest)."""

    account: str
    user: str | None
    #: configured shares (relative)
    shares: float
    #: its share of the farm, 0..1 (a user's: of the farm, not of the account)
    share: float
    #: decayed usage, core-seconds
    usage: float
    #: its usage over everyone's, 0..1
    used: float
    #: the fair-share factor, 0..1 (1: unused; 0.5: at its share)
    factor: float

    def over_text(self) -> str | None:
        """"account cfd is over its share: 61 % used vs 25 % share" (None when not over)."""
        if self.used <= self.share:
            return None
        if self.user is None:
            return (f"account {self.account} is over its share: {self.used:.0%} used vs "
                    f"{self.share:.0%} share").replace("%", " %")
        return (f"user {self.user} is over their share: {self.used:.0%} used vs "
                f"{self.share:.0%} share (in account {self.account})").replace("%", " %")


def factor(used: float, share: float) -> float:
    """``2 ** (-used / share)``."""
    if used <= 0:
        return 1.0
    if share <= 0:
        return 0.0
    return math.exp2(-used / share)


def standings(accounts: Sequence[Account], usage: Mapping[Who, float],
              active: Iterable[Who] = ()) -> tuple[dict[str, Standing], dict[Who, Standing]]:
    """The standing of every account, and of every user with usage or in ``active``
    (users with jobs waiting or running): ``(by account, by (account, user))``. An
    account not configured any more counts with 1 share."""
    configured = {a.name: a for a in accounts}
    users: dict[str, set[str]] = {}
    for who in [*usage, *active]:
        users.setdefault(who[0], set()).add(who[1])
    names = list(configured) + sorted(a for a in users if a not in configured)
    shares = {a: configured[a].shares if a in configured else 1.0 for a in names}
    total_shares = sum(shares.values()) or 1.0
    total = sum(usage.values())
    by_account: dict[str, Standing] = {}
    by_user: dict[Who, Standing] = {}
    for name in names:
        share = shares[name] / total_shares
        account = configured.get(name)
        members = sorted(users.get(name, ()))
        mine = {u: usage.get((name, u), 0.0) for u in members}
        spent = sum(mine.values())
        used = spent / total if total > 0 else 0.0
        by_account[name] = Standing(name, None, shares[name], share, spent, used,
                                    factor(used, share))
        user_shares = {u: account.share_of(u) if account else 1.0 for u in members}
        inside = sum(user_shares.values()) or 1.0
        for user in members:
            s = share * user_shares[user] / inside
            u_used = mine[user] / total if total > 0 else 0.0
            by_user[(name, user)] = Standing(name, user, user_shares[user], s, mine[user],
                                             u_used, factor(u_used, s))
    return by_account, by_user
