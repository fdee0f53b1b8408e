"""The WebSocket protocol of ``/api/v1/ws`` (docs/websocket.md), shared by the gateway
and the Python clients: message models, the event filter, event-id ordering, close codes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from simfarm.common.models import JobEvent
from simfarm.common.names import each_matching
from simfarm.common.states import JobState

WS_PATH = "/api/v1/ws"
MAX_SUBSCRIBED_JOBS = 10_000
# With at most this many jobs a replay reads each job's own stream; above, the global one.
PER_JOB_REPLAY_LIMIT = 64
SUBSCRIBE_TIMEOUT_S = 10.0

EventType = Literal["state", "log", "progress", "info"]
_JOB_ID = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
_EVENT_ID = re.compile(r"^[0-9]{1,20}(-[0-9]{1,20})?$")


class CloseCode(IntEnum):
    """WebSocket close codes used by simfarm (docs/websocket.md, "Closing")."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    TOO_SLOW = 4008
    UNAUTHORIZED = 4401


def event_key(event_id: str) -> tuple[int, int]:
    """Sort key of a Redis stream id such as ``1718000000000-3`` (``"0"`` is ``(0, 0)``)."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def newer(a: str | None, b: str | None) -> str | None:
    """The later of two event ids (``None`` counts as earliest)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if event_key(a) >= event_key(b) else b


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Subscribe(_Message):
    """The client's first message: what to receive and from where."""

    op: Literal["subscribe"] = "subscribe"
    jobs: list[str] | None = Field(
        default=None, max_length=MAX_SUBSCRIBED_JOBS, description="only these job ids"
    )
    states: list[JobState] | None = Field(
        default=None, description="only state events entering or leaving these states"
    )
    types: list[EventType] | None = Field(default=None, description="only these event types")
    since: str | None = Field(default=None, description="replay events after this id first")
    snapshot: bool = Field(default=False, description="with jobs: send their current states")

    @field_validator("jobs")
    @classmethod
    def _check_jobs(cls, value: list[str] | None) -> list[str] | None:
        return each_matching(value, _JOB_ID, "not a job id: {value}")

    @field_validator("since")
    @classmethod
    def _check_since(cls, value: str | None) -> str | None:
        if value is not None and not _EVENT_ID.match(value):
            raise ValueError("must be an event id such as 1718000000000-0")
        return value

    def event_filter(self) -> EventFilter:
        """The compiled filter of this subscription."""
        return EventFilter(
            jobs=frozenset(self.jobs) if self.jobs is not None else None,
            states=frozenset(s.value for s in self.states) if self.states is not None else None,
            types=frozenset(self.types) if self.types is not None else None,
        )


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a subscription wants; ``None`` means "no restriction"."""

    jobs: frozenset[str] | None = None
    states: frozenset[str] | None = None
    types: frozenset[str] | None = None

    def matches(self, job_id: str, event_type: str, data: dict[str, Any]) -> bool:
        """Whether an event passes every filter."""
        if self.jobs is not None and job_id not in self.jobs:
            return False
        if self.types is not None and event_type not in self.types:
            return False
        if self.states is not None:
            return event_type == "state" and (
                data.get("to") in self.states or data.get("from") in self.states
            )
        return True


class Subscribed(_Message):
    """The server's answer to a subscribe."""

    op: Literal["subscribed"] = "subscribed"
    head: str
    heartbeat_s: float
    jobs: dict[str, JobState | None] | None = None


class EventMessage(_Message):
    """One job event."""

    op: Literal["event"] = "event"
    id: str
    job_id: str
    type: EventType
    ts: float
    data: dict[str, Any]

    def to_event(self) -> JobEvent:
        """The event as the REST API's model."""
        return JobEvent(id=self.id, job_id=self.job_id, type=self.type, ts=self.ts, data=self.data)


class Gap(_Message):
    """Events after ``since`` were trimmed; the replay goes on from ``first_id``."""

    op: Literal["gap"] = "gap"
    since: str
    first_id: str


class Live(_Message):
    """The replay is over; what follows is live."""

    op: Literal["live"] = "live"
    id: str


class Heartbeat(_Message):
    """Nothing to say for a while; every matching event up to ``id`` was sent."""

    op: Literal["heartbeat"] = "heartbeat"
    id: str
    ts: float


class ErrorMessage(_Message):
    """The subscription was refused (followed by close code 1008)."""

    op: Literal["error"] = "error"
    error: str
    detail: str
    fields: list[dict[str, str]] = Field(default_factory=list)


ServerMessage = Annotated[
    Subscribed | EventMessage | Gap | Live | Heartbeat | ErrorMessage, Field(discriminator="op")
]
_SERVER_MESSAGE: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


def parse_server_message(raw: str | bytes) -> ServerMessage:
    """Parse one frame from the server (raises ``pydantic.ValidationError``)."""
    return _SERVER_MESSAGE.validate_json(raw)


def event_frame(event: JobEvent) -> str:
    """The JSON frame of one event, built once and shared by every client that gets it."""
    return json.dumps(
        {
            "op": "event",
            "id": event.id,
            "job_id": event.job_id,
            "type": event.type,
            "ts": event.ts,
            "data": event.data,
        },
        separators=(",", ":"),
    )
