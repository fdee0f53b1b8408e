"""Errors raised by cluster backends."""

from __future__ import annotations


class SchedulerError(Exception):
    """Base class for cluster backend errors."""


class InvalidOptions(SchedulerError, ValueError):
    """Scheduler options that cannot be turned into a safe job script."""


class CommandError(SchedulerError):
    """A cluster command did not give a usable answer.

    ``transient`` tells whether trying again may help (timeouts, daemons unreachable,
    garbled output) or not (the cluster rejected the request).
    """

    def __init__(self, message: str, *, argv: list[str] | None = None,
                 returncode: int | None = None, stdout: str = "", stderr: str = "",
                 transient: bool = True) -> None:
        super().__init__(message)
        self.argv = argv or []
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.transient = transient


class SubmitError(SchedulerError):
    """The cluster refused the job (bad queue, bad limits...); retrying will not help."""
