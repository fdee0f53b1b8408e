"""Scheduling-quality benchmark: the real placement policy against a simulated farm.

A discrete-event simulator with a virtual clock drives
:class:`simfarm.workers.dispatch.Scheduler` — the same object the dispatcher uses — with
200 heterogeneous nodes and 10,000 mixed jobs drawn from a seeded distribution. Every
placement is audited by code in this file that does not share logic with the policy.

Run: ``PYTHONPATH=. python benchmarks/bench_scheduling.py [--jobs N] [--nodes N] [--seed S]``

Three scenarios on the same seeded nodes and jobs: a fully loaded farm (jobs arrive at
the rate the farm can run them), the same with every job at one priority (first come,
first served), and an overloaded farm (1.3 times its capacity). Printed per policy mode
(``reservation`` is simfarm's; ``none`` = strict order, no backfill, and ``greedy`` =
first fit ignoring blocked jobs, are baselines run in the same process):

* utilisation: the work/capacity lower bound on the makespan divided by the makespan;
* mean and p95 wait per priority, and the longest wait of a large (>= 32 core) job;
* out-of-order starts (a job started while a higher-ordered one was pending), how many
  the audit confirmed as safe backfill, and undocumented inversions (must be 0);
* dispatch decisions (placements) per second of time spent inside the policy, from the
  fastest of ``--repeat`` identical runs (3; the simulation is deterministic);
* the busy fraction of the farm per half hour, and which jobs were still waiting when
  the last job arrived (the tail that sets the makespan).
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import math
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from simfarm.common.accounts import Account
from simfarm.common.capacity import Capacity, Demand
from simfarm.workers.dispatch import (
    BackfillMode,
    NodeView,
    PendingJob,
    PolicyConfig,
    Scheduler,
)
from simfarm.workers.dispatch.pools import PoolView

LARGE_CORES = 16
#: what the farm's operator tells the policy to assume for jobs without a time limit
UNLIMITED_ESTIMATE_S = 3600.0
#: seconds of waiting worth one priority level (the policy's default)
AGING_S: float | None = PolicyConfig().aging_s_per_priority
#: seconds of waiting each requested core is worth (the policy's default)
SIZE_CREDIT_S: float = PolicyConfig().size_credit_s_per_core
LIMITS = [900.0, 1800.0, 3600.0, 2 * 3600.0, 4 * 3600.0, 8 * 3600.0]
#: each account's fair-share offset (seconds) in the current round, read from the policy
#: after it: an input of the audit like priorities, not its own arithmetic
RANK_OFFSETS: dict[str, float] = {}
#: the fair-share weight of the next simulation (None: the policy's default)
FAIRSHARE_S: float | None = None
#: per-interval observer of the multi-user scenario: (from, to, running cores by
#: account, pending cores by account)
Observer = Callable[[float, float, dict[str, int], dict[str, int]], None]
#: every placement (job, start time, node) of every simulation run so far, hashed
#: (``--fingerprint``: a change meant to be faster must leave it as it was)
FINGERPRINT = hashlib.sha256()


@dataclass
class SimJob:
    """One job of the workload, and what happened to it."""

    id: str
    priority: int
    seq: int
    arrival: float
    duration: float
    limit: float | None
    demand: Demand
    start: float | None = None
    node: str | None = None
    #: who pays (one user per account here); "" in the single-user scenarios
    account: str = ""

    @property
    def key(self) -> tuple[float, int]:
        """The documented dispatch order, with aging, size credit and the fair-share offset
        of the job's account as the policy had it this round (docs/scheduling.md)."""
        if AGING_S is None:
            return (-float(self.priority), self.seq)
        credit = self.priority * AGING_S + self.demand.cores * SIZE_CREDIT_S
        return (self.arrival - credit - RANK_OFFSETS.get(self.account, 0.0), self.seq)


@dataclass
class SimNode:
    """A simulated node and its own (independent) accounting of what is free."""

    cap: Capacity
    free_c: int = 0
    free_m: int = 0
    free_d: int = 0
    free_s: int = 0
    free_lic: dict[str, int] = field(default_factory=dict)
    running: dict[str, SimJob] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.free_c, self.free_m, self.free_d = self.cap.cores, self.cap.memory_mb, self.cap.disk_mb
        self.free_s = self.cap.max_jobs
        self.free_lic = dict(self.cap.licenses)

    def fits(self, dem: Demand) -> bool:
        if any(self.cap.labels.get(k) != v for k, v in dem.labels.items()):
            return False
        if dem.cores > self.free_c or dem.memory_mb > self.free_m or dem.disk_mb > self.free_d:
            return False
        if self.free_s < 1:
            return False
        return all(self.free_lic.get(k, 0) >= n for k, n in dem.licenses.items())

    def take(self, job: SimJob, sign: int) -> None:
        dem = job.demand
        self.free_c -= sign * dem.cores
        self.free_m -= sign * dem.memory_mb
        self.free_d -= sign * dem.disk_mb
        self.free_s -= sign
        for k, n in dem.licenses.items():
            self.free_lic[k] = self.free_lic.get(k, 0) - sign * n


@dataclass
class SimPools:
    """The farm's licence pools as this file counts them, independently of the policy."""

    size: dict[str, int]
    used: dict[str, int] = field(default_factory=dict)
    running: dict[str, SimJob] = field(default_factory=dict)
    over_commits: list[str] = field(default_factory=list)
    licence_s: dict[str, float] = field(default_factory=dict)
    #: licence-seconds the pool offered / used while a job that needs it waited
    contended_s: dict[str, float] = field(default_factory=dict)
    contended_used: dict[str, float] = field(default_factory=dict)

    def fits(self, dem: Demand) -> bool:
        return all(self.used.get(k, 0) + n <= self.size.get(k, 0) for k, n in dem.pool.items())

    def take(self, job: SimJob, sign: int, now: float) -> None:
        if not job.demand.pool:
            return
        if sign > 0:
            if not self.fits(job.demand):
                self.over_commits.append(f"{job.id} at {now:.0f}: {dict(job.demand.pool)} with "
                                         f"{self.used} of {self.size} in use")
            self.running[job.id] = job
            for k, n in job.demand.pool.items():
                self.licence_s[k] = self.licence_s.get(k, 0.0) + n * job.duration
        else:
            self.running.pop(job.id, None)
        for k, n in job.demand.pool.items():
            self.used[k] = self.used.get(k, 0) + sign * n


