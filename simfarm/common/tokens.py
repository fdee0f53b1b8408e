"""Bearer tokens: how they are hashed at rest and checked.

The gateway's configuration holds only hashes. Two formats are accepted:

* ``sha256:<hex>`` — one SHA-256 of the token. Right for tokens made by
  ``simfarm hash-token`` (256 random bits cannot be brute-forced, so a slow hash buys
  nothing) and cheap enough to check on every request.
* ``pbkdf2_sha256$<iterations>$<salt hex>$<hex>`` — for tokens people choose themselves.
  A successful check is remembered in memory under the token's SHA-256, so the slow
  hash runs once per token and process, not once per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading

from pydantic import BaseModel, ConfigDict, Field, field_validator

from simfarm.common.names import each_matching

PBKDF2_ITERATIONS = 200_000
_MAX_REJECTED = 4096
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
_PBKDF2 = re.compile(r"^pbkdf2_sha256\$([0-9]{1,9})\$([0-9a-f]{8,128})\$([0-9a-f]{64})$")
_USER = re.compile(r"^[A-Za-z0-9_.@\-]{1,128}$")


class TokenEntry(BaseModel):
    """One accepted token: who it belongs to, its hash, whether it is an admin, the
    user's groups and default account (:mod:`simfarm.common.accounts`)."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(description="user name jobs submitted with this token belong to")
    hash: str = Field(description="sha256:<hex> or pbkdf2_sha256$<iter>$<salt>$<hex>")
    admin: bool = Field(default=False, description="sees and cancels every user's jobs")
    worker: bool = Field(
        default=False,
        description="a worker's token: only moves blobs and attaches results to running "
        "jobs (staged files); no other route, no jobs of its own",
    )
    groups: list[str] = Field(
        default_factory=list,
        description="groups of the user; accounts list groups whose users may charge them",
    )
    account: str | None = Field(
        default=None, description="the account the user's jobs charge when they name none"
    )

    @field_validator("user")
    @classmethod
    def _check_user(cls, value: str) -> str:
        if not _USER.match(value):
            raise ValueError(f"user name must match {_USER.pattern}")
        return value

    @field_validator("groups")
    @classmethod
    def _check_groups(cls, value: list[str]) -> list[str]:
        return each_matching(value, _USER, "group name {value} must match " + _USER.pattern)

    @field_validator("hash")
    @classmethod
    def _check_hash(cls, value: str) -> str:
        if not (_SHA256.match(value) or _PBKDF2.match(value)):
            raise ValueError(
                "token hash must be 'sha256:<64 hex>' or "
                "'pbkdf2_sha256$<iterations>$<salt hex>$<64 hex>' (see `simfarm hash-token`)"
            )
        return value


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def _sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_token(token: str, *, slow: bool = False, iterations: int = PBKDF2_ITERATIONS) -> str:
    """The at-rest form of ``token``: ``sha256:`` by default, PBKDF2 with ``slow``."""
    if not token:
        raise ValueError("the token is empty")
    if not slow:
        return f"sha256:{_sha256_hex(token)}"
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", token.encode(), bytes.fromhex(salt), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${digest.hex()}"


def matches(token: str, hashed: str) -> bool:
    """Whether ``token`` is the one ``hashed`` was made from (constant-time compare)."""
    if hashed.startswith("sha256:"):
        return hmac.compare_digest(f"sha256:{_sha256_hex(token)}", hashed)
    found = _PBKDF2.match(hashed)
    if not found:
        return False
    iterations, salt, expected = int(found[1]), found[2], found[3]
    digest = hashlib.pbkdf2_hmac("sha256", token.encode(), bytes.fromhex(salt), iterations)
    return hmac.compare_digest(digest.hex(), expected)


class TokenTable:
    """Finds the entry a presented token belongs to."""

    def __init__(self, entries: list[TokenEntry]) -> None:
        self._fast = {
            e.hash.removeprefix("sha256:"): e for e in entries if e.hash.startswith("sha256:")
        }
        self._slow = [e for e in entries if not e.hash.startswith("sha256:")]
        self._verified: dict[str, TokenEntry] = {}
        self._rejected: dict[str, None] = {}  # insertion-ordered, bounded
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._fast or self._slow)

    def lookup(self, token: str) -> TokenEntry | None:
        """The entry for ``token``, or None when no configured hash matches."""
        if not token or len(token) > 4096:
            return None
        digest = _sha256_hex(token)
        entry = self._fast.get(digest)
        if entry is not None:
            return entry
        with self._lock:
            entry = self._verified.get(digest)
            known_bad = digest in self._rejected
        if entry is not None or known_bad or not self._slow:
            return entry
        for candidate in self._slow:
            if matches(token, candidate.hash):
                with self._lock:
                    self._verified[digest] = candidate
                return candidate
        with self._lock:  # a repeated wrong token does not cost another slow hash
            self._rejected[digest] = None
            while len(self._rejected) > _MAX_REJECTED:
                del self._rejected[next(iter(self._rejected))]
        return None
