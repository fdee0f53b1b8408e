"""Turns what the policy learned about a blocked job into words for users."""

from __future__ import annotations

import time

from simfarm.workers.dispatch.classes import JobClass
from simfarm.workers.dispatch.data import PendingReason
from simfarm.workers.dispatch.nodes import Hold, NodeState
from simfarm.workers.dispatch.pools import Pools


def fmt_time(t: float) -> str:
    """An absolute time as users read it (stable across dispatch rounds)."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def licence_wait(pools: Pools, name: str, need: int) -> str:
    """"waiting for 8 anshpc (3 free; 5 in use outside the farm on 1055@lic01)"."""
    free, outside, server = pools.shortfall(name)
    where = f" on {server}" if server else ""
    more = f"; {outside} in use outside the farm{where}" if outside else \
        f" of {pools.limit(name)}{where}"
    return f"waiting for {need} {name} ({free} free{more})"


def explain(cls: JobClass, job_id: str, now: float, pools: Pools | None = None) -> PendingReason:
    """Why ``job_id`` (a pending job of ``cls``) has not started."""
    if cls.never is not None:
        return PendingReason("never-fits", f"never fits any live node: {cls.never}")
    head = cls.head
    hold = cls.holds.get(job_id)
    if head is not None and head[1] != job_id:
        text = f"waiting behind job {head[1]}, which has the same request"
        if hold is not None:
            return PendingReason("behind", f"{text}; reserved on {hold.node.name}, starting by "
                                           f"{fmt_time(hold.start)}", hold.node.name, hold.start)
        return PendingReason("behind", text)
    code, ref = cls.block
    need = cls.demand.describe()
    if code == "licenses" and isinstance(ref, str) and pools is not None:
        text = licence_wait(pools, ref, cls.pool.get(ref, 0))
    elif code == "licenses-reserved" and isinstance(ref, Hold):
        names = ", ".join(sorted(set(ref.pool) & set(cls.pool)))
        text = f"free {names} licences are reserved for job {ref.job_id}, ahead in line"
    elif code == "reserved" and isinstance(ref, Hold):
        text = (f"free resources on {ref.node.name} are reserved for job {ref.job_id}, "
                f"ahead in line")
    elif code == "held" and isinstance(ref, NodeState):
        more = len(cls.eligible) - 1
        text = (f"every node that can run it is held by its local limits ({ref.name}: "
                f"{ref.held}{f' and {more} more' if more > 0 else ''})")
    elif code == "no-room":
        text = f"waiting for {need} on one of {len(cls.eligible)} node(s) that can run it"
    elif code == "order":
        text = "waiting for the jobs ahead in line to start first (backfill is off)"
    else:
        return PendingReason("new", "not considered by the dispatcher yet")
    if hold is not None:
        when = "now" if hold.start <= now else fmt_time(hold.start)
        return PendingReason(code, f"{text}; reserved on {hold.node.name}, starting by {when}",
                             hold.node.name, hold.start)
    return PendingReason(code, text)