# ---------------------------------------------------------------------- workload
NODE_TYPES = [  # count, cores, memory GB, labels, licences: a lab farm of mixed machines
    (70, 8, 32, {"os": "linux"}, {}),
    (50, 16, 64, {"os": "linux"}, {}),
    (20, 32, 256, {"os": "linux"}, {}),
    (25, 16, 128, {"os": "linux", "gpu": "a100"}, {}),
    (35, 8, 32, {"os": "windows", "aedt": "2024.2"}, {"hfss": 3}),
]


def make_nodes(count: int, rng: random.Random) -> list[Capacity]:
    """``count`` nodes in the proportions of NODE_TYPES (200 with the defaults)."""
    total = sum(t[0] for t in NODE_TYPES)
    nodes = []
    for kind, (n, cores, mem_gb, labels, lic) in enumerate(NODE_TYPES):
        for i in range(max(1, round(n * count / total))):
            disk = rng.choice([250_000, 500_000, 1_000_000])
            nodes.append(Capacity(f"n{kind}-{i:03d}", cores, mem_gb * 1024, disk, labels, lic,
                                  max_jobs=min(cores, 16)))
    return nodes[:count] if len(nodes) > count else nodes


def make_jobs(count: int, nodes: list[Capacity], rng: random.Random, load: float) -> list[SimJob]:
    """A seeded mix of small, medium, large, GPU and Windows/HFSS jobs arriving over a
    working day at ``load`` times what the farm can run."""
    jobs = []
    for seq in range(count):
        r = rng.random()
        median = 10 * 60.0
        if r < 0.025:  # large jobs: 16 cores (most 16-core nodes) or 32 (big nodes only)
            cores = 32 if r < 0.005 else 16
            dem = Demand(cores, cores * 4096, 20_000, {"os": "linux"})
            median = 20 * 60.0
        elif r < 0.085:
            cores = rng.choice([2, 4, 8])
            dem = Demand(cores, cores * 4096, 10_000, {"gpu": "a100"})
        elif r < 0.165:
            cores = rng.choice([1, 2, 4, 4])
            dem = Demand(cores, cores * 2048, 5_000, {"os": "windows", "aedt": "2024.2"},
                         {"hfss": 1})
        else:
            cores = rng.choices([1, 2, 4, 8], weights=[30, 25, 30, 15])[0]
            labels = {"os": "linux"} if rng.random() < 0.7 else {}
            dem = Demand(cores, cores * rng.choice([2048, 4096]), rng.choice([0, 10_000]),
                         labels)
        duration = min(3600.0, max(60.0, rng.lognormvariate(math.log(median), 0.8)))
        if rng.random() < 0.85:  # users pick a round limit with some margin
            want = duration * rng.uniform(1.05, 2.0)
            limit: float | None = next(x for x in LIMITS if x >= want)
        else:
            limit = None
        priority = rng.choices(range(11), weights=[1, 1, 2, 3, 4, 8, 4, 3, 2, 1, 1])[0]
        jobs.append(SimJob(f"j{seq:05d}", priority, seq, 0.0, duration, limit, dem))
    work = sum(j.demand.cores * j.duration for j in jobs)
    cores = sum(n.cores for n in nodes)
    window = work / (cores * load)
    arrivals = sorted(rng.uniform(0, window) for _ in jobs)
    for job, at in zip(jobs, arrivals, strict=True):
        job.arrival = at
    return jobs


def makespan_lower_bound(jobs: list[SimJob], nodes: list[Capacity],
                         licence_pools: dict[str, int] | None = None) -> tuple[float, str]:
    """No schedule can finish before this bound.

    It is the largest of: the latest arrival plus duration; for every set S of
    nodes that is exactly where some job may run, the work of all jobs confined to S
    divided by the capacity of S — in cores, in memory and in each licence's tokens;
    and for each floating licence pool, the licence-seconds of the jobs that need it
    divided by its size (after the first of them arrives).
    """
    arrival = max(j.arrival + j.duration for j in jobs)
    licences = 0.0
    for name, size in (licence_pools or {}).items():
        users = [j for j in jobs if j.demand.pool.get(name)]
        if users and size:
            first = min(j.arrival for j in users)
            licences = max(licences, first + sum(j.demand.pool[name] * j.duration
                                                 for j in users) / size)
    farm = sum(j.demand.cores * j.duration for j in jobs) / sum(n.cores for n in nodes)
    pools = 0.0
    eligible: dict[str, frozenset[str]] = {}
    for j in jobs:
        d = j.demand
        eligible[j.id] = frozenset(
            n.name for n in nodes
            if all(n.labels.get(k) == v for k, v in d.labels.items())
            and n.cores >= d.cores and n.memory_mb >= d.memory_mb
            and all(n.licenses.get(k, 0) >= c for k, c in d.licenses.items()))
    by_name = {n.name: n for n in nodes}
    for pool in set(eligible.values()):
        confined = [j for j in jobs if eligible[j.id] <= pool]
        members = [by_name[name] for name in pool]
        dims = [(lambda d: d.cores, sum(n.cores for n in members)),
                (lambda d: d.memory_mb, sum(n.memory_mb for n in members))]
        for lic in {k for j in confined for k in j.demand.licenses}:
            dims.append((lambda d, k=lic: d.licenses.get(k, 0),
                         sum(n.licenses.get(lic, 0) for n in members)))
        for size, cap in dims:
            pools = max(pools, sum(size(j.demand) * j.duration for j in confined) / cap)
    terms = (f"farm work/capacity {farm / 3600:.2f} h, tightest node pool {pools / 3600:.2f} h, "
             f"latest arrival+duration {arrival / 3600:.2f} h")
    if licences:
        terms += f", licence work/pool {licences / 3600:.2f} h"
    return max(arrival, farm, pools, licences), terms


