"""Placement policy: which pending job runs on which node (docs/scheduling.md).

* :mod:`.data`, :mod:`.config` — the plain data in and out, and the tunables;
* :mod:`.policy` — :class:`Scheduler`, the incremental policy the dispatcher and the
  benchmark both drive;
* :mod:`.classes` (pending jobs by shape; shapes of one request form a group),
  :mod:`.nodes` (free resources and timeline), :mod:`.changes` (what loosened since, and
  which groups each node can run), :mod:`.placement` (choosing a node),
  :mod:`.reservations` (backfill's reservations), :mod:`.reasons` (why a job waits);
* :mod:`.feed` — keeps a :class:`Scheduler` in step with Redis for the dispatcher.
"""

from simfarm.workers.dispatch.config import BackfillMode, PolicyConfig
from simfarm.workers.dispatch.data import (
    NodeView,
    PendingJob,
    PendingReason,
    Placement,
    Reservation,
    RunningJob,
)
from simfarm.workers.dispatch.policy import Scheduler

__all__ = [
    "BackfillMode",
    "NodeView",
    "PendingJob",
    "PendingReason",
    "Placement",
    "PolicyConfig",
    "Reservation",
    "RunningJob",
    "Scheduler",
]
