"""What the policy learned about a blocked shape, as the note readers render
(:mod:`simfarm.common.waiting`)."""

from __future__ import annotations

from simfarm.common.waiting import PendingReason, ShapeWait, explain
from simfarm.workers.dispatch.classes import JobClass
from simfarm.workers.dispatch.nodes import Hold, NodeState
from simfarm.workers.dispatch.pools import Pools
from simfarm.workers.dispatch.shares import Bucket


def licence_wait(pools: Pools, name: str, need: int) -> str:
    """"waiting for 8 anshpc (3 free; 5 in use outside the farm on 1055@lic01)"."""
    free, outside, server = pools.shortfall(name)
    where = f" on {server}" if server else ""
    more = f"; {outside} in use outside the farm{where}" if outside else \
        f" of {pools.limit(name)}{where}"
    return f"waiting for {need} {name} ({free} free{more})"


def shape_wait(cls: JobClass, pools: Pools | None = None) -> ShapeWait:
    """Why the pending jobs of ``cls`` wait, as one note for the whole shape."""
    if cls.never is not None:
        return ShapeWait("never-fits", never=cls.never)
    head = cls.head
    holds = {job_id: (h.node.name, h.start) for job_id, h in cls.holds.items()}
    code, ref = cls.block
    node = blocker = text = None
    if code == "licenses" and isinstance(ref, str) and pools is not None:
        blocker, text = ref, licence_wait(pools, ref, cls.pool.get(ref, 0))
    elif code == "licenses-reserved" and isinstance(ref, Hold):
        names = ", ".join(sorted(set(ref.pool) & set(cls.pool)))
        blocker = ref.job_id
        text = f"free {names} licences are reserved for job {ref.job_id}, ahead in line"
    elif code == "reserved" and isinstance(ref, Hold):
        node, blocker = ref.node.name, ref.job_id
    elif code == "held" and isinstance(ref, NodeState):
        node, blocker = ref.name, ref.held
    elif code == "limit" and isinstance(ref, str):
        text = ref
    elif code not in ("no-room", "order"):
        code = "new"
    bucket = cls.bucket
    share = bucket.over if isinstance(bucket, Bucket) and code != "limit" else None
    return ShapeWait(code, head=head[1] if head else None, need=cls.demand.describe(),
                     eligible=len(cls.eligible), node=node, blocker=blocker, text=text,
                     holds=holds, share=share)


def why(cls: JobClass, job_id: str, now: float, pools: Pools | None = None) -> PendingReason:
    """Why ``job_id`` (a pending job of ``cls``) has not started."""
    return explain(shape_wait(cls, pools), job_id, now)