# ---------------------------------------------------------------------- audit
class Auditor:
    """Checks every decision with code independent of the policy's."""

    def __init__(self, nodes: dict[str, SimNode], unlimited_runtime_s: float,
                 pools: SimPools | None = None) -> None:
        self.nodes = nodes
        self.unlimited = unlimited_runtime_s
        self.pools = pools or SimPools({})
        self.out_of_order = 0
        self.safe_backfill = 0
        self.prio_backfill = 0
        self.prio_aging = 0
        self.undocumented: list[str] = []

    def pools_ok(self, job: SimJob, now: float, reservations: list) -> bool:
        """Does ``job`` starting now leave every given reservation's pool licences
        intact (and are its own free)? Counted from this file's own running jobs."""
        need = job.demand.pool
        if not need:
            return True
        end = now + (job.limit if job.limit is not None else math.inf)
        held = [r for r in reservations if r.demand.pool]
        points = [now] + [r.start for r in held if now < r.start < end]
        running = [o for o in self.pools.running.values() if o is not job]
        for t in points:
            for name, size in self.pools.size.items():
                if name not in need:
                    continue
                used = sum(o.demand.pool.get(name, 0) for o in running
                           if max(now, self.planned_end(o)) > t)
                used += sum(r.demand.pool.get(name, 0) for r in held if r.start <= t < r.end)
                if used + need.get(name, 0) > size:
                    return False
        return True

    def planned_end(self, job: SimJob) -> float:
        assert job.start is not None
        return job.start + (job.limit if job.limit is not None else self.unlimited)

    def window_ok(self, node: SimNode, job: SimJob, now: float, reservations: list) -> bool:
        """Does ``job`` starting now on ``node`` leave every given reservation intact?"""
        end = now + (job.limit if job.limit is not None else math.inf)
        points = [now] + [r.start for r in reservations if now < r.start < end]
        cap = node.cap
        for t in points:
            users = [o.demand for o in node.running.values()
                     if o is job or max(now, self.planned_end(o)) > t]
            if job.id not in node.running:
                users.append(job.demand)
            users += [r.demand for r in reservations if r.start <= t < r.end]
            if (sum(u.cores for u in users) > cap.cores
                    or sum(u.memory_mb for u in users) > cap.memory_mb
                    or sum(u.disk_mb for u in users) > cap.disk_mb
                    or len(users) > cap.max_jobs):
                return False
            for name, tokens in cap.licenses.items():
                if sum(u.licenses.get(name, 0) for u in users) > tokens:
                    return False
        return True

    def pool_reservations_honourable(self, now: float, reservations: list) -> str | None:
        """None if every pool reservation can be honoured beside the running jobs and the
        other reservations, else what over-commits."""
        held = [r for r in reservations if r.demand.pool]
        for t in [now] + [r.start for r in held if r.start > now]:
            for name, size in self.pools.size.items():
                used = sum(o.demand.pool.get(name, 0) for o in self.pools.running.values()
                           if max(now, self.planned_end(o)) > t)
                used += sum(r.demand.pool.get(name, 0) for r in held if r.start <= t < r.end)
                if used > size:
                    return f"{name}: {used} of {size} promised at {t:.0f}"
        return None

    def check_round(self, now: float, started: list[SimJob], pending_heads: list[SimJob],
                    reservations: list, jobs: dict[str, SimJob]) -> None:
        """After a round: nothing ahead of a started job could have started instead, and
        every start ahead of a blocked job respects that job's reservation."""
        if self.pools.size:
            over = self.pool_reservations_honourable(now, reservations)
            if over is not None:
                self.undocumented.append(f"licence reservations over-commit a pool: {over}")
        if not started:
            return
        by_node: dict[str, list] = defaultdict(list)
        for r in reservations:
            by_node[r.node].append(r)
        latest = max(j.key for j in started)
        ahead = [h for h in pending_heads if h.key < latest]
        if not ahead:
            return
        for job in started:
            if any(h.key < job.key for h in ahead):
                self.out_of_order += 1
                assert job.node is not None
                mine = [r for r in by_node.get(job.node, []) if jobs[r.job_id].key < job.key]
                ranked = [r for r in reservations if jobs[r.job_id].key < job.key]
                if not self.window_ok(self.nodes[job.node], job, job.start or now, mine):
                    self.undocumented.append(f"{job.id} broke a reservation on {job.node}")
                elif not self.pools_ok(job, job.start or now, ranked):
                    self.undocumented.append(f"{job.id} broke a licence reservation")
                else:
                    self.safe_backfill += 1
        open_nodes = [n for n in self.nodes.values() if n.free_s > 0 and n.free_c > 0]
        for head in ahead:
            ranked = [r for r in reservations if jobs[r.job_id].key < head.key]
            if not self.pools.fits(head.demand) or not self.pools_ok(head, now, ranked):
                continue  # its licences are not free (or reserved for a job ahead of it)
            for node in open_nodes:
                if not node.fits(head.demand):
                    continue
                mine = [r for r in by_node.get(node.cap.name, [])
                        if jobs[r.job_id].key < head.key]
                if self.window_ok(node, head, now, mine):
                    self.undocumented.append(
                        f"{head.id} could start on {node.cap.name} at {now:.0f} but a "
                        f"lower-ordered job started instead")
                    break


# ---------------------------------------------------------------------- simulation
@dataclass
class Result:
    mode: str
    makespan: float
    bound: float
    bound_terms: str
    policy_s: float
    policy_wall_s: float
    wall_s: float
    decisions: int
    rounds: int
    jobs: list[SimJob]
    auditor: Auditor
    busy_core_s: float
    cores: int
    busy_while_waiting: float
    pools: SimPools = field(default_factory=lambda: SimPools({}))


