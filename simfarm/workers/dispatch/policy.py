"""The placement policy: which pending job starts on which node, now.

Pure and in-memory: the real dispatcher feeds it from Redis, the scheduling benchmark
from a simulated farm; both call the same :class:`Scheduler`.

Policy (docs/scheduling.md has a worked example):

* Jobs are considered in order: higher priority first, then earlier submission.
* A job starts on a node only if its cores, memory, disk, licence tokens and a job slot
  are free there now, its labels match, and the node is not held by its local limits;
  and only if the licences it needs of the farm's floating pools (:mod:`.pools`) are
  free now.
  Among such nodes those where the job delays no reservation at all come first, then
  the smallest machine wins, then the best fit (fewest cores, then least memory, left
  over): big machines stay free for the jobs only they can run.
* Reservation-based backfill: when a job cannot start, it gets a reservation — the
  earliest time some node will have room for it, from the time limits of the jobs
  running there. A later job may start first only if it leaves every earlier job's
  reservation on that node intact: it ends (by its own time limit) before the
  reservation begins, or the reservation still fits beside it. A job without a time
  limit never ends for planning, so it only uses resources no reservation covers.
  Licence pools are reserved the same way, farm-wide: a blocked job's reservation
  starts when both a node and its licences are due, so a job waiting for licences holds
  no cores before then, and later jobs take licences only if they leave it intact.
* Fair share and limits (:mod:`.shares`): a job's rank is its order key moved earlier
  by its user's fair-share offset (furthest below their share first); a job whose user
  or account is at a running limit waits without a reservation, out of others' way.
* Starvation: prevented by reservations, not aging. A job holding a reservation starts
  no later than the reservation unless a *higher*-priority job takes the resources, so
  smaller or lower-priority jobs can never starve a large one. The first job of every
  request shape holds a reservation (up to ``max_reservations``); jobs of the same
  shape behind it follow in submission order.

Efficiency: pending jobs are grouped by shape (:mod:`.classes`); a round visits only the
shapes that could have changed — those able to use a node that freed resources or lost a
reservation since they were last checked — so a round costs about the number of
placements, not the number of pending jobs. Under a backlog a freed node wakes every
shape with pending work that fits it, and the best-ranked takes it: the others' visits
find their nodes taken and end in a few comparisons (:func:`_all_taken`, and the
reservations' quick exit) without building candidate lists; shapes with nothing pending
cost a wake nothing (the node index lists groups of shapes, each with its active ones).
"""

from __future__ import annotations

import heapq
import logging
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Mapping

from simfarm.common.capacity import Capacity, Demand, never_fits_reason, shortfall
from simfarm.common.waiting import ShapeWait
from simfarm.workers.dispatch.bounds import BoundIndex
from simfarm.workers.dispatch.changes import ChangeLog, Entry, Want
from simfarm.workers.dispatch.classes import JobClass, Shape, shape_of
from simfarm.workers.dispatch.config import BackfillMode, PolicyConfig
from simfarm.workers.dispatch.data import (
    Key,
    NodeView,
    PendingJob,
    PendingReason,
    Placement,
    Reservation,
    RunningJob,
    order_key,
)
from simfarm.workers.dispatch.nodes import NodeState, Run
from simfarm.workers.dispatch.placement import choose_node, pools_allow
from simfarm.workers.dispatch.pools import Pools, PoolView
from simfarm.workers.dispatch.reasons import shape_wait, why
from simfarm.workers.dispatch.reservations import FIRST, ReservationBook
from simfarm.workers.dispatch.shares import Bucket, ShareBook, Tally

log = logging.getLogger(__name__)

_FIRST: Key = FIRST


def _ignore(cls: JobClass, after: Key) -> None:
    """A ``want`` that queues nothing (strict order visits classes itself)."""
_NO_ROOM: tuple[str, object] = ("no-room", None)


