"""One-time dashboard login codes, redeemed once for the whole farm.

``simfarm up`` prints a login URL whose code hands the owner's token to the first browser
that opens it. Every gateway process (and every gateway behind a balancer) knows the
code's digest; the first to redeem it marks it used here, so a copied link works once in
all, not once per process.
"""

from __future__ import annotations

import redis

from simfarm.common.store.keys import Keys


class LoginCodes:
    """Marks one-time login codes used (a key per code digest, kept for good: one small
    key per ``simfarm up`` start)."""

    def __init__(self, connection: redis.Redis, prefix: str = "simfarm:") -> None:
        self.connection = connection
        self.keys = Keys(prefix)

    def use(self, code_sha256: str) -> bool:
        """Mark the code used; True for the first caller only, on any gateway."""
        return bool(self.connection.set(self.keys.login_used(code_sha256), "1", nx=True))