def simulate(mode: BackfillMode, caps: list[Capacity], workload: list[SimJob],
             audit: bool, pools: dict[str, int] | None = None,
             accounts: tuple[Account, ...] = (), observe: Observer | None = None) -> Result:
    """Run the workload through the policy in ``mode`` with a virtual clock (and the
    farm's licence ``pools``: without them, jobs' pool licences are ignored; the
    ``accounts`` and their shares: fair share between the jobs' accounts)."""
    config = PolicyConfig(backfill=mode, unlimited_runtime_s=UNLIMITED_ESTIMATE_S,
                          accounts=accounts)
    if FAIRSHARE_S is not None:
        config = replace(config, fairshare_s=FAIRSHARE_S)
    sched = Scheduler(config)
    RANK_OFFSETS.clear()
    strip = pools is None
    jobs = {j.id: replace(j, demand=replace(j.demand, pool={}) if strip else j.demand,
                          start=None, node=None)
            for j in workload}
    run_by: dict[str, int] = defaultdict(int)
    pend_by: dict[str, int] = defaultdict(int)
    arrivals = sorted(jobs.values(), key=lambda j: (j.arrival, j.seq))
    nodes = {c.name: SimNode(c) for c in caps}
    sim_pools = SimPools(dict(pools or {}))
    if pools:
        sched.set_pools(PoolView(name, size) for name, size in pools.items())
    auditor = Auditor(nodes, config.unlimited_runtime_s, sim_pools)
    # simulator-side view of pending heads per shape, for the audit
    shapes: dict[tuple, list[tuple[tuple[float, int], str]]] = defaultdict(list)
    by_prio: dict[int, list[tuple[tuple[float, int], str]]] = defaultdict(list)

    def shape(j: SimJob) -> tuple:
        d = j.demand
        return (d.cores, d.memory_mb, d.disk_mb, tuple(sorted(d.licenses.items())),
                tuple(sorted(d.labels.items())), j.limit, j.account)

    policy_s = 0.0  # CPU time of this thread inside the policy (other agents share the cores)
    policy_wall = 0.0
    wall0 = time.perf_counter()
    t0, w0 = time.thread_time(), time.perf_counter()
    for c in caps:
        sched.upsert_node(NodeView(c))
    policy_s += time.thread_time() - t0
    policy_wall += time.perf_counter() - w0
    ends: list[tuple[float, str]] = []
    ai = 0
    rounds = 0
    makespan = 0.0
    busy = 0.0
    running_cores = 0
    pending = 0
    last = 0.0
    waited_busy = waited_cap = 0.0
    waiting: dict[str, SimJob] = {}  # pending jobs, kept only with pools
    capacity = sum(c.cores for c in caps)
    while ai < len(arrivals) or ends:
        next_arrival = arrivals[ai].arrival if ai < len(arrivals) else math.inf
        next_end = ends[0][0] if ends else math.inf
        now = min(next_arrival, next_end)
        if pools:
            for name, size in sim_pools.size.items():
                if any(j.demand.pool.get(name) for j in waiting.values()):
                    sim_pools.contended_s[name] = sim_pools.contended_s.get(name, 0.0) + (
                        now - last) * size
                    sim_pools.contended_used[name] = sim_pools.contended_used.get(
                        name, 0.0) + (now - last) * sim_pools.used.get(name, 0)
        if pending:
            waited_busy += (now - last) * running_cores
            waited_cap += (now - last) * capacity
        if observe is not None and now > last:
            observe(last, now, run_by, pend_by)
        last = now
        t0, w0 = time.thread_time(), time.perf_counter()
        while ends and ends[0][0] <= now:
            _, job_id = heapq.heappop(ends)
            job = jobs[job_id]
            assert job.node is not None
            node = nodes[job.node]
            node.take(job, -1)
            sim_pools.take(job, -1, now)
            del node.running[job_id]
            running_cores -= job.demand.cores
            run_by[job.account] -= job.demand.cores
            sched.finish(job_id, now)
            makespan = max(makespan, now)
        while ai < len(arrivals) and arrivals[ai].arrival <= now:
            job = arrivals[ai]
            ai += 1
            sched.submit(PendingJob(job.id, job.priority, job.seq, job.demand, job.limit,
                                    job.arrival, job.account, job.account))
            pending += 1
            pend_by[job.account] += job.demand.cores
            if pools:
                waiting[job.id] = job
            if audit:
                heapq.heappush(shapes[shape(job)], (job.key, job.id))
                heapq.heappush(by_prio[job.priority], (job.key, job.id))
        placements = sched.schedule(now)
        policy_s += time.thread_time() - t0
        policy_wall += time.perf_counter() - w0
        rounds += 1
        if accounts:
            RANK_OFFSETS.update({b.account: b.offset for b in sched.shares.buckets.values()})
        started = []
        for p in placements:
            job = jobs[p.job_id]
            node = nodes[p.node]
            if not node.fits(job.demand):
                auditor.undocumented.append(f"{job.id} placed on {p.node} without room")
            job.start, job.node = now, p.node
            node.take(job, +1)
            sim_pools.take(job, +1, now)
            node.running[job.id] = job
            heapq.heappush(ends, (now + job.duration, job.id))
            running_cores += job.demand.cores
            run_by[job.account] += job.demand.cores
            pend_by[job.account] -= job.demand.cores
            pending -= 1
            waiting.pop(job.id, None)
            busy += job.demand.cores * job.duration
            started.append(job)
        if audit and started:
            for q in by_prio.values():
                while q and jobs[q[0][1]].start is not None:
                    heapq.heappop(q)
            for job in started:
                above = [q[0][0] for p, q in by_prio.items() if p > job.priority and q]
                if any(k < job.key for k in above):
                    auditor.prio_backfill += 1
                elif above:
                    auditor.prio_aging += 1
            heads = []
            for q in shapes.values():
                while q and jobs[q[0][1]].start is not None:
                    heapq.heappop(q)
                if q:
                    heads.append(jobs[q[0][1]])
            auditor.check_round(now, started, heads, sched.reservations(), jobs)
    wall = time.perf_counter() - wall0
    for job in sorted(jobs.values(), key=lambda j: j.seq):
        FINGERPRINT.update(f"{job.id} {job.start!r} {job.node}\n".encode())
    never = [j for j in jobs.values() if j.start is None]
    if never:
        print(f"warning: {len(never)} jobs never started", file=sys.stderr)
    bound, terms = makespan_lower_bound(list(jobs.values()), caps, sim_pools.size)
    return Result(mode.value, makespan, bound, terms, policy_s, policy_wall, wall,
                  sched.decisions, rounds, list(jobs.values()), auditor, busy, capacity,
                  waited_busy / waited_cap if waited_cap else 1.0, sim_pools)



def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)]


PROFILE_STEP_S = 1800.0


