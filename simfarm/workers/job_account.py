"""The OS account a job runs as, and the environment it starts with.

A job must not reach what its worker holds: the worker's environment
(``/proc/<worker>/environ`` holds the Redis password), its memory, its files. With
``job_user`` set, a POSIX worker running as root starts each job as that account (its
own primary group and supplementary groups, no others), in a session and process group
of its own; the kernel then refuses the job ``/proc/<worker>/environ``, ``/proc/<worker>
/mem`` and ``ptrace``, and the worker's files (0600/0700) stay its own. Without
``job_user`` jobs run as the worker's account (a single-user farm: ``simfarm up``).

Whatever the account, a job's environment is built, not inherited: only the variables
named by ``job_env_inherit`` (locale, PATH, temp folders, Ansys and licence settings),
the account's HOME/USER/LOGNAME, the job's own ``env`` and ``SIMFARM_JOB_ID``.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simfarm.common.settings import Settings

log = logging.getLogger(__name__)


class JobAccountError(RuntimeError):
    """``job_user`` cannot be used by this worker (the worker refuses to start)."""


@dataclass(frozen=True)
class JobAccount:
    """An OS account jobs run as."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    def popen_kwargs(self) -> dict[str, Any]:
        """``subprocess.Popen`` arguments that start the child as this account."""
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}

    def give(self, folder: Path) -> None:
        """Hand a folder simfarm made for a job (and everything in it) to this account;
        symbolic links are changed themselves, never followed."""
        os.chown(folder, self.uid, self.gid, follow_symlinks=False)
        for root, dirs, files in os.walk(folder):
            for name in (*dirs, *files):
                os.chown(os.path.join(root, name), self.uid, self.gid, follow_symlinks=False)


def job_account(settings: Settings) -> JobAccount | None:
    """The account of ``settings.job_user`` (None: the worker's own account).

    Raises :class:`JobAccountError` when the account does not exist, is root, or this
    worker cannot switch to it (not root, or Windows)."""
    if not settings.job_user:
        return None
    if sys.platform == "win32":
        raise JobAccountError(
            "job_user is not supported on Windows: run the worker service itself under "
            "the unprivileged account jobs should have (see docs/security.md)")
    import grp
    import pwd

    try:
        entry = (pwd.getpwuid(int(settings.job_user)) if settings.job_user.isdigit()
                 else pwd.getpwnam(settings.job_user))
    except KeyError:
        raise JobAccountError(f"job_user {settings.job_user!r} is not an account on this "
                              "machine") from None
    if entry.pw_uid == 0:
        raise JobAccountError("job_user must be an unprivileged account, not root")
    if entry.pw_uid == os.geteuid():
        return None  # already that account: nothing to switch
    if os.geteuid() != 0:
        raise JobAccountError(
            f"job_user is {entry.pw_name!r} but this worker runs as uid {os.geteuid()}, "
            "which cannot start processes as another account: run the worker as root "
            "(systemd unit of deploy/systemd) or leave job_user unset")
    groups = tuple(g for g in os.getgrouplist(entry.pw_name, entry.pw_gid) if g != entry.pw_gid)
    grp.getgrgid(entry.pw_gid)  # the primary group must exist
    return JobAccount(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)


@functools.cache
def _inherit_matcher(patterns: tuple[str, ...]) -> Callable[[str], object]:
    """One compiled test for all of ``job_env_inherit``'s patterns (upper case names):
    a job's start tests every variable of the worker's environment against them."""
    joined = "|".join(f"(?:{fnmatch.translate(p.upper())})" for p in patterns)
    return re.compile(joined or "(?!)").match


def _inherited(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    matches = _inherit_matcher(tuple(settings.job_env_inherit))
    out = {}
    for key, value in environ.items():
        upper = key.upper()
        if upper.startswith("SIMFARM_"):
            continue  # simfarm's own settings: the Redis URL, tokens
        if matches(upper):
            out[key] = value
    return out


def inherited_environment(settings: Settings,
                          environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What ``job_env_inherit`` lets through from ``environ`` (the worker's own by
    default) to every job: a worker computes it once (:class:`.context.WorkerContext`),
    since testing each variable at every job's start was a tenth of its CPU."""
    return _inherited(settings, os.environ if environ is None else environ)


def job_environment(settings: Settings, job_env: Mapping[str, str], job_id: str,
                    account: JobAccount | None,
                    environ: Mapping[str, str] | None = None,
                    inherited: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a job starts with (see the module docstring); ``inherited``:
    :func:`inherited_environment` of ``environ`` when the caller has it already."""
    environ = os.environ if environ is None else environ
    env = dict(inherited) if inherited is not None else _inherited(settings, environ)
    if account is not None:
        env.update({"HOME": account.home, "USER": account.name, "LOGNAME": account.name})
    else:
        for name in ("HOME", "USER", "LOGNAME", "USERNAME", "USERPROFILE", "APPDATA",
                     "LOCALAPPDATA"):
            if name in environ:
                env[name] = environ[name]
    env.update(job_env)
    env["SIMFARM_JOB_ID"] = job_id
    return env
