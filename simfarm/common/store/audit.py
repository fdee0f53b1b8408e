"""The audit log: an append-only Redis stream of who did what, from where.

Entries are only ever added (``XADD``); nothing in simfarm edits or deletes them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

import redis
from pydantic import BaseModel, Field

from simfarm.common.store.keys import Keys

SCAN_BATCH = 500


class AuditEntry(BaseModel):
    """One audited action."""

    id: str = Field(description="stream id; its first part is the time in ms")
    ts: float = Field(description="when, seconds since the epoch")
    who: str = Field(description="user name, or 'anonymous'")
    source: str = Field(description="the client's address")
    action: str = Field(description="e.g. submit, cancel, priority, sweep.submit, resubmit")
    method: str
    path: str
    status: int = Field(description="HTTP status of the answer")
    target: str | None = Field(default=None, description="job or sweep id acted on")
    details: dict[str, Any] = Field(default_factory=dict, description="request body (small)")


def _fields(entry: Mapping[str, Any]) -> dict[str, str]:
    return {k: (json.dumps(v) if isinstance(v, dict) else str(v))
            for k, v in entry.items() if v is not None}


class AuditStore:
    """Appends to and reads the audit stream."""

    def __init__(self, connection: redis.Redis, prefix: str = "simfarm:") -> None:
        self.connection = connection
        self.keys = Keys(prefix)

    def append(self, entry: Mapping[str, Any]) -> str:
        """Add one entry; returns its id."""
        eid = self.connection.xadd(self.keys.audit, _fields(entry))  # type: ignore[arg-type]
        return eid.decode() if isinstance(eid, bytes) else str(eid)

    def append_many(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Add entries in one round trip, in order."""
        pipe = self.connection.pipeline(transaction=False)
        for entry in entries:
            pipe.xadd(self.keys.audit, _fields(entry))  # type: ignore[arg-type]
        pipe.execute()

    def query(
        self,
        *,
        who: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries newest first matching every given filter; ``before`` is the id of the
        last entry of the previous page."""
        high = f"({before}" if before else (f"{int(until * 1000)}" if until else "+")
        low = f"{int(since * 1000)}" if since else "-"
        out: list[AuditEntry] = []
        scanned = 0
        while len(out) < limit and scanned < 100 * SCAN_BATCH:
            rows = cast(list[Any], self.connection.xrevrange(self.keys.audit, high, low,
                                                             count=SCAN_BATCH))
            if not rows:
                break
            scanned += len(rows)
            for eid, raw in rows:
                entry = self._to_entry(eid, raw)
                if ((who is None or entry.who == who)
                        and (action is None or entry.action == action)
                        and (target is None or entry.target == target)):
                    out.append(entry)
                    if len(out) >= limit:
                        break
            high = f"({rows[-1][0].decode()}"
        return out

    @staticmethod
    def _to_entry(eid: bytes, raw: Mapping[bytes, bytes]) -> AuditEntry:
        data = {k.decode(): v.decode() for k, v in raw.items()}
        event_id = eid.decode()
        return AuditEntry(
            id=event_id,
            ts=int(event_id.split("-", 1)[0]) / 1000.0,
            who=data.get("who", "anonymous"),
            source=data.get("source", ""),
            action=data.get("action", ""),
            method=data.get("method", ""),
            path=data.get("path", ""),
            status=int(data.get("status", "0")),
            target=data.get("target") or None,
            details=json.loads(data["details"]) if data.get("details") else {},
        )
