"""The command that starts a job's program under its exit note writer (what a note says,
and the Python writer itself: :mod:`.exit_note`).

Two writers of the same note, with the same behaviour:

* **sh** (Linux): a POSIX ``sh`` script, ``/bin/sh -c <script>`` — about a millisecond,
  where a Python interpreter takes 20 ms or more, and every account may run it. The
  note is its standard input (``sh`` cannot name a descriptor above 9); it moves it to
  descriptor 3, runs the program with ``/dev/null`` as its input and descriptor 3
  closed, as a foreground command (``( exec program )``: never a builtin of the shell,
  whatever its name), with ``TERM``/``INT``/``HUP`` trapped (a trap with an action is
  reset for the program; an ignored signal would be inherited). Its end time is read
  from ``/proc/uptime`` (the boot-time clock :func:`.exit_note.clock` reads, in
  hundredths of a second) with no process started for it, and a program killed by
  signal ``N`` (``sh`` reports ``128 + N``) is noted ``-N`` and the script kills itself
  with ``N``, so the worker sees what it would have seen without it. The one thing it
  cannot tell apart: a program that exits by itself with ``128 + N`` (``N`` a signal that
  ends a process) is taken as killed by ``N``.
* **Python** (Windows, no usable ``sh``, and every case the script could not run exactly
  as ``subprocess.Popen`` would): the program not found or not runnable by the job's
  account, a file that is neither a binary nor a ``#!`` script (Popen refuses it, ``sh``
  would run it as a script), no ``PATH`` or a ``PATH`` entry ``sh`` reads differently
  (``%``), or an environment ``sh`` would change (names that are not shell names,
  ``IFS``, ``PPID``, ``OPTIND``). It reports a spawn failure as the worker's own
  ``Popen`` would (``executable not found`` ...).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import signal
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simfarm.workers import exit_note
from simfarm.workers.job_account import JobAccount

log = logging.getLogger(__name__)

SH = "/bin/sh"
#: the shell's name in its own messages and in ``ps``
SH_NAME = "simfarm-note"
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: variables ``sh`` sets itself, whatever the environment says
_SH_OWN = frozenset({"IFS", "PPID", "OPTIND"})
#: signals whose default action is not to end the process: 128 + N is an exit code
_NOT_FATAL = {getattr(signal, name) for name in (
    "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGWINCH")
    if hasattr(signal, name)}
_MAGIC = (b"\x7fELF", b"#!")

# $1: "-" (no PWD in the job's environment) or "=<PWD>"; $2: the file the program is
# (checked with the account's rights); $3...: the program's argv.
_SH_SCRIPT = """\
exec 3>&0 4>&2 </dev/null 2>/dev/null
trap 'k=TERM' TERM; trap 'k=INT' INT; trap 'k=HUP' HUP
echo "started $$" >&3
case $1 in -) unset PWD;; *) PWD=${1#=};; esac
f=$2
shift 2
if [ -n "$k" ]; then trap - "$k"; kill -s "$k" $$; exit 1; fi
if [ ! -e "$f" ] || [ ! -x "$f" ]; then
  read -r t </proc/uptime
  if [ -e "$f" ]; then e='PermissionError Permission denied'
  else e='FileNotFoundError No such file or directory'; fi
  echo "${t%% *} spawn $e" >&3
  exit {spawn_failed}
fi
(exec "$@" 2>&4 3>&- 4>&-)
c=$?
read -r t </proc/uptime
t=${t%% *}
case $c in
{signal_codes})
  echo "$t exit -$((c - 128))" >&3; exec 3>&-
  trap - TERM INT HUP; kill -s $((c - 128)) $$;;
