"""Limits of users and accounts (not of nodes: :mod:`simfarm.common.limits`): what one
user or one account may hold at once: running jobs, cores, pending jobs,
licences (SLURM's MaxJobsPerUser, MaxTRESPerUser, MaxSubmitJobsPerUser).

Configured as ``[limits]`` in simfarm.toml (or ``SIMFARM_LIMITS`` as JSON)::

    [limits.default]            # every user without an entry of their own
    max_running_jobs = 50
    max_pending_jobs = 5000

    [limits.users.alice]        # replaces the default for alice
    max_cores = 64

    [limits.accounts.cfd]       # the account's jobs together, whoever submits them
    max_cores = 128
    max_licenses = {anshpc = 64}

A field left out (or null) is no limit. The pending limit counts a user's (an
account's) jobs that have not started yet (pending and held) and is checked at submit
(HTTP 429 naming the limit, :mod:`simfarm.gateway.admission`); the others are checked by
the dispatcher before it starts a job: a job over one waits with a reason saying which,
holds no reservation, and lets every other job past (docs/scheduling.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field


class LimitSet(BaseModel):
    """The limits of one user or account (None: no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_running_jobs: int | None = Field(
        default=None, ge=0, description="jobs scheduled or running at once")
    max_cores: int | None = Field(default=None, ge=0, description="cores in use at once")
    max_pending_jobs: int | None = Field(
        default=None, ge=0, description="jobs not started yet (pending or held); more are "
        "refused at submit with HTTP 429")
    max_licenses: dict[str, int] = Field(
        default_factory=dict, description="licences of the farm's pools in use at once, "
        "by pool")

    @property
    def running_limited(self) -> bool:
        """Whether any limit the dispatcher checks is set."""
        return (self.max_running_jobs is not None or self.max_cores is not None
                or bool(self.max_licenses))


NO_LIMITS = LimitSet()


class Limits(BaseModel):
    """Every configured limit: per user, per account, and the users' default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: LimitSet = Field(default=NO_LIMITS,
                              description="limits of every user without an entry in `users`")
    users: dict[str, LimitSet] = Field(default_factory=dict,
                                       description="limits of named users (replace the default)")
    accounts: dict[str, LimitSet] = Field(
        default_factory=dict, description="limits of an account's jobs together")

    def of_user(self, user: str) -> LimitSet:
        """The limits of ``user`` (the default unless they have their own)."""
        return self.users.get(user, self.default)

    def of_account(self, account: str) -> LimitSet:
        """The limits of ``account`` (none unless configured)."""
        return self.accounts.get(account, NO_LIMITS)

    @property
    def any_running(self) -> bool:
        """Whether any limit the dispatcher checks is set at all."""
        sets: list[LimitSet] = [self.default, *self.users.values(), *self.accounts.values()]
        return any(s.running_limited for s in sets)


def over_running(limits: LimitSet, running: int, cores: int, licenses: Mapping[str, int],
                 want_cores: int, want_licenses: Mapping[str, int]) -> str | None:
    """Which running limit one more job (``want_cores``, ``want_licenses``) would break,
    as words ("4 running jobs (max_running_jobs)"), or None."""
    if limits.max_running_jobs is not None and running + 1 > limits.max_running_jobs:
        return f"{limits.max_running_jobs} running jobs (max_running_jobs)"
    if limits.max_cores is not None and cores + want_cores > limits.max_cores:
        return f"{limits.max_cores} cores in use (max_cores; {cores} in use)"
    for name, cap in sorted(limits.max_licenses.items()):
        need = want_licenses.get(name, 0)
        if need and licenses.get(name, 0) + need > cap:
            return f"{cap} {name} licences in use (max_licenses; {licenses.get(name, 0)} in use)"
    return None
