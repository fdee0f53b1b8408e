"""Redis ACL users for simfarm's three roles, with the least each needs.

* ``gateway``: simfarm's keys only (``<prefix>*``); never the Celery broker keys, no
  Pub/Sub. It creates and lists jobs, writes the audit log and the idempotency keys.
* ``worker``: the keys a node needs to run jobs (jobs, their events and states, nodes,
  gates, sweeps) and the Celery broker keys; not the audit log, the idempotency keys,
  the owner indexes, the blob index or the dispatcher's lock: it cannot become the
  dispatcher, write the audit log or replay another user's idempotent submission.
* ``dispatcher``: a worker that may also lead dispatch (the lock and fencing counter).

Every role loses the commands Redis files as ``@admin`` or ``@dangerous`` (``CONFIG``,
``ACL``, ``KEYS``, ``FLUSHALL``, ``DEBUG``, ``MONITOR``...), except ``INFO`` for the
gateway (its health check reads memory, persistence and replication state). The ``default``
user keeps full rights behind its own password, for operators and migrations.

:func:`acl_file` renders a Redis ACL file (``aclfile`` in redis.conf); ``simfarm
redis-users`` prints one with fresh passwords and the URL each service uses.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

Role = Literal["gateway", "worker", "dispatcher"]
ROLES: tuple[Role, ...] = ("gateway", "worker", "dispatcher")

#: Keys of the Celery broker (kombu's Redis transport): queues ``simfarm.*``, bindings,
#: unacked messages and the pidbox reply queues.
CELERY_KEYS = ("simfarm.*", "celery*", "_kombu.*", "unacked*", "*.celery.pidbox*")
#: simfarm keys (after the prefix) a worker reads and writes (see store/keys.py).
WORKER_KEYS = ("job:*", "jobs", "state:*", "events", "node:*", "nodes", "nodes:version",
               "dispatch:wakeup", "finished", "gates:check", "sweep:*", "sweeps", "notify:*",
               "stats:*", "licenses:*", "usage:*", "queued", "replicated", "rows:version")
#: ... and a dispatcher in addition.
DISPATCHER_KEYS = ("dispatch:*", "fairshare")
#: simfarm keys only the gateway writes (a test checks that every key of the key map is
#: in one of these lists: a new key must be given to the roles that need it).
GATEWAY_KEYS = ("seq", "owner:*", "idem:*", "audit", "expiry:lock", "blobs",
                "uploads:*", "login:*")
_COMMANDS = "+@all -@admin -@dangerous"


def new_password() -> str:
    """A random password (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def role_rules(role: Role, prefix: str) -> list[str]:
    """The ACL rules (after ``user <name> on >password``) of one role."""
    if role == "gateway":  # INFO (memory, persistence, role): health says why writes fail
        return [f"~{prefix}*", "resetchannels", _COMMANDS, "+info"]
    keys = [f"~{prefix}{k}" for k in WORKER_KEYS]
    if role == "dispatcher":
        keys += [f"~{prefix}{k}" for k in DISPATCHER_KEYS]
    keys += [f"~{k}" for k in CELERY_KEYS]
    return [*keys, "allchannels", _COMMANDS]


def acl_file(passwords: Mapping[str, str], prefix: str = "simfarm:") -> str:
    """An ACL file (passwords stored as SHA-256): ``default`` with every right
    (``passwords['default']``) and one user per role named in ``passwords``."""
    def secret(name: str) -> str:
        return "#" + hashlib.sha256(passwords[name].encode()).hexdigest()

    lines = [f"user default on {secret('default')} ~* &* +@all"]
    for role in ROLES:
        if role in passwords:
            lines.append(" ".join([f"user {role} on {secret(role)}",
                                   *role_rules(role, prefix)]))
    return "\n".join(lines) + "\n"


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` with this user name and password (any others replaced)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def has_credentials(url: str) -> bool:
    """Whether a Redis URL carries a password."""
    return bool(urlsplit(url).password)
