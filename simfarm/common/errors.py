"""Typed errors shared by every layer."""

from __future__ import annotations


class SimfarmError(Exception):
    """Base class of simfarm's own errors."""


class JobNotFound(SimfarmError):
    """No job has this id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class IllegalTransition(SimfarmError):
    """A state change that the state machine does not allow; nothing was changed."""

    def __init__(self, job_id: str, current: str, target: str) -> None:
        super().__init__(f"job {job_id} is {current}; it cannot become {target}")
        self.job_id = job_id
        self.current = current
        self.target = target


class StaleAttempt(SimfarmError):
    """A worker acted on an attempt of a job that is no longer the current one."""

    def __init__(self, job_id: str, attempt: int) -> None:
        super().__init__(f"job {job_id}: attempt {attempt} is no longer current")
        self.job_id = job_id
        self.attempt = attempt


class LicensesUnavailable(SimfarmError):
    """A job could not be placed: a floating licence pool has too few free now; nothing
    was changed."""

    def __init__(self, job_id: str, feature: str, free: int) -> None:
        super().__init__(f"job {job_id}: {feature} has {max(0, free)} licence(s) free")
        self.job_id = job_id
        self.feature = feature
        self.free = free


class NotReplicated(SimfarmError):
    """Redis took a write but too few replicas confirmed it in time: a failover now could
    lose it, so it is not acknowledged."""

    def __init__(self, wanted: int, confirmed: int, timeout_ms: int) -> None:
        super().__init__(f"{confirmed} of {wanted} Redis replica(s) confirmed the write "
                         f"within {timeout_ms} ms")
        self.wanted = wanted
        self.confirmed = confirmed


class DuplicateJob(SimfarmError):
    """A job with this id already exists."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} already exists")
        self.job_id = job_id