def _all_taken(cls: JobClass) -> bool:
    """Whether none of a checked class's candidate nodes has room for it now (each alive,
    not held and short of a free resource): then its visit can only conclude "no room",
    as :func:`~.placement.choose_node` would, without building the candidate list."""
    if cls.lic:
        return False
    c, m, d = cls.c, cls.m, cls.d
    if cls.maybe:
        for node in cls.maybe:
            if (not node.alive or node.held is not None
                    or (node.free_c >= c and node.free_m >= m and node.free_d >= d
                        and node.free_s >= 1)):
                return False
    for node in cls.fresh.values():
        if (not node.alive or node.held is not None
                or (node.free_c >= c and node.free_m >= m and node.free_d >= d
                    and node.free_s >= 1)):
            return False
    return True


class Scheduler:
    """Incremental placement policy over an in-memory picture of the farm.

    Tell it about nodes (:meth:`upsert_node`, :meth:`remove_node`), pending jobs
    (:meth:`submit`, :meth:`withdraw`, :meth:`set_priority`) and running jobs
    (:meth:`add_running`, :meth:`finish`); call :meth:`schedule` to get the jobs to start
    now. Placed jobs count as running from then on.
    """

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()
        self._nodes: dict[str, NodeState] = {}
        self._node_ver = 0
        self._elig_ver = 0
        self._next_index = 0
        self._pending: dict[str, PendingJob] = {}
        self._keys: dict[str, Key] = {}
        self._class_of: dict[str, JobClass] = {}
        self._classes: dict[Shape, JobClass] = {}
        #: classes with a pending job that some node could run, by their first job's key
        self._order: list[Entry] = []
        self._dirty: dict[int, JobClass] = {}
        self._running: dict[str, Run] = {}
        self._ends: list[tuple[float, str]] = []
        self._changes = ChangeLog(self._reset_checks)
        self._round = 0
        #: the farm's floating licence pools, and the classes that need each
        self.pools = Pools()
        self._pool_classes: dict[str, dict[int, JobClass]] = {}
        #: classes whose pending reason may have changed since :meth:`shape_waits`
        self._touched: dict[int, JobClass] = {}
        self._by_bound = BoundIndex()
        self._book = ReservationBook(self.config, self._nodes.values, self._mark_dirty,
                                     self._loosen, self.pools, self._loosen_pools,
                                     self._touch, self._by_bound)
        self._now = 0.0
        #: nodes where a job ended since the last round (reservations may move earlier)
        self._freed: dict[int, NodeState] = {}
        self.decisions = 0
        cfg = self.config
        #: who pays: usage, fair-share offsets, running limits
        self.shares = ShareBook(cfg.accounts, cfg.limits, cfg.fairshare_s, cfg.half_life_s,
                                self._rerank)
        self._limits = cfg.limits is not None and cfg.limits.any_running

    # ------------------------------------------------------------------ nodes
    def upsert_node(self, view: NodeView) -> None:
        """Add a node or update its capacity, labels or hold."""
        node = self._nodes.get(view.name)
        if node is None or node.cap != view.capacity:
            fresh = NodeState(view.capacity, self._next_index, view.held_reason)
            self._next_index += 1
            if node is not None:
                for run in node.runs.values():
                    run.node = fresh
                    fresh.add_run(run)
                self._book.drop(list(node.holds))
                node.alive = False
                self._by_bound.remove(node)
            self._nodes[view.name] = fresh
            self._by_bound.add(fresh)
            self._node_ver += 1
            self._loosen(fresh)
            return
        if node.held != view.held_reason:
            was_held = node.held is not None
            node.held = view.held_reason
            if node.held is not None:
                self._book.drop(list(node.holds))
                if was_held:  # only the words changed: classes that quote them
                    for cls in self._classes.values():
                        if cls.block[1] is node:
                            self._touch(cls)
            elif was_held:
                self._loosen(node)

    def remove_node(self, name: str) -> list[str]:
        """Forget a node (lost or gone); returns the ids of the jobs that were on it.

        The caller decides what happens to those jobs (re-submit them as pending or
        fail them); the policy no longer counts them as running.
        """
        node = self._nodes.pop(name, None)
        if node is None:
            return []
        node.alive = False
        self._by_bound.remove(node)
        self._book.drop(list(node.holds))
        for job_id in node.runs:
            run = self._running.pop(job_id, None)
            if run is not None:
                self._stop_run(run, None)
            self.pools.remove_run(job_id)  # the feed counts what Redis says they hold
        self._node_ver += 1
        return sorted(node.runs)

    def node_names(self) -> list[str]:
        """Names of the nodes the policy knows."""
        return sorted(self._nodes)

    def capacities(self) -> list[Capacity]:
        """Total capacity of every known node."""
        return [n.cap for n in self._nodes.values()]

    # ------------------------------------------------------------------ licence pools
    def set_pools(self, views: Iterable[PoolView]) -> None:
        """Tell the farm's floating licence pools: what each may hand out in all now.
        A pool that shrank drops the reservations that no longer fit in it."""
        views = list(views)
        shrank = any(v.limit < self.pools.limit(v.name) for v in views)
        loosened = self.pools.set(views)
        if shrank:
            self._book.revalidate_pools()
        if loosened:
            self._loosen_pools(dict.fromkeys(loosened, 1))

    def pool_held(self) -> dict[str, int]:
        """Licences of each pool the jobs the policy counts as running hold."""
        return self.pools.held()

    def pool_waiting(self) -> dict[str, int]:
        """Pending jobs that need each pool."""
        out: dict[str, int] = {}
        for name, classes in self._pool_classes.items():
            waiting = sum(len(cls.queue) for cls in classes.values())
            if waiting:
                out[name] = waiting
        return out

    def _loosen_pools(self, names: Mapping[str, int]) -> None:
        """Licences of these pools may be free now: look again at the classes that need
        them, on every node they may run on."""
        for name in names:
            for cls in self._pool_classes.get(name, {}).values():
                if cls.queue:
                    cls.checked = False
                    self._dirty[cls.uid] = cls

    # ------------------------------------------------------------------ jobs
    def submit(self, job: PendingJob) -> None:
        """Queue a pending job (a job already known is replaced)."""
        if job.id in self._pending:
            self.withdraw(job.id)
        self.finish(job.id)
        shape = shape_of(job)
        cls = self._classes.get(shape)
        if cls is None:
            cls = JobClass(shape, job.demand, job.time_limit_s, len(self._classes) + 1,
                           job.account, job.user)
            bucket = self.shares.bucket(job.account, job.user)
            cls.bucket, cls.offset = bucket, bucket.offset
            bucket.classes[cls.uid] = cls
            self._classes[shape] = cls
            for name in cls.pool:
                self._pool_classes.setdefault(name, {})[cls.uid] = cls
            if self._elig_ver == self._node_ver:
                self._set_eligible(cls)
        old_head = cls.head
        key = self._order_key(job)
        self._pending[job.id] = job
        self._keys[job.id] = key
        self._class_of[job.id] = cls
        cls.push(key, job.id)
        self.shares.pending_changed(self._bucket(cls), 1)
        if old_head is None or key < old_head[0]:
            self._head_changed(cls)

    @staticmethod
    def _bucket(cls: JobClass) -> Bucket:
        bucket = cls.bucket
        assert isinstance(bucket, Bucket)
        return bucket

    def _order_key(self, job: PendingJob) -> Key:
        cfg = self.config
        return order_key(job, cfg.aging_s_per_priority, cfg.size_credit_s_per_core)

    def withdraw(self, job_id: str) -> bool:
        """Remove a pending job (cancelled, or taken elsewhere). True if it was pending."""
        job = self._pending.pop(job_id, None)
        if job is None:
            return False
        key = self._keys.pop(job_id)
        cls = self._class_of.pop(job_id)
        was_head = cls.head is not None and cls.head[1] == job_id
        cls.remove(key, job_id)
        self.shares.pending_changed(self._bucket(cls), -1)
        self._book.drop_job(cls, job_id)
        if was_head:
            self._head_changed(cls)
        return True

    def set_priority(self, job_id: str, priority: int) -> bool:
        """Change a pending job's priority. True if the job is pending here."""
        job = self._pending.get(job_id)
        if job is None:
            return False
        if job.priority == priority:
            return True
        cls = self._class_of[job_id]
        old_head = cls.head
        new = PendingJob(job.id, priority, job.seq, job.demand, job.time_limit_s, job.submitted_at)
        self._pending[job_id] = new
        cls.remove(self._keys[job_id], job_id)
        key = self._order_key(new)
        self._keys[job_id] = key
        cls.push(key, job_id)
        self._book.drop_job(cls, job_id)
        if cls.head != old_head or (old_head is not None and old_head[1] == job_id):
            self._head_changed(cls)
        return True

    def add_running(self, job: RunningJob) -> None:
        """Account for a job that already holds resources on a node."""
        node = self._nodes.get(job.node)
        if node is None or job.id in self._running:
            return
        self.withdraw(job.id)
        limit = job.time_limit_s
        end = job.started_at + (limit if limit is not None else self.config.unlimited_runtime_s)
        dem = job.demand
        run = Run(job.id, node, dem.cores, dem.memory_mb, dem.disk_mb, dict(dem.licenses),
                  max(end, self._now), _FIRST, dict(dem.pool),
                  self.shares.bucket(job.account, job.user))
        self._start_run(run, job.started_at)
        self._book.revalidate(node)
        if run.pool:
            self._book.revalidate_pools()

    def finish(self, job_id: str, at: float | None = None) -> bool:
        """A running job ended (any way), at ``at`` if known (else at the last round):
        its resources are free again, and its usage is counted up to then."""
        run = self._running.pop(job_id, None)
        if run is None:
            return False
        self._stop_run(run, at)
        if run.pool:
            self.pools.remove_run(job_id)
            self._book.drop_pool_holds(run.pool, self._now)
            self._loosen_pools(run.pool)
        node = run.node
        if node.alive:
            node.remove_run(job_id)
            self._loosen(node)
            if self._book.count:
                self._freed[node.index] = node
        return True

    def is_pending(self, job_id: str) -> bool:
        """Whether the job is queued here."""
        return job_id in self._pending

    def is_running(self, job_id: str) -> bool:
        """Whether the job holds resources on a node here."""
        return job_id in self._running

    def running_on(self, name: str) -> list[str]:
        """Ids of the jobs holding resources on a node."""
        node = self._nodes.get(name)
        return sorted(node.runs) if node else []

    # ------------------------------------------------------------------ decisions
    def schedule(self, now: float) -> list[Placement]:
        """One dispatch round at time ``now``: the jobs to start, in dispatch order."""
        self._now = now
        self._round += 1
        self.shares.advance(now)
        self._extend_overruns(now)
        if self._elig_ver != self._node_ver:
            self._refresh_eligibility()
        if self._freed:
            if self._book.count:
                self._book.advance(list(self._freed.values()), now)
            self._freed.clear()
        if self.config.backfill is BackfillMode.NONE:
            placements = self._schedule_strict(now)
        else:
            placements = self._schedule_backfill(now)
        self.decisions += len(placements)
        return placements

    def _schedule_strict(self, now: float) -> list[Placement]:
        """Strict order (baseline): stop at the first job that cannot start."""
        placements = []
        self._changes.wake(_ignore, _FIRST)  # notes loosened nodes on the classes
        i = 0  # the classes before it are at a limit: they wait out of the way
        while i < len(self._order):
            cls = self._order[i][3]
            if self._limited(cls):
                i += 1
                continue
            job = self._pending[cls.queue[0][1]]
            node = self._try_place(cls, job, now, holds=False)
            if node is None:
                for _, _, _, other in self._order[i + 1:]:
                    if other.block[0] not in ("order", "limit"):
                        other.block = ("order", None)
                        self._touch(other)
                break
            self._start(cls, job, node, now)
            placements.append(Placement(job.id, node.name, False))
        return placements

    def _limited(self, cls: JobClass) -> bool:
        """Whether one more job of ``cls`` would break a running limit of its user or
        account; if so it waits on that limit (parked, without a reservation) until one
        of their jobs ends."""
        if not self._limits:
            return False
        hit = self._bucket(cls).limited(cls)
        if hit is None:
            return False
        tally, why = hit
        tally.parked[cls.uid] = cls
        if cls.block != ("limit", why):
            cls.block = ("limit", why)
            self._touch(cls)
        if cls.holds:
            self._book.drop(list(cls.holds.values()))
        return True

    def _schedule_backfill(self, now: float) -> list[Placement]:
        use_holds = self.config.backfill is BackfillMode.RESERVATION
        book = self._book
        max_res = self.config.max_reservations
        work: list[Entry] = []
        rnd = self._round

        def want(cls: JobClass, after: Key) -> None:
            entry = cls.entry
            if entry is not None and cls.in_round != rnd and (entry[0], entry[1]) > after:
                cls.in_round = rnd
                heapq.heappush(work, entry)

        changes = self._changes
        for cls in self._dirty.values():  # want(cls, _FIRST), then one heapify
            entry = cls.entry
            if entry is not None and cls.in_round != rnd:
                cls.in_round = rnd
                work.append(entry)
        self._dirty.clear()
        changes.wake_into(work, rnd, _FIRST, heap=False)
        heapq.heapify(work)
        placements: list[Placement] = []
        touched = self._touched
        limits = self._limits
        pop = heapq.heappop
        while work:
            entry = pop(work)
            cls = entry[3]
            if cls.entry is not entry:
                continue
            key = (entry[0], entry[1])
            if limits and self._limited(cls):
                node = None
            elif cls.checked and not cls.pool and _all_taken(cls):
                # the common visit under a backlog: the nodes that woke it were taken by
                # better-ranked classes this round; what _try_place would conclude
                cls.block = _NO_ROOM
                cls.maybe = []
                cls.fresh.clear()
                touched[cls.uid] = cls
                if use_holds:
                    held = book.all
                    if len(held) >= max_res and held[-1].key <= key:
                        continue  # ensure's quick exit: nothing changed, nothing to wake
                node = None
            else:
                job = self._pending[cls.queue[0][1]]
                node = self._try_place(cls, job, now, holds=use_holds)
            if node is None:
                if use_holds and cls.block[0] != "limit":
                    held = book.all
                    if len(held) < max_res or held[-1].key > key:  # ensure's quick exit
                        book.ensure(cls, now)
            else:
                first = self._order[0]
                backfill = (first[0], first[1]) < key
                self._start(cls, job, node, now)
                placements.append(Placement(job.id, node.name, backfill))
                if cls.entry is not None:
                    heapq.heappush(work, cls.entry)
            if self._dirty:  # checked inline: this loop runs once per class visit
                self._wake_dirty(want, key)
            if changes.mark != len(changes.log):
                changes.wake_into(work, rnd, key, heap=True)
        return placements

    def _wake_dirty(self, want: Want, after: Key) -> None:
        """Queue for a visit every class whose first job or reservation changed."""
        if self._dirty:
            for cls in self._dirty.values():
                want(cls, after)
            self._dirty.clear()

    def unplace(self, job_id: str, job: PendingJob | None = None) -> None:
        """Undo a placement the caller could not carry out; optionally queue the job again."""
        self.finish(job_id)
        if job is not None:
            self.submit(job)

    # ------------------------------------------------------------------ explanations
    def why_pending(self, job_id: str) -> PendingReason | None:
        """Why a pending job has not started, or None if it is not pending here."""
        if job_id not in self._pending:
            return None
        cls = self._class_of[job_id]
        if self._elig_ver != self._node_ver:
            self._refresh_eligibility()
        return why(cls, job_id, self._now, self.pools)

    def reasons(self) -> Iterator[tuple[str, PendingReason]]:
        """``(job id, reason)`` for every pending job."""
        for job_id in list(self._pending):
            reason = self.why_pending(job_id)
            if reason is not None:
                yield job_id, reason

    def shape_waits(self) -> dict[str, ShapeWait | None]:
        """Why the jobs of each request shape wait, for the shapes whose answer may have
        changed since the last call, by shape name (None: no job of that shape pending).
        Costs what changed, not the number of pending jobs; shapes waiting for pool
        licences are always included (their words quote the pools' counts)."""
        if self._elig_ver != self._node_ver:
            self._refresh_eligibility()
        touched, self._touched = self._touched, {}
        for classes in self._pool_classes.values():
            for cls in classes.values():
                if cls.block[0] == "licenses":
                    touched[cls.uid] = cls
        return {cls.name: shape_wait(cls, self.pools) if cls.queue else None
                for cls in touched.values()}

    def reservations(self) -> list[Reservation]:
        """Every reservation currently held, for display and audits."""
        out = []
        for node in self._nodes.values():
            for h in node.holds:
                out.append(Reservation(h.job_id, node.name, h.start, h.end,
                                       self._pending[h.job_id].demand))
        return out

    def never_fits(self, demand: Demand) -> str | None:
        """Why no known node could ever run ``demand``, or None."""
        return never_fits_reason(demand, self.capacities())

    # ------------------------------------------------------------------ classes
    def _set_eligible(self, cls: JobClass) -> None:
        """Which nodes can run ``cls``: computed once per group of classes with the same
        request, and listed in the node→groups index."""
        changes = self._changes
        group = changes.group_of(cls)
        if group.epoch != changes.epoch:
            dem = cls.demand
            group.eligible = sorted(
                (n for n in self._nodes.values() if shortfall(dem, n.cap) is None),
                key=lambda n: n.index)
            group.eligible_set = {n.index for n in group.eligible}
            group.never = None if group.eligible else never_fits_reason(dem,
                                                                        self.capacities())
            changes.index(group)
        cls.eligible, cls.eligible_set, cls.never = (group.eligible, group.eligible_set,
                                                     group.never)
        cls.checked = False
        self._touch(cls)

    def _refresh_eligibility(self) -> None:
        """The set of nodes changed: recompute which nodes can run which class."""
        self._changes.reset_index()
        for cls in self._classes.values():
            self._set_eligible(cls)
            self._reorder(cls)
            self._dirty[cls.uid] = cls
        self._elig_ver = self._node_ver

    def _reorder(self, cls: JobClass) -> None:
        """Put ``cls`` at the place its first job's key says (or take it out)."""
        entry = cls.entry
        if entry is not None:
            i = bisect_left(self._order, entry)
            del self._order[i]
            cls.entry = None
        head = cls.head
        group = cls.group
        if head is not None and cls.never is None and (cls.eligible or cls.uid < 0):
            rank = cls.rank(head[0])
            cls.entry = (rank[0], rank[1], cls.uid, cls)
            insort(self._order, cls.entry)
            if group is not None:
                group.active[cls.uid] = cls
        elif group is not None:
            group.active.pop(cls.uid, None)

    def _touch(self, cls: JobClass) -> None:
        """``cls``'s pending reason may have changed."""
        self._touched[cls.uid] = cls

    def _mark_dirty(self, cls: JobClass) -> None:
        """``cls`` lost a reservation or its head changed: visit it next round."""
        self._dirty[cls.uid] = cls

    def _head_changed(self, cls: JobClass) -> None:
        """The first job of a class changed: re-check it from scratch next round."""
        cls.checked = False
        cls.block = ("new", None)
        self._reorder(cls)
        self._dirty[cls.uid] = cls
        self._touched[cls.uid] = cls

    # ------------------------------------------------------------------ placing
    def _try_place(
        self, cls: JobClass, job: PendingJob, now: float, holds: bool
    ) -> NodeState | None:
        """The node ``job`` (first of ``cls``) starts on now, or None (see :func:`choose_node`;
        its licences of the farm's pools first: :func:`pools_allow`)."""
        own = self._keys[job.id]
        key = (own[0] - cls.offset, own[1]) if cls.offset else own  # cls.rank, inlined
        self._touched[cls.uid] = cls
        if cls.pool and not pools_allow(cls, key, self.pools, now, holds):
            cls.checked = False  # looked at in full once the licences are free
            cls.fresh.clear()
            return None
        node, cls.maybe = choose_node(cls, key, self._changes.candidates(cls), now, holds)
        cls.checked = True
        cls.fresh.clear()
        return node

    def _loosen(self, node: NodeState) -> None:
        self._changes.loosen(node)

    def _reset_checks(self) -> None:
        """The loosen log was cleared: check every class against every node once."""
        for cls in self._classes.values():
            cls.checked = False
            self._dirty[cls.uid] = cls

    def _start(self, cls: JobClass, job: PendingJob, node: NodeState, now: float) -> None:
        own = self._keys.pop(job.id)
        del self._pending[job.id]
        del self._class_of[job.id]
        cls.remove(own, job.id)
        key = cls.rank(own)
        bucket = self._bucket(cls)
        self.shares.pending_changed(bucket, -1)
        self._book.pass_on(cls, job.id, node)
        limit = job.time_limit_s
        end = now + (limit if limit is not None else self.config.unlimited_runtime_s)
        self._start_run(Run(job.id, node, cls.c, cls.m, cls.d, cls.lic, end, key, cls.pool,
                            bucket))
        cls.block = ("new", None)
        self._touched[cls.uid] = cls
        self._reorder(cls)
        if node.holds:
            self._book.revalidate(node, after=key)
        if cls.pool and self.pools.holds:
            self._book.revalidate_pools(after=key)

    def _start_run(self, run: Run, since: float | None = None) -> None:
        run.node.add_run(run)
        self.pools.add_run(run)
        self._running[run.job_id] = run
        heapq.heappush(self._ends, (run.end, run.job_id))
        bucket = run.bucket
        assert isinstance(bucket, Bucket)
        self.shares.charge(bucket, run.units, 1, since)
        for tally in bucket.tallies:
            tally.add(run.c, run.pool, 1)

    def _stop_run(self, run: Run, at: float | None) -> None:
        """Stop counting a run that ended at ``at`` (its usage up to then)."""
        bucket = run.bucket
        assert isinstance(bucket, Bucket)
        shares = self.shares
        if at is not None and shares.clock is not None:
            if at > shares.clock:
                shares.settle(at)
            else:  # ended before the last round: take back what was counted since
                bucket.usage = max(0.0, bucket.usage - run.units * (shares.clock - at))
        shares.charge(bucket, run.units, -1)
        for tally in bucket.tallies:
            tally.add(run.c, run.pool, -1)
            if tally.parked:
                self._wake_parked(tally)

    def _wake_parked(self, tally: Tally) -> None:
        """A job under ``tally``'s limits ended: the classes waiting on them may start."""
        for cls in tally.parked.values():
            if cls.queue:
                self._dirty[cls.uid] = cls
        tally.parked.clear()

    def _rerank(self, bucket: Bucket, old_offset: float) -> None:
        """``bucket``'s fair-share offset (or what its jobs' reasons say about its share)
        changed: put its classes and their reservations at their new ranks."""
        moved = bucket.offset != old_offset
        for cls in bucket.classes.values():
            self._touch(cls)
            if not moved:
                continue
            cls.offset = bucket.offset
            if cls.entry is not None:
                self._reorder(cls)
                self._dirty[cls.uid] = cls
            for job_id, hold in cls.holds.items():
                hold.key = cls.rank(self._keys[job_id])
        if moved and self._book.count:
            self._book.rerank()

    def _extend_overruns(self, now: float) -> None:
        """Jobs still running past their planned end are assumed to end a little later."""
        ends = self._ends
        grace = self.config.overrun_grace_s
        touched: dict[int, NodeState] = {}
        pools_moved = False
        while ends and ends[0][0] <= now:
            end, job_id = heapq.heappop(ends)
            run = self._running.get(job_id)
            if run is None or run.end != end:
                continue
            run.node.set_end(run, now + grace)
            heapq.heappush(ends, (run.end, job_id))
            touched[run.node.index] = run.node
            if run.pool:
                self.pools.moved()
                pools_moved = True
        for node in touched.values():
            if node.alive:
                self._book.revalidate(node)
        if pools_moved:
            self._book.revalidate_pools()
