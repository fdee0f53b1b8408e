"""Replay of stored events for a resuming WebSocket client, read from Redis in chunks."""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from simfarm.common.models import JobEvent
from simfarm.common.store import JobStore
from simfarm.common.ws_protocol import PER_JOB_REPLAY_LIMIT, Subscribe, event_key

CHUNK = 500


def _global_stream(store: JobStore, since: str) -> Iterator[JobEvent]:
    cursor = since
    while True:
        events = store.global_events(since=cursor, block_ms=None, count=CHUNK)
        yield from events
        if len(events) < CHUNK:
            return
        cursor = events[-1].id


def _job_stream(store: JobStore, job_id: str, since: str) -> Iterator[JobEvent]:
    cursor: str | None = None if since in ("0", "0-0") else since
    while True:
        events = store.events(job_id, since=cursor, limit=CHUNK)
        yield from events
        if len(events) < CHUNK:
            return
        cursor = events[-1].id


def replayed_jobs(subscription: Subscribe) -> list[str] | None:
    """The jobs whose own streams the replay reads (a few jobs named), or None when it
    reads the global stream."""
    jobs = subscription.jobs
    return jobs if jobs is not None and len(jobs) <= PER_JOB_REPLAY_LIMIT else None


class Replayed:
    """Which of the live events queued for a subscriber the replay has sent already.

    The global stream is read in order to its end: every event up to the newest replayed
    was sent. The streams of named jobs are read one after the other: an event of job A
    written after A's stream was read may be older than one read later from B's, so each
    job's events count as sent only up to the last one replayed from its own stream.
    """

    def __init__(self, by_job: bool) -> None:
        self.by_job = by_job
        self.newest: tuple[int, int] = (0, 0)
        self._last: dict[str, tuple[int, int]] = {}

    def add(self, event: JobEvent) -> None:
        """``event`` was sent by the replay."""
        key = event_key(event.id)
        self.newest = max(self.newest, key)
        self._last[event.job_id] = max(self._last.get(event.job_id, (0, 0)), key)

    def covers(self, key: tuple[int, int], job_id: str) -> bool:
        """Whether the live event ``key`` of ``job_id`` was sent by the replay."""
        return key <= (self._last.get(job_id, (0, 0)) if self.by_job else self.newest)


def gaps(store: JobStore, subscription: Subscribe) -> list[str]:
    """Oldest kept ids of the streams a replay reads that lost events after ``since``."""
    assert subscription.since is not None
    jobs = replayed_jobs(subscription)
    if jobs is not None:
        found = [store.trimmed_after(subscription.since, job) for job in jobs]
    else:
        found = [store.trimmed_after(subscription.since)]
    return sorted((f for f in found if f), key=event_key)


def replay(store: JobStore, subscription: Subscribe) -> Iterator[JobEvent]:
    """Every stored event matching ``subscription`` after its ``since``, oldest first.

    A few named jobs are read from their own streams (which keep more history per job),
    merged by id; anything else from the global stream. Reading goes on until the
    stream's end, so it covers at least everything before the subscription started.
    """
    assert subscription.since is not None
    since = subscription.since
    flt = subscription.event_filter()
    jobs = replayed_jobs(subscription)
    if jobs is not None:
        streams = [_job_stream(store, job, since) for job in dict.fromkeys(jobs)]
        source: Iterator[JobEvent] = heapq.merge(*streams, key=lambda e: event_key(e.id))
    else:
        source = _global_stream(store, since)
    for event in source:
        if flt.matches(event.job_id, event.type, event.data):
            yield event
