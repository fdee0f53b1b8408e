"""State of the FAKE FlexLM license servers shared by ``lmutil`` and ``licensed``.

``$FAKE_FLEXLM_DIR/<port@host>/server.json`` describes one server::

    {"status": "up", "vendor": "ansyslmd", "features": {"anshpc": 16}}

``status`` is ``up``, ``down`` (lmgrd does not answer), ``vendor-down`` (lmgrd answers,
its vendor daemon does not), ``garbage`` (unreadable output) or ``hang`` (no answer
before the caller's timeout). A feature the server does not serve is simply absent.

Each checkout is one file ``<port@host>/checkouts/<name>.json``::

    {"feature": "anshpc", "licenses": 3, "user": "alice", "host": "ws12",
     "display": "/dev/pts/1", "pid": 1234, "start": 1736413320.0}

A checkout whose ``pid`` is no longer running is dropped, as the vendor daemon frees the
licences of a client whose connection closed; ``pid`` null holds until the file goes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def server_dir(server: str) -> Path:
    return Path(os.environ["FAKE_FLEXLM_DIR"]) / server


def read_server(server: str) -> dict[str, Any] | None:
    path = server_dir(server) / "server.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) holds no licence
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def checkouts(server: str) -> list[dict[str, Any]]:
    folder = server_dir(server) / "checkouts"
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # being written
        pid = entry.get("pid")
        if pid is not None and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            continue
        out.append(entry)
    return out


def write_checkout(server: str, name: str, entry: dict[str, Any]) -> Path:
    folder = server_dir(server) / "checkouts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entry))
    tmp.replace(path)
    return path