*) echo "$t exit $c" >&3;;
esac
exit $c
"""


@functools.cache
def sh_script() -> str:
    """The ``sh`` note writer (see the module docstring)."""
    codes = [128 + int(s) for s in sorted(signal.valid_signals())
             if s not in _NOT_FATAL and 128 + int(s) <= 255]
    return _SH_SCRIPT.replace("{signal_codes}", "|".join(map(str, codes))).replace(
        "{spawn_failed}", str(exit_note.SPAWN_FAILED))


@functools.cache
def sh_usable() -> bool:
    """Whether the ``sh`` writer can run here: Linux's ``/proc/uptime`` and a ``/bin/sh``
    every account may run."""
    return (sys.platform.startswith("linux") and os.access("/proc/uptime", os.R_OK)
            and _usable_by_anyone(Path(SH)))


@functools.cache
def _python_source() -> str:
    return Path(exit_note.__file__).read_text(encoding="utf-8")


def _usable_by_anyone(path: Path) -> bool:
    """Whether every user may run ``path``: it and each folder above it executable by
    others (a job account runs it; this worker's interpreter may sit in a private home)."""
    try:
        real = path.resolve(strict=True)
        return all(p.stat().st_mode & stat.S_IXOTH for p in (real, *real.parents))
    except OSError:
        return False


@functools.cache
def note_python(job_account: bool) -> str | None:
    """The interpreter that runs the Python note writer: this worker's, or for a job
    account the first Python 3 every user may run (None: none is)."""
    candidates = [sys.executable]
    if job_account:
        candidates = [sys.executable, getattr(sys, "_base_executable", ""), "/usr/bin/python3",
                      shutil.which("python3") or ""]
        candidates = [c for c in candidates if c and _usable_by_anyone(Path(c))]
        if not candidates:
            log.warning("no Python interpreter every user may run: jobs the sh note writer "
                        "cannot start run under the job account without exit notes")
            return None
    return candidates[0]


def _runnable(path: str, st: os.stat_result, account: JobAccount | None) -> bool:
    if account is None:
        return os.access(path, os.X_OK)
    if st.st_uid == account.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == account.gid or st.st_gid in account.groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def program_file(program: str, env: Mapping[str, str], cwd: Path,
                 account: JobAccount | None) -> str | None:
    """The file ``program`` names, as ``Popen`` (and ``sh``) would find it in
    ``env``'s ``PATH`` from ``cwd``, when ``sh`` would run it exactly as ``Popen``
    would: a regular file the account may run, a binary or a ``#!`` script. None
    otherwise (the Python writer then starts it)."""
    if "/" in program:
        candidates = [program]
    else:
        path = env.get("PATH")
        if path is None or "%" in path:
            return None
        candidates = [os.path.join(d, program) for d in os.get_exec_path(dict(env))]
    for candidate in candidates:
        file = os.path.join(cwd, candidate)
        try:
            st = os.stat(file)
        except (OSError, ValueError):
            continue
        if not stat.S_ISREG(st.st_mode) or not _runnable(file, st, account):
            continue
        try:
            with open(file, "rb") as handle:
                head = handle.read(4)
        except OSError:
            return None
        return candidate if head.startswith(_MAGIC) else None
    return None


def _sh_environment(env: Mapping[str, str]) -> bool:
    return all(_SHELL_NAME.match(name) and name not in _SH_OWN for name in env)


def wrap(argv: list[str], note: str, fd: int | None, *, env: Mapping[str, str], cwd: Path,
         account: JobAccount | None) -> tuple[list[str], dict[str, Any]] | None:
    """The command that runs ``argv`` (in ``cwd`` with ``env``, as ``account``) under a
    note writer of the note ``note`` (its path; ``fd``: its open descriptor on POSIX),
    and the ``subprocess.Popen`` arguments it needs beyond the usual ones. None: no
    writer can run it (jobs of an account no Python is usable by and ``sh`` cannot run)."""
    if fd is not None and sh_usable() and _sh_environment(env):
        file = program_file(argv[0], env, cwd, account)
        if file is not None:
            pwd = "=" + env["PWD"] if "PWD" in env else "-"
            return [SH, "-c", sh_script(), SH_NAME, pwd, file, *argv], {"stdin": fd}
    python = note_python(account is not None)
    if python is None:
        return None
    prefix = [python, "-I", "-S", "-c", _python_source()]
    if fd is None:
        return [*prefix, f"path:{note}", *argv], {}
    return [*prefix, f"fd:{fd}", *argv], {"pass_fds": (fd,)}
