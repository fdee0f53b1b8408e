"""The exit note of a job process: how the job's program ended, written where the
worker's orphan guard can read it even when the worker died before it could.

A job's program is not started by the worker directly but through a note writer: on
Linux a ``sh`` script (:mod:`.note_writer`, about a millisecond), elsewhere — and whenever
the script could not start the program exactly as ``subprocess.Popen`` would — this
file, run as ``python -I -S -c <this file> <note> <argv...>`` (no site, no simfarm
import; 20 ms or more). Either notes its own pid (the process group to stop), starts the
program as its child in the same process group, waits for it and appends one line to the
note — when it ended (:func:`clock`) and its exit status — then ends the same way (the
same exit code, or killed by the same signal), so the worker sees exactly what it would
have seen without it. The note is an open file descriptor it inherits (``fd:<n>``;
POSIX: it works under a job account that cannot open the worker's folder) or a path
(``path:<file>``; Windows).

Only a process that exits by itself after its worker is gone needs the note: the orphan
guard (:mod:`simfarm.workers.orphan_guard`) records that outcome instead of letting the
job run again. Signals that stop the group (SIGTERM, CTRL_BREAK) are the child's to
obey; this process outlives it to write the note.

:func:`read_note` parses a note; it is the only other thing here, and stdlib only too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

#: this process's exit code when the program could not be started at all
SPAWN_FAILED = 127


@dataclass(frozen=True)
class Note:
    """What a note says: the header the worker wrote (``fields``; ``pid`` added once
    the note writer started) and, once the program ended, when (``ended_at``,
    :func:`clock`) and how: ``code`` (negative: killed by that signal) or ``spawn_error`` (the
    ``OSError`` class name and message)."""

    fields: dict[str, str]
    ended_at: float | None = None
    code: int | None = None
    spawn_error: tuple[str, str] | None = None


def clock() -> float:
    """The clock of a note's end time: on Linux the boot-time clock (what
    ``/proc/uptime`` shows, the clock of the ``sh`` writer), elsewhere the monotonic
    clock."""
    if sys.platform.startswith("linux"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic()


def header(**fields: object) -> bytes:
    """The first line of a note, written by the worker before the program starts."""
    return (" ".join(f"{k}={v}" for k, v in fields.items()) + "\n").encode()


def read_note(data: bytes) -> Note:
    """Parse a note (a missing or cut end line: the program has not ended)."""
    lines = data.decode("utf-8", errors="replace").split("\n")
    fields = dict(part.split("=", 1) for part in lines[0].split() if "=" in part)
    complete = lines[1:-1]  # a line is complete only with its newline
    if complete and complete[0].startswith("started "):
        fields["pid"] = complete.pop(0).split()[1]
    if not complete:
        return Note(fields)
    parts = complete[0].split(" ", 3)
    try:
        ended_at = float(parts[0])
        if parts[1] == "exit":
            return Note(fields, ended_at, code=int(parts[2]))
        if parts[1] == "spawn":
            return Note(fields, ended_at, spawn_error=(parts[2], parts[3] if len(parts) > 3
                                                       else ""))
    except (IndexError, ValueError):
        pass
    return Note(fields)


def _open(target: str) -> int:
    kind, _, value = target.partition(":")
    if kind == "fd":
        return int(value)
    return os.open(value, os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0))


def _write(fd: int, line: str) -> None:
    try:
        os.write(fd, line.encode("utf-8", errors="replace"))
        os.close(fd)
    except OSError:
        pass  # nobody can know how it ended: the job is treated as lost


def main(argv: list[str]) -> None:
    fd = _open(argv[0])
    # Who to stop if the worker dies before it could note this process's pid itself.
    os.write(fd, f"started {os.getpid()}\n".encode())
    try:
        child = subprocess.Popen(argv[1:])
    except OSError as exc:
        message = str(exc.strerror or exc).replace("\n", " ")
        _write(fd, f"{clock()!r} spawn {type(exc).__name__} {message}\n")
        sys.exit(SPAWN_FAILED)
    # Ignored only now: an ignored signal would stay ignored in the child across exec.
    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    code = child.wait()
    _write(fd, f"{clock()!r} exit {code}\n")
    if code < 0 and os.name == "posix":
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)  # a signal that does not end a process (SIGSTOP...): exit as sh does
        os._exit(128 - code)
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
