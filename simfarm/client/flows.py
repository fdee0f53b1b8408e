"""The façades' multi-step logic, written once for both of them.

Each flow is a generator that *yields actions* (an HTTP call, open the WebSocket,
receive a message, pause, hand a value to the caller) and gets each action's result
back; errors of an action are thrown into it. ``Client`` runs flows with blocking I/O,
``AsyncClient`` with asyncio — the same decisions, only the transport differs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from simfarm.client import api
from simfarm.client.errors import (
    ApiError,
    ConnectionFailed,
    JobCancelled,
    JobFailed,
    NotFound,
    WaitTimeout,
)
from simfarm.common.models import MAX_JOBS_PER_QUERY, Job
from simfarm.common.states import JobState
from simfarm.common.ws_protocol import (
    MAX_SUBSCRIBED_JOBS,
    CloseCode,
    ErrorMessage,
    EventMessage,
    EventType,
    Gap,
    Heartbeat,
    ServerMessage,
    Subscribe,
    Subscribed,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


# ---------------------------------------------------------------------- actions
@dataclass(frozen=True)
class Call:
    """Send one REST operation; the result is the parsed answer."""

    op: api.Operation[Any]


@dataclass(frozen=True)
class CallMany:
    """Send several operations (concurrently where the transport can); results in order."""

    ops: Sequence[api.Operation[Any]]


@dataclass(frozen=True)
class Open:
    """(Re)open the WebSocket and send this subscription; the result is ``None``."""

    subscribe: Subscribe


@dataclass(frozen=True)
class Receive:
    """The next WebSocket message, or ``None`` after ``timeout`` seconds."""

    timeout: float


@dataclass(frozen=True)
class Pause:
    """Sleep."""

    seconds: float


@dataclass(frozen=True)
class Emit:
    """Hand a value to the caller of an iterating flow."""

    value: Any


Action = Call | CallMany | Open | Receive | Pause | Emit
Flow = Generator[Action, Any, T]


class Steps(Generic[T]):
    """A flow as a runner drives it: iterate for the actions to perform and hand each
    one's result (:meth:`answer`) or error (:meth:`fail`) back before taking the next.
    Once the iteration ends, :attr:`value` is what the flow returned; :meth:`close`
    closes the flow (the runner does, whatever happened)."""

    def __init__(self, flow: Flow[T]) -> None:
        self._flow = flow
        self._result: Any = None
        self._error: BaseException | None = None
        self._value: Any = None

    def __iter__(self) -> Iterator[Action]:
        return self

    def __next__(self) -> Action:
        result, error = self._result, self._error
        self._result, self._error = None, None
        try:
            return self._flow.throw(error) if error is not None else self._flow.send(result)
        except StopIteration as stop:
            self._value = stop.value
            raise StopIteration from None

    def answer(self, result: Any) -> None:
        """The result of the last action, sent into the flow."""
        self._result = result

    def fail(self, error: BaseException) -> None:
        """The error of the last action, thrown into the flow."""
        self._error = error

    @property
    def value(self) -> T:
        """What the flow returned."""
        return cast(T, self._value)

    def close(self) -> None:
        """Close the flow."""
        self._flow.close()


class WsClosed(Exception):
    """The WebSocket closed (``code`` 1006 when it just broke)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"websocket closed ({code}) {reason}".rstrip())
        self.code = code
        self.reason = reason


class WsUnavailable(Exception):
    """The gateway does not offer the WebSocket (old server, proxy, waitress on Windows)."""


# Close codes after which the same subscription should simply be resumed.
RESUMABLE = {
    CloseCode.NORMAL,
    CloseCode.GOING_AWAY,
    CloseCode.INTERNAL_ERROR,
    CloseCode.TOO_SLOW,
    1006,
}
MAX_BACKOFF_S = 5.0
# Failed (re)connections in a row after which waiting switches to polling and a
# stream gives up.
MAX_WS_ATTEMPTS = 5
FINAL = {s.value for s in JobState if s.final}


def _backoff(attempt: int) -> float:
    return min(MAX_BACKOFF_S, 0.1 * 2.0 ** min(attempt, 10))


class _Deadline:
    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    def left(self, cap: float) -> float:
        if self.at is None:
            return cap
        return max(0.0, min(cap, self.at - time.monotonic()))

    @property
    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at


