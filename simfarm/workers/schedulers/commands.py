"""Running cluster commands: argv only, a timeout on every call, retries with backoff."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from simfarm.workers.schedulers.errors import CommandError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class CommandResult:
    """One finished command."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.returncode == 0

    def error(self, message: str, *, transient: bool = True) -> CommandError:
        """A :class:`CommandError` describing this result."""
        detail = (self.stderr.strip() or self.stdout.strip())[:500]
        return CommandError(f"{message}: {' '.join(self.argv[:2])} exited {self.returncode}"
                            + (f": {detail}" if detail else ""),
                            argv=self.argv, returncode=self.returncode, stdout=self.stdout,
                            stderr=self.stderr, transient=transient)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing command is tried again."""

    attempts: int = 4
    first_delay_s: float = 0.5
    max_delay_s: float = 15.0
    factor: float = 2.0

    def delays(self) -> list[float]:
        """Sleep before each retry (one fewer than ``attempts``), with 10% jitter."""
        out: list[float] = []
        delay = self.first_delay_s
        for _ in range(max(0, self.attempts - 1)):
            out.append(min(self.max_delay_s, delay) * random.uniform(0.9, 1.1))
            delay *= self.factor
        return out


class CommandRunner:
    """Runs scheduler commands, resolving names against an optional ``bin_dir``.

    Keeps the last few argvs in :attr:`history` so operators (and tests) can see what
    was called and how often.
    """

    def __init__(self, *, bin_dir: Path | None = None, timeout_s: float = 30.0,
                 env: Mapping[str, str] | None = None, history_size: int = 200) -> None:
        self.bin_dir = bin_dir
        self.timeout_s = timeout_s
        self.env = dict(env) if env else None
        self.history: deque[list[str]] = deque(maxlen=history_size)
        self._lock = threading.Lock()

    def resolve(self, name: str) -> str:
        """Full path of a scheduler command when ``bin_dir`` is set, else the bare name."""
        if self.bin_dir is not None and os.sep not in name:
            return str(self.bin_dir / name)
        return name

    def run(self, argv: Sequence[str], *, stdin_path: Path | None = None,
            cwd: Path | None = None, timeout_s: float | None = None) -> CommandResult:
        """Run ``argv`` (never through a shell); raise :class:`CommandError` only when it
        could not run at all or timed out. A non-zero exit is returned, not raised."""
        full = [self.resolve(argv[0]), *argv[1:]]
        env = None if self.env is None else {**os.environ, **self.env}
        with self._lock:
            self.history.append(list(argv))
        started = time.monotonic()
        try:
            if stdin_path is not None:
                with stdin_path.open("rb") as stdin:
                    proc = subprocess.run(full, stdin=stdin, capture_output=True, cwd=cwd,
                                          env=env, timeout=timeout_s or self.timeout_s)
            else:
                proc = subprocess.run(full, stdin=subprocess.DEVNULL, capture_output=True,
                                      cwd=cwd, env=env, timeout=timeout_s or self.timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise CommandError(f"{argv[0]} timed out after {exc.timeout:g}s",
                               argv=list(argv), transient=True) from None
        except OSError as exc:
            raise CommandError(f"cannot run {full[0]}: {exc.strerror or exc}",
                               argv=list(argv), transient=False) from None
        return CommandResult(list(argv), proc.returncode,
                             proc.stdout.decode("utf-8", "replace"),
                             proc.stderr.decode("utf-8", "replace"),
                             time.monotonic() - started)

    def count(self, name: str) -> int:
        """How many recent calls ran command ``name``."""
        with self._lock:
            return sum(1 for argv in self.history if argv and Path(argv[0]).name == name)


def with_retries(action: Callable[[], T], policy: RetryPolicy, *, what: str,
                 on_retry: Callable[[CommandError, int, float], None] | None = None,
                 stop: threading.Event | None = None) -> T:
    """Call ``action`` until it succeeds or a non-transient :class:`CommandError` occurs.

    ``on_retry(error, attempt, delay)`` runs before each wait so callers can report the
    hiccup; the last error is re-raised when attempts are used up.
    """
    delays = policy.delays()
    attempt = 0
    while True:
        attempt += 1
        try:
            return action()
        except CommandError as exc:
            if not exc.transient or attempt > len(delays):
                raise
            delay = delays[attempt - 1]
            log.warning("%s failed (attempt %d/%d), retrying in %.1fs: %s",
                        what, attempt, policy.attempts, delay, exc)
            if on_retry is not None:
                on_retry(exc, attempt, delay)
            if stop is not None:
                if stop.wait(delay):
                    raise
            else:
                time.sleep(delay)
