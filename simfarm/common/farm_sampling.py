"""What one sample of the farm is made of (:mod:`simfarm.common.farm_series` names the
metrics): gauges read now, counts of one bucket. The dispatcher leader records them
(:mod:`simfarm.workers.farm_sampler`); the gateway reads the same gauges for the live
``current`` value of ``GET /api/v1/stats/series``.

Cost: the nodes and the jobs they hold, 22 counts for the queue, and the jobs that
started or finished in the bucket: it follows the farm's size and activity, never the
number of jobs stored.
"""

from __future__ import annotations

from simfarm.common.farm_series import percentile, series_name
from simfarm.common.states import JobState
from simfarm.common.store import JobStore, NodeStore
from simfarm.common.store.farm_stats import FarmStatsStore
from simfarm.common.store.licenses import LicenseStore


def gauges(jobs: JobStore, nodes: NodeStore, stats: FarmStatsStore) -> dict[str, float]:
    """Cores busy/free per live node and in total; jobs pending/running per priority
    and in total; licences of each floating pool held by farm jobs and in use outside."""
    out: dict[str, float] = {}
    infos = nodes.all()
    assigned = {j.id: j for j in jobs.get_many([i for n in infos for i in n.jobs])}
    busy_total = free_total = 0
    for node in infos:
        if not node.alive:
            continue
        busy = sum(assigned[i].spec.resources.cores for i in node.jobs if i in assigned)
        free = max(0, node.cores_total - busy)
        out[series_name("cores_busy", "node", node.name)] = busy
        out[series_name("cores_free", "node", node.name)] = free
        busy_total += busy
        free_total += free
    out["cores_busy"] = busy_total
    out["cores_free"] = free_total
    for metric, state in (("jobs_pending", JobState.PENDING), ("jobs_running", JobState.RUNNING)):
        counts = stats.count_by_priority(state.value)
        for priority, count in counts.items():
            out[series_name(metric, "priority", str(priority))] = count
        out[metric] = sum(counts.values())
    out.update(licence_gauges(LicenseStore(jobs.connection, jobs.keys.prefix)))
    return out


def licence_gauges(licenses: LicenseStore) -> dict[str, float]:
    """Per floating pool (``licenses_in_use@feature=anshpc``...): held by farm jobs now,
    and in use outside the farm at the last poll of its server (one round trip)."""
    out: dict[str, float] = {}
    for name, status in licenses.statuses().items():
        out[series_name("licenses_in_use", "feature", name)] = status.held
        out[series_name("licenses_outside", "feature", name)] = status.outside
    return out


def bucket_counts(jobs: JobStore, stats: FarmStatsStore, start: float,
                  end: float) -> dict[str, float | None]:
    """Jobs finished and failed with ``start < finished_at <= end``, and the waiting
    time (submission to start) percentiles of the jobs that started in that bucket."""
    finished = stats.finished_between(start, end)
    candidates = list(dict.fromkeys(finished + jobs.ids_in_state(JobState.RUNNING)))
    waits: list[float] = []
    failed = 0
    finished_set = set(finished)
    for job_id, (state, created, started) in zip(candidates, stats.job_times(candidates),
                                                 strict=True):
        if job_id in finished_set and state == JobState.FAILED.value:
            failed += 1
        if created is not None and started is not None and start < started <= end:
            waits.append(max(0.0, started - created))
    return {
        "jobs_finished": float(len(finished)),
        "jobs_failed": float(failed),
        "wait_p50": percentile(waits, 0.50),
        "wait_p95": percentile(waits, 0.95),
    }
