"""Jobs read as rows: the few stored fields a listing shows, decoded without building a
:class:`~simfarm.common.models.Job` (no spec model, no waiting note). For pages that
render many jobs in a shape of their own, such as PyEDB's ``GET /api/jobs``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from simfarm.common.models import JobSpec
from simfarm.common.states import JobState

_DEFAULT_KIND = str(JobSpec.model_fields["kind"].default)
T = TypeVar("T")


class JobRow(NamedTuple):
    """A job's listed fields as stored. ``spec`` is the stored spec's JSON, parsed: its
    defaults are left out (a model's ``dump_of_stored`` puts them back)."""

    id: str
    state: JobState
    kind: str
    spec: dict[str, Any]
    owner: str | None
    priority: int
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    native_id: str | None
    error: str | None
    progress: dict[str, Any] | None


#: the hash fields a listing reads of every job, in :func:`to_row`'s order: all it shows
#: but the spec, which never changes once stored (``seq`` tells one stored job from a later
#: one under the same id) and is read only for jobs not rendered before
ROW_FIELDS = ["seq", "state", "owner", "priority", "started_at", "finished_at", "exit_code",
              "native_id", "error", "progress"]

Raw = tuple[bytes | None, ...]


def to_row(job_id: str, raw: Sequence[bytes | None], spec: bytes | None) -> JobRow | None:
    """The row of :data:`ROW_FIELDS` and the stored spec as read (None: no such job)."""
    _, state, owner, priority, started, finished, code, native, error, progress = (
        v.decode() if v is not None else None for v in raw)
    if state is None or spec is None:
        return None
    parsed: dict[str, Any] = json.loads(spec)
    return JobRow(
        id=job_id, state=JobState(state), kind=str(parsed.get("kind", _DEFAULT_KIND)),
        spec=parsed, owner=owner or None, priority=int(priority or 0),
        started_at=float(started) if started else None,
        finished_at=float(finished) if finished else None,
        exit_code=int(code) if code else None, native_id=native or None, error=error or None,
        progress=json.loads(progress) if progress else None)


class RenderedRows(Generic[T]):
    """What ``render`` made of rows already read, keyed by the listed fields as stored
    (the job's id first): a job none of whose listed fields changed since the last
    listing is not read in full, decoded or rendered again, and a change of any of them
    (state, priority, progress...) is a miss, so nothing shown is ever stale. Bounded:
    emptied when ``size`` is reached. Safe to share between threads (a gateway serves
    requests from several)."""

    def __init__(self, render: Callable[[JobRow], T], size: int = 20_000) -> None:
        self.render = render
        self.size = size
        self._done: dict[Raw, tuple[str, T]] = {}
        self._lock = threading.Lock()

    def known(self, raw: Raw) -> tuple[str, T] | None:
        """``(kind, rendered)`` of a row rendered before (None: not yet)."""
        return self._done.get(raw)

    def add(self, raw: Raw, spec: bytes | None) -> tuple[str, T] | None:
        """Render the row of ``raw`` (id and :data:`ROW_FIELDS`) with its stored ``spec``
        and keep it; ``(kind, rendered)``, or None for a job that is gone."""
        assert raw[0] is not None
        row = to_row(raw[0].decode(), raw[1:], spec)
        if row is None:
            return None
        found = (row.kind, self.render(row))
        with self._lock:
            if len(self._done) >= self.size:
                self._done.clear()
            self._done[raw] = found
        return found
