"""Placement policy and dispatch loop: which pending job runs on which node."""

from simfarm.workers.dispatch.config import BackfillMode, PolicyConfig
from simfarm.workers.dispatch.policy import Scheduler
from simfarm.workers.dispatch.views import (
    NodeView,
    PendingJob,
    PendingReason,
    Placement,
    Reservation,
    RunningJob,
)

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