# ---------------------------------------------------------------------- reading
def read_jobs(job_ids: Sequence[str]) -> Flow[list[Job]]:
    """The jobs of these ids, in the order given: one request per
    :data:`~simfarm.common.models.MAX_JOBS_PER_QUERY` ids (``POST /api/v1/jobs/query``,
    sent concurrently where the transport can), not one per job. Raises
    :class:`~simfarm.client.errors.NotFound` for an id that is no job (of yours), as
    ``get`` does. A gateway without that route (405) is asked one job at a time."""
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return []
    chunks = [ids[n : n + MAX_JOBS_PER_QUERY] for n in range(0, len(ids), MAX_JOBS_PER_QUERY)]
    try:
        batches = yield CallMany([api.query_jobs(chunk) for chunk in chunks])
    except ApiError as exc:
        if exc.status != 405:
            raise
        found = {j.id: j for j in (yield CallMany([api.get(i) for i in ids]))}
    else:
        missing = [i for batch in batches for i in batch.missing]
        if missing:
            raise NotFound(404, "not_found", f"job {missing[0]} not found")
        found = {j.id: j for batch in batches for j in batch.jobs}
    return [found[i] for i in job_ids]


# ---------------------------------------------------------------------- waiting
class WaitTracker:
    """Which of the waited-for jobs have finished, fed by snapshots, events and polls."""

    def __init__(self, job_ids: Sequence[str]) -> None:
        self.ids = list(dict.fromkeys(job_ids))
        self.final: dict[str, JobState] = {}
        self.states: dict[str, JobState] = {}  # latest known state of each job
        self.unknown: list[str] = []
        self._wanted = set(self.ids)

    def counts(self) -> dict[str, int]:
        """How many of the jobs are in each known state (for progress displays)."""
        out: dict[str, int] = {}
        for state in self.states.values():
            out[state.value] = out.get(state.value, 0) + 1
        return out

    @property
    def remaining(self) -> list[str]:
        return [i for i in self.ids if i not in self.final]

    def set_state(self, job_id: str, state: JobState | str | None) -> str | None:
        """Record a state; returns the id if the job just became final."""
        if state is None:
            self.unknown.append(job_id)
            return None
        state = JobState(state)
        if job_id in self._wanted and job_id not in self.final:
            self.states[job_id] = state
        if state.final and job_id not in self.final and job_id in self._wanted:
            self.final[job_id] = state
            return job_id
        return None

    def feed(self, message: ServerMessage) -> list[str]:
        """Apply a WebSocket message; returns the ids that just finished."""
        done: list[str] = []
        if isinstance(message, Subscribed) and message.jobs is not None:
            for job_id, state in message.jobs.items():
                if (finished := self.set_state(job_id, state)) is not None:
                    done.append(finished)
        elif isinstance(message, EventMessage) and message.type == "state":
            target = message.data.get("to")
            if target in JobState._value2member_map_:
                if (finished := self.set_state(message.job_id, target)) is not None:
                    done.append(finished)
        return done


def _check_outcome(job: Job) -> None:
    if job.state is JobState.FAILED:
        raise JobFailed(job)
    if job.state is JobState.CANCELLED:
        raise JobCancelled(job)


def _wait_subscription(job_ids: list[str]) -> Subscribe:
    if len(job_ids) <= MAX_SUBSCRIBED_JOBS:
        return Subscribe(jobs=job_ids, types=["state"], snapshot=True)
    return Subscribe(types=["state"], states=[s for s in JobState if s.final])


def wait_flow(
    job_ids: Sequence[str],
    timeout: float | None = None,
    raise_on_failure: bool = False,
    poll_interval: float = 1.0,
    on_change: Callable[[WaitTracker], None] | None = None,
) -> Flow[list[Job]]:
    """Wait until every job is final; the jobs as they ended, in the order given.

    Follows one WebSocket subscription for all the jobs (reconnecting as needed) and
    falls back to polling when the gateway offers no WebSocket. ``on_change`` sees the
    tracker after every answer that may have moved a job (progress bars).
    """
    tracker = WaitTracker(job_ids)
    notify = on_change or (lambda _: None)
    deadline = _Deadline(timeout)
    use_ws = True
    attempt = 0

    def finished(ids: list[str]) -> Generator[Action, Any, None]:
        if raise_on_failure:
            for job_id in ids:
                if tracker.final[job_id] in (JobState.FAILED, JobState.CANCELLED):
                    _check_outcome((yield Call(api.get(job_id))))

    while tracker.remaining:
        if deadline.passed:
            raise WaitTimeout(tracker.remaining, timeout)
        if not use_ws:
            try:
                jobs = yield from read_jobs(tracker.remaining)
            except ConnectionFailed as exc:  # the gateway restarts: keep waiting
                log.info("gateway unreachable while waiting (%s); retrying", exc)
                yield Pause(deadline.left(poll_interval))
                poll_interval = min(poll_interval * 1.5, 5.0)
                use_ws = True  # and try the WebSocket again once it is back
                attempt = 0
                continue
            yield from finished([j.id for j in jobs if tracker.set_state(j.id, j.state)])
            notify(tracker)
            if tracker.remaining:
                yield Pause(deadline.left(poll_interval))
                poll_interval = min(poll_interval * 1.5, 5.0)
            continue
        try:
            yield Open(_wait_subscription(tracker.remaining))
            idle_limit = 45.0
            while tracker.remaining:
                message = yield Receive(deadline.left(idle_limit))
                if message is None:
                    if deadline.passed:
                        raise WaitTimeout(tracker.remaining, timeout)
                    raise WsClosed(1006, "no message within 3 heartbeats")
                if isinstance(message, Subscribed):
                    idle_limit = 3 * message.heartbeat_s
                    attempt = 0
                    if message.jobs is None:  # too many jobs for a snapshot: ask once
                        jobs = yield from read_jobs(tracker.remaining)
                        ended = [j.id for j in jobs if tracker.set_state(j.id, j.state)]
                        notify(tracker)
                        yield from finished(ended)
                if tracker.unknown:
                    yield Call(api.get(tracker.unknown[0]))  # raises NotFound
                done = tracker.feed(message)
                notify(tracker)
                yield from finished(done)
        except WsUnavailable as exc:
            log.info("no WebSocket (%s); waiting by polling", exc)
            use_ws = False
        except WsClosed as closed:
            if closed.code not in RESUMABLE:
                log.info("WebSocket closed with %d; waiting by polling", closed.code)
                use_ws = False
                continue
            attempt += 1
            if attempt >= MAX_WS_ATTEMPTS:
                log.info("WebSocket keeps failing (%s); waiting by polling", closed)
                use_ws = False
                continue
            yield Pause(deadline.left(_backoff(attempt)))
    while True:
        try:
            return (yield from read_jobs(tracker.ids))
        except ConnectionFailed:
            if deadline.passed:
                raise
            yield Pause(deadline.left(1.0))


