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


def gaps(store: JobStore, subscription: Subscribe) -> list[str]:
    """Oldest kept ids of the streams a replay reads that lost events after ``since``."""
    assert subscription.since is not None
    if subscription.jobs is not None and len(subscription.jobs) <= PER_JOB_REPLAY_LIMIT:
        found = [store.trimmed_after(subscription.since, job) for job in subscription.jobs]
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
    if subscription.jobs is not None and len(subscription.jobs) <= PER_JOB_REPLAY_LIMIT:
        streams = [_job_stream(store, job, since) for job in dict.fromkeys(subscription.jobs)]
        source: Iterator[JobEvent] = heapq.merge(*streams, key=lambda e: event_key(e.id))
    else:
        source = _global_stream(store, since)
    for event in source:
        if flt.matches(event.job_id, event.type, event.data):
            yield event
