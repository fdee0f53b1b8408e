"""Path mapping between platforms for shared-storage projects.

A project submitted from Windows as ``\\\\fs01\\sim\\proj\\board.aedb`` lives on a Linux
node at ``/mnt/sim/proj/board.aedb``. Each node has rules ``submitted prefix -> local
prefix``; the longest matching prefix wins. Windows-style prefixes (drive letters, UNC
shares, backslashes) match case-insensitively and with either slash, as Windows does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_WINDOWS = re.compile(r"^([A-Za-z]:|\\\\|//)")


def is_windows_path(path: str) -> bool:
    """Whether ``path`` is written the Windows way (drive letter, UNC share or backslashes)."""
    return bool(_WINDOWS.match(path)) or ("\\" in path and "/" not in path)


def _parts(path: str) -> tuple[str, list[str]]:
    """(anchor, components) of a path of either style; UNC anchors keep two slashes."""
    text = path.replace("\\", "/")
    anchor = ""
    if text.startswith("//"):
        anchor, text = "//", text[2:]
    elif re.match(r"^[A-Za-z]:", text):
        anchor, text = text[:2] + "/", text[2:]
    elif text.startswith("/"):
        anchor = "/"
    return anchor, [p for p in text.split("/") if p]


def _matches(prefix: str, path: str) -> list[str] | None:
    """The remaining components of ``path`` under ``prefix``, or None."""
    p_anchor, p_parts = _parts(prefix)
    anchor, parts = _parts(path)
    fold = is_windows_path(prefix)
    if (p_anchor.lower() if fold else p_anchor) != (anchor.lower() if fold else anchor):
        return None
    if len(parts) < len(p_parts):
        return None
    head = parts[: len(p_parts)]
    if fold:
        if [x.lower() for x in head] != [x.lower() for x in p_parts]:
            return None
    elif head != p_parts:
        return None
    return parts[len(p_parts):]


def _join(target: str, rest: list[str]) -> str:
    if not rest:
        return target
    sep = "\\" if is_windows_path(target) else "/"
    return target.rstrip("/\\") + sep + sep.join(rest)


def map_path(path: str, rules: Mapping[str, str]) -> str:
    """``path`` as this node sees it: the longest matching rule applied, else unchanged."""
    best: tuple[int, str, list[str]] | None = None
    for source, target in rules.items():
        rest = _matches(source, path)
        if rest is None:
            continue
        depth = len(_parts(source)[1])
        if best is None or depth > best[0]:
            best = (depth, target, rest)
    if best is None:
        return path
    return _join(best[1], best[2])
