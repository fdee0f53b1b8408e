"""Checks for paths that users send (job ``cwd``, project files, staging targets).

Two levels, because the gateway cannot see the disks of the nodes that will use a path:

* :func:`check_path` — pure syntax, usable anywhere (gateway, client, worker): absolute,
  no ``..`` component, no NUL or control characters, no Windows device namespace, and,
  when allowed roots are configured, inside one of them. POSIX and Windows paths are
  both understood, whatever the platform this runs on, because a Linux gateway takes
  jobs for Windows nodes.
* :func:`resolve_within` — on the machine that uses the path: follows symlinks and
  checks again, so a link inside an allowed root cannot lead outside it.

Both raise :class:`PathRejected`, which carries the field name for a 422 answer.
"""

from __future__ import annotations

import ntpath
import os
import posixpath
import re
from collections.abc import Sequence
from pathlib import Path

from simfarm.common.errors import SimfarmError

MAX_PATH_LENGTH = 4096
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PathRejected(SimfarmError):
    """A user-supplied path that is malformed or outside the allowed roots."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def is_windows_path(path: str) -> bool:
    """Whether ``path`` is written as a Windows path (``C:\\...`` or ``\\\\server\\share``)."""
    return bool(_WINDOWS_DRIVE.match(path)) or path.startswith("\\\\")


def _parts(path: str, windows: bool) -> list[str]:
    return re.split(r"[\\/]+", path) if windows else path.split("/")


def _normalise(path: str, windows: bool) -> str:
    if windows:
        return ntpath.normpath(path)
    # normpath keeps a leading '//' (POSIX allows it to mean something else); fold it.
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal


def _within(path: str, root: str, windows: bool) -> bool:
    if windows:
        path, root = path.lower(), root.lower()
        sep = "\\"
    else:
        sep = "/"
    root = root.rstrip(sep) or sep
    return path == root or path.startswith(root if root.endswith(sep) else root + sep)


def check_path(raw: str, roots: Sequence[str | Path] = (), *, field: str = "path") -> str:
    """The normalised form of ``raw`` if it is an acceptable absolute path.

    ``roots`` empty means any absolute path; otherwise the path must be one of the roots
    or lie below one (roots written for the other OS family are ignored).
    Raises :class:`PathRejected` naming ``field``.
    """
    if not isinstance(raw, str) or not raw:
        raise PathRejected(field, "must be a non-empty path")
    if len(raw) > MAX_PATH_LENGTH:
        raise PathRejected(field, f"longer than {MAX_PATH_LENGTH} characters")
    if _CONTROL.search(raw):
        raise PathRejected(field, "must not contain NUL or control characters")
    windows = is_windows_path(raw)
    if windows and (raw.startswith(("\\\\?\\", "\\\\.\\", "//?/", "//./"))):
        raise PathRejected(field, "Windows device paths (\\\\?\\, \\\\.\\) are not allowed")
    if not windows and not raw.startswith("/"):
        raise PathRejected(field, "must be an absolute path")
    if ".." in _parts(raw, windows):
        raise PathRejected(field, "path traversal ('..') is not allowed")
    normal = _normalise(raw, windows)
    same_family = [str(r) for r in roots if is_windows_path(str(r)) == windows]
    if roots and not any(_within(normal, _normalise(r, windows), windows) for r in same_family):
        raise PathRejected(field, "is outside the allowed folders of this farm")
    return normal


def resolve_within(raw: str, roots: Sequence[str | Path] = (), *, field: str = "path") -> Path:
    """``raw`` checked by :func:`check_path`, then resolved on this machine (symlinks
    followed) and checked against the resolved roots again. Only roots written for this
    machine's OS family count here (a Linux node ignores ``D:\\...`` roots)."""
    normal = check_path(raw, roots, field=field)
    resolved = Path(os.path.realpath(normal))
    local_roots = [r for r in (str(x) for x in roots) if is_windows_path(r) == (os.name == "nt")]
    if local_roots and not any(
        _within(str(resolved), os.path.realpath(r), os.name == "nt") for r in local_roots
    ):
        raise PathRejected(field, "leads outside the allowed folders of this farm (symlink)")
    return resolved
