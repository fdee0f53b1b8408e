"""Secrets of the embedded service (``simfarm up``): the Redis ACL users and the local
token, kept in private files of the state folder so only the farm's owner can use them.

* ``redis/users.acl`` (0600, passwords stored as SHA-256 by Redis' ``#`` syntax): the
  ``default`` user and one user per role (:mod:`simfarm.common.redis_acl`). The
  passwords themselves are only handed to the child processes that need them.
* the local token: an admin token for the owner; its hash goes to the gateway, the
  token itself to ``embedded.json`` (0600), where the CLI, ``Client()`` and the PyEDB
  façade find it (as Jupyter's clients find its token).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from simfarm.common.redis_acl import ROLES, acl_file, new_password, with_credentials
from simfarm.common.tokens import TokenEntry, hash_token, new_token


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it readable by this account only."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only this account may read (0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file keeps its mode through O_TRUNC
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def owner_name() -> str:
    """The user name the local token stands for (the OS account running the farm)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "owner"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:64] or "owner"


@dataclass
class RedisUsers:
    """Passwords of the embedded Redis' users (never written in clear to disk)."""

    passwords: dict[str, str] = field(
        default_factory=lambda: {name: new_password() for name in ("default", *ROLES)})

    def write_acl(self, folder: Path, prefix: str) -> Path:
        """Write ``users.acl`` (0600) into ``folder`` and return its path."""
        path = folder / "users.acl"
        write_private(path, acl_file(self.passwords, prefix))
        return path

    def url(self, base_url: str, role: str) -> str:
        """``base_url`` with the credentials of ``role`` (``default`` for full rights)."""
        return with_credentials(base_url, role, self.passwords[role])


@dataclass
class LocalToken:
    """The owner's token of one embedded service run."""

    token: str = field(default_factory=new_token)
    user: str = field(default_factory=owner_name)
    login_code: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    worker_token: str = field(default_factory=new_token)
    """The worker's own token: blobs and results only (no admin token on workers)."""

    def entry(self) -> TokenEntry:
        """The gateway's entry for it: the owner, an admin."""
        return TokenEntry(user=self.user, hash=hash_token(self.token), admin=True)

    def gateway_env(self, configured: list[TokenEntry]) -> dict[str, str]:
        """The gateway's settings for it: the configured tokens plus this one, and the
        one-time dashboard login code (its SHA-256) with the token it hands out."""
        return {
            "SIMFARM_AUTH_TOKENS": json.dumps([e.model_dump() for e in [
                *configured, self.entry(),
                TokenEntry(user="simfarm-worker", hash=hash_token(self.worker_token),
                           worker=True)]]),
            "SIMFARM_LOGIN_CODE_SHA256": hashlib.sha256(self.login_code.encode()).hexdigest(),
            "SIMFARM_LOCAL_TOKEN": self.token,
        }
