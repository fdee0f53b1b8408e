"""What the policy learned about a blocked shape, as the note readers render
(:mod:`simfarm.common.waiting`)."""

from __future__ import annotations

from simfarm.common.waiting import PendingReason, ShapeWait, explain
from simfarm.workers.dispatch.classes import JobClass
from simfarm.workers.dispatch.nodes import Hold, NodeState


def shape_wait(cls: JobClass) -> ShapeWait:
    """Why the pending jobs of ``cls`` wait, as one note for the whole shape."""
    if cls.never is not None:
        return ShapeWait("never-fits", never=cls.never)
    head = cls.head
    holds = {job_id: (h.node.name, h.start) for job_id, h in cls.holds.items()}
    code, ref = cls.block
    node = blocker = None
    if code == "reserved" and isinstance(ref, Hold):
        node, blocker = ref.node.name, ref.job_id
    elif code == "held" and isinstance(ref, NodeState):
        node, blocker = ref.name, ref.held
    elif code not in ("no-room", "order"):
        code = "new"
    return ShapeWait(code, head=head[1] if head else None, need=cls.demand.describe(),
                     eligible=len(cls.eligible), node=node, blocker=blocker, holds=holds)


def why(cls: JobClass, job_id: str, now: float) -> PendingReason:
    """Why ``job_id`` (a pending job of ``cls``) has not started."""
    return explain(shape_wait(cls), job_id, now)