def busy_profile(res: Result) -> list[float]:
    """Fraction of the farm's cores busy in each half hour of the run."""
    slots = [0.0] * (int(res.makespan // PROFILE_STEP_S) + 1)
    for j in res.jobs:
        if j.start is None:
            continue
        s, e = j.start, j.start + j.duration
        for k in range(int(s // PROFILE_STEP_S), int(e // PROFILE_STEP_S) + 1):
            lo, hi = max(s, k * PROFILE_STEP_S), min(e, (k + 1) * PROFILE_STEP_S)
            if hi > lo and k < len(slots):
                slots[k] += j.demand.cores * (hi - lo)
    return [b / (res.cores * PROFILE_STEP_S) for b in slots]


def tail_summary(res: Result) -> str:
    """What the run does once no job arrives any more: where the makespan goes."""
    last = max(j.arrival for j in res.jobs)
    started = [j for j in res.jobs if j.start is not None]
    waiting = [j for j in started if j.start is not None and j.start > last]
    big = [j for j in waiting if j.demand.cores >= LARGE_CORES]
    final = max(started, key=lambda j: (j.start or 0.0) + j.duration)
    assert final.start is not None
    return (f"{len(waiting)} jobs had not started ({len(big)} of >= {LARGE_CORES} cores, "
            f"{sum(j.demand.cores * j.duration for j in big) / 3600:.0f} core-h); the last "
            f"to end is {final.id} ({final.demand.cores} cores, priority {final.priority}), "
            f"submitted at {final.arrival / 3600:.2f} h, started at {final.start / 3600:.2f} h, "
            f"ran {final.duration / 60:.0f} min")


def report(res: Result) -> None:
    waits: dict[int, list[float]] = defaultdict(list)
    for j in res.jobs:
        if j.start is not None:
            waits[j.priority].append(j.start - j.arrival)
    large = [j.start - j.arrival for j in res.jobs
             if j.start is not None and j.demand.cores >= LARGE_CORES]
    a = res.auditor
    print(f"== policy mode: {res.mode}")
    print(f"   utilisation (lower bound / makespan): {res.bound / res.makespan:.3f}   "
          f"[makespan {res.makespan / 3600:.2f} h; bound = max of {res.bound_terms}; "
          f"busy cores {res.busy_core_s / (res.cores * res.makespan):.3f}]")
    print(f"   busy cores while at least one job waited: {res.busy_while_waiting:.3f}")
    print(f"   busy cores per half hour: {' '.join(f'{u:.2f}' for u in busy_profile(res))}")
    print(f"   after the last arrival: {tail_summary(res)}")
    print("   wait by priority (minutes):  prio  jobs    mean     p95")
    for prio in sorted(waits, reverse=True):
        w = waits[prio]
        print(f"                                {prio:4d} {len(w):5d} {sum(w) / len(w) / 60:7.1f} "
              f"{pct(w, 0.95) / 60:7.1f}")
    if large:
        print(f"   longest wait of a large (>= {LARGE_CORES} cores) job: {max(large) / 60:.1f} min "
              f"(mean {sum(large) / len(large) / 60:.1f} min over {len(large)} jobs)")
    print(f"   starts ahead of an earlier-ranked pending job: {a.out_of_order}, audited as "
          f"reservation-safe backfill: {a.safe_backfill}; starts while a higher-priority job "
          f"waited: {a.prio_backfill + a.prio_aging} ({a.prio_backfill} backfill, "
          f"{a.prio_aging} by aging); undocumented inversions: {len(a.undocumented)}")
    for line in a.undocumented[:5]:
        print(f"      ! {line}")
    print(f"   dispatch decisions (placements): {res.decisions} in {res.rounds} rounds; "
          f"{res.decisions / res.policy_s:,.0f} per CPU-second inside the policy, fastest run "
          f"({res.decisions / res.policy_wall_s:,.0f} per wall-second; {res.policy_s:.2f} s CPU "
          f"in the policy, {res.wall_s:.2f} s wall incl. simulator and audit)")


def run_scenario(label: str, args: argparse.Namespace, load: float,
                 one_priority: bool = False) -> list[Result]:
    """Run every mode on one seeded workload and print the comparison."""
    rng = random.Random(args.seed)
    caps = make_nodes(args.nodes, rng)
    workload = make_jobs(args.jobs, caps, rng, load)
    if one_priority:  # the same jobs, all at the default priority: first come, first served
        for job in workload:
            job.priority = 5
    print(f"### {label}: {len(caps)} nodes ({sum(c.cores for c in caps)} cores), "
          f"{len(workload)} jobs, seed {args.seed}, offered load {load} of capacity")
    results = []
    for name in args.modes.split(","):
        res = simulate(BackfillMode(name), caps, workload, audit=not args.no_audit)
        for _ in range(args.repeat - 1):
            again = simulate(BackfillMode(name), caps, workload, audit=False)
            # the simulation is deterministic: only the time spent may differ
            assert (again.makespan, again.rounds) == (res.makespan, res.rounds)
            if again.policy_s < res.policy_s:
                res.policy_s, res.policy_wall_s = again.policy_s, again.policy_wall_s
        report(res)
        results.append(res)
    main_res = results[0]
    for other in results[1:]:
        util = (main_res.bound / main_res.makespan) / (other.bound / other.makespan)
        wait = _longest_large(main_res) / max(1.0, _longest_large(other))
        print(f"ratio {main_res.mode}/{other.mode}: utilisation {util:.3f}, "
              f"large-job longest wait {wait:.3f}")
    return results


# ---------------------------------------------------------------------- licence-bound
#: the farm's floating licences in the licence-bound scenario: fewer than its cores need
LICENCE_POOLS = {"electronics_desktop": 24, "anshpc": 96}


def _licence_job(seq: int, rng: random.Random, licensed: bool) -> SimJob:
    if licensed:
        cores = rng.choice([4, 8, 12, 16])
        pool = {"electronics_desktop": 1, **({"anshpc": cores - 4} if cores > 4 else {})}
        dem = Demand(cores, cores * 2048, 0, {"os": "linux"}, {}, pool)
        median = 20 * 60.0
    else:
        cores = rng.choices([1, 2, 4, 8], weights=[30, 25, 30, 15])[0]
        dem = Demand(cores, cores * 2048, 0, {"os": "linux"})
        median = 10 * 60.0
    duration = min(3600.0, max(60.0, rng.lognormvariate(math.log(median), 0.8)))
    limit = next(x for x in LIMITS if x >= duration * rng.uniform(1.05, 2.0))
    priority = rng.choices(range(11), weights=[1, 1, 2, 3, 4, 8, 4, 3, 2, 1, 1])[0]
    return SimJob(f"l{seq:05d}", priority, seq, 0.0, duration, limit, dem)


def make_licence_jobs(count: int, nodes: list[Capacity], rng: random.Random,
                      load: float, core_load: float) -> list[SimJob]:
    """``count`` HFSS-like jobs (4-16 cores: one solver licence and one ``anshpc`` per
    core beyond 4, as hfss_licensing computes) arriving so that the licences are offered
    ``load`` times what the pools can run, mixed with plain jobs (1-8 cores, no licence)
    until the cores are offered ``core_load`` of their capacity."""
    jobs = [_licence_job(seq, rng, True) for seq in range(count)]
    window = max(sum(j.demand.pool.get(name, 0) * j.duration for j in jobs) / (size * load)
                 for name, size in LICENCE_POOLS.items())
    target = core_load * sum(n.cores for n in nodes) * window
    work = sum(j.demand.cores * j.duration for j in jobs)
    while work < target:
        job = _licence_job(len(jobs), rng, False)
        jobs.append(job)
        work += job.demand.cores * job.duration
    rng.shuffle(jobs)
    arrivals = sorted(rng.uniform(0, window) for _ in jobs)
    for seq, (job, at) in enumerate(zip(jobs, arrivals, strict=True)):
        job.arrival, job.seq, job.id = at, seq, f"l{seq:05d}"
    return jobs


def licence_utilisation(res: Result, name: str) -> float:
    """Licence-seconds of a pool in use over what it offered while it was the
    bottleneck: while at least one job that needs it waited."""
    offered = res.pools.contended_s.get(name, 0.0)
    return res.pools.contended_used.get(name, 0.0) / offered if offered else 1.0


def licence_span_utilisation(res: Result, name: str) -> float:
    """Licence-seconds used of a pool over what it could give from the first arrival of
    a job that needs it to the end of the last one (the tail included)."""
    users = [j for j in res.jobs if j.demand.pool.get(name) and j.start is not None]
    if not users:
        return 0.0
    span = max((j.start or 0.0) + j.duration for j in users) - min(j.arrival for j in users)
    return res.pools.licence_s.get(name, 0.0) / (res.pools.size[name] * span)


def window_core_utilisation(res: Result, end: float,
                            licensed: bool | None = None) -> float:
    """Busy core-seconds over the farm's core-seconds while jobs arrive (``[0, end)``),
    of every job, or only of those that need (``licensed``) or need no licence."""
    busy = sum(j.demand.cores * max(0.0, min(end, j.start + j.duration) - j.start)
               for j in res.jobs if j.start is not None and j.start < end
               and (licensed is None or bool(j.id in _LICENSED) == licensed))
    return busy / (res.cores * end)


#: ids of the licence-bound scenario's jobs that need licences (its runs with the
#: licences ignored carry no pool demand, so the workload says which they are)
_LICENSED: set[str] = set()


def licence_forbidden(jobs: list[SimJob], cores: int, end: float) -> tuple[str, float, float]:
    """What the licences forbid while jobs arrive, in a fluid model: the bottleneck
    pool is offered ``rho`` times what it can run, so at most ``1/rho`` of the core work
    of the jobs that need it fits in ``[0, end)``; the rest, over the farm's core-seconds,
    is core utilisation the licences take away. Returns (pool, rho, that fraction)."""
    loads = {name: sum(j.demand.pool.get(name, 0) * j.duration for j in jobs) / (size * end)
             for name, size in LICENCE_POOLS.items()}
    name = max(loads, key=lambda n: loads[n])
    rho = loads[name]
    work = sum(j.demand.cores * j.duration for j in jobs if j.demand.pool.get(name))
    return name, rho, work * max(0.0, 1 - 1 / rho) / (cores * end)


def run_licence_scenario(args: argparse.Namespace) -> list[tuple[str, str, bool]]:
    """The licence-bound farm: the same jobs with the pools counted and with the
    licences ignored; over-commit audited by this file's own count of the pools."""
    rng = random.Random(args.seed + 17)
    count = max(10, args.nodes // 4)
    caps = [Capacity(f"h{i:03d}", 16, 64 * 1024, 500_000, {"os": "linux"}, {}, 16)
            for i in range(count)]
    workload = make_licence_jobs(max(100, args.jobs // 10), caps, rng, args.licence_load,
                                 args.licence_core_load)
    licensed = sum(1 for j in workload if j.demand.pool)
    core_load = sum(j.demand.cores * j.duration for j in workload) / (
        sum(c.cores for c in caps) * max(j.arrival for j in workload))
    print(f"### licence-bound farm: {len(caps)} nodes ({sum(c.cores for c in caps)} cores), "
          f"pools {LICENCE_POOLS}, {len(workload)} jobs ({licensed} need licences), seed "
          f"{args.seed + 17}; licences offered {args.licence_load} of the pools, cores "
          f"{core_load:.2f} of capacity")
    counted = simulate(BackfillMode.RESERVATION, caps, workload, audit=not args.no_audit,
                       pools=LICENCE_POOLS)
    report(counted)
    ignored = simulate(BackfillMode.RESERVATION, caps, workload, audit=False)
    print("   -- the same jobs with the licences ignored (what the cores alone allow):")
    report(ignored)
    bottleneck = max(LICENCE_POOLS, key=lambda n: counted.pools.licence_s.get(n, 0.0)
                     / LICENCE_POOLS[n])
    lic_util = licence_utilisation(counted, bottleneck)
    end = max(j.arrival for j in workload)
    _LICENSED.update(j.id for j in workload if j.demand.pool)
    u_counted = window_core_utilisation(counted, end)
    u_ignored = window_core_utilisation(ignored, end)
    # What the licences forbid: core work of the jobs that need licences that ran with
    # them ignored but not with them counted, while jobs arrived.
    forbidden = (window_core_utilisation(ignored, end, True)
                 - window_core_utilisation(counted, end, True))
    pool, rho, fluid = licence_forbidden(workload, counted.cores, end)
    waits = {label: [((j.start or 0.0) - j.arrival) for j in r.jobs
                     if not workload[j.seq].demand.pool]
             for label, r in (("counted", counted), ("ignored", ignored))}
    plain = {k: sum(v) / len(v) / 60 for k, v in waits.items() if v}
    print(f"   licence utilisation while a job that needs the pool waited: "
          f"{', '.join(f'{n} {licence_utilisation(counted, n):.3f}' for n in LICENCE_POOLS)}; "
          f"over the whole span of licensed work, the tail included: "
          f"{', '.join(f'{n} {licence_span_utilisation(counted, n):.3f}' for n in LICENCE_POOLS)}")
    print(f"   over-commits found by the independent count: {len(counted.pools.over_commits)}")
    for line in counted.pools.over_commits[:5]:
        print(f"      ! {line}")
    print(f"   core utilisation while jobs arrive: {u_counted:.3f} with licences counted, "
          f"{u_ignored:.3f} with them ignored; the licences kept {forbidden:.3f} of the "
          f"cores from jobs that need them ({pool} is offered {rho:.2f} times what it can "
          f"run: {fluid:.3f} in a fluid model)")
    print(f"   mean wait of jobs without licences: {plain.get('counted', 0):.1f} min counted, "
          f"{plain.get('ignored', 0):.1f} min ignored")
    return [
        ("zero licence over-commit (independent audit)",
         f"{len(counted.pools.over_commits)} over-commits", not counted.pools.over_commits),
        ("licence utilisation", f"{lic_util:.3f} >= 0.95 of its bound ({bottleneck})",
         lic_util >= 0.95),
        ("core utilisation", f"{u_counted:.4f} >= {u_ignored - forbidden:.4f} while jobs "
         f"arrive (licences ignored {u_ignored:.4f} minus the {forbidden:.4f} they forbid)",
         u_counted >= u_ignored - forbidden - 1e-9),
        ("undocumented inversions", f"{len(counted.auditor.undocumented)}",
         not counted.auditor.undocumented),
    ]


# ---------------------------------------------------------------------- multi-user
#: the multi-user scenario's accounts and shares; "burst" submits most of the work at once
FAIR_ACCOUNTS = {"burst": 10.0, "cfd": 30.0, "emc": 25.0, "rf": 20.0, "thermal": 15.0}
BURST_FRACTION = 0.65


def make_fair_jobs(count: int, nodes: list[Capacity], rng: random.Random,
                   load: float) -> list[SimJob]:
    """The seeded job mix, split between five accounts: ``BURST_FRACTION`` of the jobs
    are the burst account's, all submitted at t = 0; the others keep their arrivals over
    the day and go to the four light accounts in proportion to their shares."""
    jobs = make_jobs(count, nodes, rng, load)
    light = [a for a in FAIR_ACCOUNTS if a != "burst"]
    weights = [FAIR_ACCOUNTS[a] for a in light]
    for job in jobs:
        if rng.random() < BURST_FRACTION:
            job.account, job.arrival = "burst", 0.0
        else:
            job.account = rng.choices(light, weights)[0]
    return jobs


class ShareMeter:
    """Core-seconds each account received and was entitled to while the burst account
    had jobs waiting (contention): entitled by water-filling each instant's demand
    (running plus pending cores) over the farm's cores in proportion to the shares, so
    an account asking for less than its share is entitled to what it asks."""

    def __init__(self, cores: int) -> None:
        self.cores = cores
        self.received: dict[str, float] = defaultdict(float)
        self.entitled: dict[str, float] = defaultdict(float)
        self.span = 0.0

    def __call__(self, t0: float, t1: float, running: dict[str, int],
                 pending: dict[str, int]) -> None:
        if pending.get("burst", 0) <= 0:
            return
        dt = t1 - t0
        self.span += dt
        demand = {a: running.get(a, 0) + pending.get(a, 0) for a in FAIR_ACCOUNTS}
        for account, cores in water_fill(demand, FAIR_ACCOUNTS, self.cores).items():
            self.entitled[account] += cores * dt
            self.received[account] += running.get(account, 0) * dt

    def jain(self) -> float:
        """Jain's fairness index of received over entitled, over the accounts entitled
        to anything: 1 when each got the same fraction of its entitlement."""
        x = [self.received[a] / self.entitled[a] for a in FAIR_ACCOUNTS if self.entitled[a]]
        return sum(x) ** 2 / (len(x) * sum(v * v for v in x)) if x else 1.0


def water_fill(demand: dict[str, int], shares: dict[str, float],
               capacity: float) -> dict[str, float]:
    """Max-min fair split of ``capacity`` by ``shares``, no one above its demand."""
    out = {a: 0.0 for a in demand}
    left = {a for a, d in demand.items() if d > 0}
    free = float(capacity)
    while left and free > 1e-9:
        total = sum(shares[a] for a in left)
        level = free / total
        capped = {a for a in left if demand[a] - out[a] <= level * shares[a]}
        if not capped:
            for a in left:
                out[a] += level * shares[a]
            break
        for a in capped:
            free -= demand[a] - out[a]
            out[a] = float(demand[a])
        left -= capped
    return out


def run_fairshare_scenario(args: argparse.Namespace) -> list[tuple[str, str, bool]]:
    """Five accounts with unequal shares, one submitting most of the work in one burst:
    fair share against the same policy without it, and the light accounts' waits
    against an empty farm."""
    rng = random.Random(args.seed + 29)
    caps = make_nodes(args.nodes, rng)
    workload = make_fair_jobs(args.jobs, caps, rng, args.load)
    cores = sum(c.cores for c in caps)
    accounts = tuple(Account(name=a, shares=s) for a, s in FAIR_ACCOUNTS.items())
    counts = {a: sum(1 for j in workload if j.account == a) for a in FAIR_ACCOUNTS}
    print(f"### multi-user farm: {len(caps)} nodes ({cores} cores), {len(workload)} jobs, "
          f"seed {args.seed + 29}; accounts (shares: jobs) "
          + ", ".join(f"{a} ({FAIR_ACCOUNTS[a]:g}: {counts[a]})" for a in FAIR_ACCOUNTS)
          + "; burst's jobs all at t = 0")
    runs = {}
    for label, weight in (("fair share", None), ("without fair share", 0.0)):
        meter = ShareMeter(cores)
        res = _simulate_accounts(caps, workload, accounts, meter, weight,
                                 audit=not args.no_audit and weight is None)
        for _ in range(args.repeat - 1 if weight is None else 0):
            again = _simulate_accounts(caps, workload, accounts, None, weight, audit=False)
            if again.policy_s < res.policy_s:
                res.policy_s, res.policy_wall_s = again.policy_s, again.policy_wall_s
        runs[label] = (res, meter)
    light = [j for j in workload if j.account != "burst"]
    alone = simulate(BackfillMode.RESERVATION, caps, light, audit=False, accounts=accounts)
    empty = {a: pct(_waits(alone, a), 0.95) for a in FAIR_ACCOUNTS if a != "burst"}
    longest = max((j.limit for j in workload if j.limit is not None), default=0.0)
    for label, (res, meter) in runs.items():
        print(f"== {label}" + ("" if label == "fair share" else
                                " (dispatch_fairshare_s = 0: aging and size credit only)"))
        print(f"   contention (burst has jobs waiting): {meter.span / 3600:.2f} h; per account, "
              "core-hours received / entitled, and share of what the farm ran:")
        ran = sum(meter.received.values()) or 1.0
        for a in FAIR_ACCOUNTS:
            ent = meter.entitled[a]
            print(f"      {a:8s} share {FAIR_ACCOUNTS[a] / sum(FAIR_ACCOUNTS.values()):5.0%}  "
                  f"received {meter.received[a] / 3600:8.1f} / entitled {ent / 3600:8.1f} "
                  f"core-h ({meter.received[a] / ent if ent else 1:.3f}); "
                  f"{meter.received[a] / ran:5.1%} of the farm")
        print(f"   Jain's fairness index of received/entitled: {meter.jain():.3f}")
        for a in empty:
            w = _waits(res, a)
            print(f"   {a:8s} wait p95 {pct(w, 0.95) / 60:7.1f} min, mean "
                  f"{sum(w) / max(1, len(w)) / 60:6.1f} min (empty farm: p95 "
                  f"{empty[a] / 60:.1f} min)")
        print(f"   utilisation (lower bound / makespan): {res.bound / res.makespan:.3f}; "
              f"undocumented inversions: {len(res.auditor.undocumented)}; "
              f"{res.decisions / res.policy_s:,.0f} decisions per CPU-second inside the policy")
        for line in res.auditor.undocumented[:5]:
            print(f"      ! {line}")
    res, meter = runs["fair share"]
    jain = meter.jain()
    util = res.bound / res.makespan
    rate = res.decisions / res.policy_s
    worst = max(empty, key=lambda a: pct(_waits(res, a), 0.95) - (2 * empty[a] + longest))
    p95 = pct(_waits(res, worst), 0.95)
    bound = 2 * empty[worst] + longest
    return [
        ("Jain's index during contention", f"{jain:.3f} >= 0.95", jain >= 0.95),
        ("light accounts' p95 wait", f"{p95 / 60:.1f} min ({worst}, the worst) <= 2 x "
         f"{empty[worst] / 60:.1f} min on an empty farm + {longest / 60:.0f} min (the longest "
         "time limit)", p95 <= bound),
        ("utilisation", f"{util:.3f} >= 0.95 of the bound", util >= 0.95),
        ("undocumented inversions", f"{len(res.auditor.undocumented)}",
         not res.auditor.undocumented),
        ("decisions", f"{rate:,.0f} >= 5,000 per CPU-second", rate >= 5000),
    ]


def _simulate_accounts(caps: list[Capacity], workload: list[SimJob],
                       accounts: tuple[Account, ...], meter: ShareMeter | None,
                       weight: float | None, audit: bool) -> Result:
    global FAIRSHARE_S
    FAIRSHARE_S = weight
    try:
        return simulate(BackfillMode.RESERVATION, caps, workload, audit=audit,
                        accounts=accounts, observe=meter)
    finally:
        FAIRSHARE_S = None


def _waits(res: Result, account: str) -> list[float]:
    return [j.start - j.arrival for j in res.jobs if j.account == account and j.start is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--load", type=float, default=1.0,
                        help="offered load while jobs arrive, as a multiple of capacity")
    parser.add_argument("--overload", type=float, default=1.3,
                        help="offered load of the second, overloaded scenario (0 = skip)")
    parser.add_argument("--licence-load", type=float, default=1.3,
                        help="offered load of the licence-bound scenario, as a multiple of "
                             "what its licence pools can run (0 = skip)")
    parser.add_argument("--licence-core-load", type=float, default=1.0,
                        help="offered core load of the licence-bound scenario")
    parser.add_argument("--fairshare", type=int, default=1,
                        help="run the multi-user scenario (0 = skip)")
    parser.add_argument("--modes", default="reservation,none,greedy")
    parser.add_argument("--no-audit", action="store_true")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per mode; decisions per second come from the fastest "
                             "(as timeit does: the slower runs measure the machine's noise)")
    parser.add_argument("--fingerprint", action="store_true",
                        help="print a hash of every placement (job, start time, node) of "
                             "every simulation: equal before and after a change that must "
                             "not change any decision")
    args = parser.parse_args(argv)
    results = run_scenario("fully loaded farm", args, args.load)
    fifo = run_scenario("fully loaded farm, every job at priority 5", args, args.load, True)
    if args.overload:
        over = run_scenario("overloaded farm", args, args.overload)
        bad = [r.mode for r in over if r.auditor.undocumented]
        print(f"overloaded farm: undocumented inversions in {bad or 'no mode'}")
    checks = []
    for name, res in (("mixed priorities", results[0]), ("one priority", fifo[0])):
        rate = res.decisions / res.policy_s
        util = res.bound / res.makespan
        checks += [
            (name, f"utilisation {util:.3f} >= 0.95 of the bound", util >= 0.95),
            (name, f"{len(res.auditor.undocumented)} undocumented inversions",
             not res.auditor.undocumented),
            (name, f"{rate:,.0f} >= 5,000 decisions per CPU-second", rate >= 5000),
        ]
    lines = [f"target, fully loaded farm, {name}, '{results[0].mode}': {text}: "
             + ("met" if ok else "NOT met") for name, text, ok in checks]
    if args.licence_load:
        licence_checks = run_licence_scenario(args)
        checks += licence_checks
        lines += [f"target, licence-bound farm, {name}: {text}: " + ("met" if ok else "NOT met")
                  for name, text, ok in licence_checks]
    if args.fairshare:
        fair_checks = run_fairshare_scenario(args)
        checks += fair_checks
        lines += [f"target, multi-user farm, {name}: {text}: " + ("met" if ok else "NOT met")
                  for name, text, ok in fair_checks]
    for line in lines:
        print(line)
    if args.fingerprint:
        print(f"fingerprint of every placement: {FINGERPRINT.hexdigest()}")
    return 0 if all(ok for _, _, ok in checks) else 1


def _longest_large(res: Result) -> float:
    return max((j.start - j.arrival for j in res.jobs
                if j.start is not None and j.demand.cores >= LARGE_CORES), default=0.0)


if __name__ == "__main__":
    sys.exit(main())