# ---------------------------------------------------------------------- logs
def logs_flow(job_id: str, follow: bool = False, wait_s: float = 10.0) -> Flow[None]:
    """Emit the job's output lines; with ``follow`` until the job has ended."""
    since: str | None = None
    while True:
        events = yield Call(api.events(job_id, since=since, wait=wait_s if follow else 0))
        ended = False
        for event in events:
            since = event.id
            if event.type == "log":
                yield Emit(str(event.data.get("line", "")))
            elif event.type == "state" and event.data.get("to") in FINAL:
                ended = True
        if len(events) >= api.EVENTS_PAGE:
            continue  # more stored lines to read at once
        if not follow or ended:
            return
        if not events and (yield Call(api.get(job_id))).final:
            follow = False  # one more read without waiting, then stop


# ---------------------------------------------------------------------- streams
def subscription(
    jobs: Sequence[str] | None = None,
    states: Iterable[JobState | str] | None = None,
    types: Iterable[EventType] | None = None,
    since: str | None = None,
) -> Subscribe:
    """The subscription of the façades' ``stream()`` (checked as the gateway checks it)."""
    return Subscribe.model_validate(
        {
            "jobs": list(jobs) if jobs is not None else None,
            "states": list(states) if states is not None else None,
            "types": list(types) if types is not None else None,
            "since": since,
        }
    )


def stream_flow(subscription: Subscribe) -> Flow[None]:
    """Emit every matching :class:`JobEvent`, forever, resuming after each disconnect
    from the last event (or heartbeat) id, so no event is lost or repeated."""
    cursor = subscription.since
    attempt = 0
    while True:
        try:
            yield Open(subscription.model_copy(update={"since": cursor}))
            idle_limit = 45.0
            while True:
                message = yield Receive(idle_limit)
                if message is None:
                    raise WsClosed(1006, "no message within 3 heartbeats")
                if isinstance(message, EventMessage):
                    cursor = message.id
                    yield Emit(message.to_event())
                elif isinstance(message, Heartbeat):
                    cursor = message.id
                elif isinstance(message, Subscribed):
                    idle_limit = 3 * message.heartbeat_s
                    attempt = 0
                    cursor = cursor if cursor is not None else message.head
                elif isinstance(message, Gap):
                    log.warning(
                        "events after %s were trimmed; continuing from %s",
                        message.since,
                        message.first_id,
                    )
                elif isinstance(message, ErrorMessage):
                    raise api.error_for(400, message.model_dump(), message.detail)
        except WsUnavailable as exc:
            raise ConnectionFailed(f"the gateway offers no WebSocket: {exc}") from exc
        except WsClosed as closed:
            if closed.code not in RESUMABLE and closed.code != CloseCode.TRY_AGAIN_LATER:
                raise ConnectionFailed(f"the gateway closed the event stream: {closed}") from None
            attempt += 1
            if attempt > 2 * MAX_WS_ATTEMPTS:
                raise ConnectionFailed(f"the event stream keeps failing: {closed}") from None
            yield Pause(_backoff(attempt))
