"""How HFSS jobs meet the rest of simfarm: node labels, resource requests and PyEDB names.

* A worker advertises each AEDT it found as labels: ``aedt.any=yes``,
  ``aedt.<release>=yes`` (e.g. ``aedt.2025.2``) and ``aedt=<newest release>``.
  An HFSS job asks for ``aedt.any`` or one release, so it only reaches nodes that can
  run it; a cluster job (``scheduler_type`` not ``none``) asks for ``scheduler=<type>``.
* PyEDB priorities are any integer, 0 normal and higher first; simfarm's are 0-10 with
  5 normal, so PyEDB ``p`` becomes ``clamp(5 + p, 0, 10)``.
* PyEDB state names: ``pending`` is ``queued``, ``scheduled`` is ``scheduled`` once the
  job waits in a cluster queue (it has a cluster id) and ``queued`` before that.
"""

from __future__ import annotations

from collections.abc import Iterable

from simfarm.common.hfss import (
    HFSSSimulationConfig,
    SchedulerType,
    aedt_release,
    normalize_aedt_version,
)
from simfarm.common.models import Job, ResourceRequest
from simfarm.common.states import JobState

__all__ = [
    "AEDT_ANY_LABEL",
    "aedt_labels",
    "aedt_release",
    "aedt_version_label",
    "hfss_resources",
    "normalize_aedt_version",
    "pyedb_priority",
    "pyedb_status",
    "simfarm_priority",
]

AEDT_ANY_LABEL = "aedt.any"
SCHEDULER_LABEL = "scheduler"
NORMAL_PRIORITY = 5


def aedt_version_label(version: str) -> str:
    """The node label naming one AEDT release, e.g. ``aedt.2025.2``."""
    return f"aedt.{aedt_release(version)}"


def aedt_labels(versions: Iterable[str]) -> dict[str, str]:
    """Labels a node advertises for its AEDT installs (versions newest first)."""
    releases = [aedt_release(v) for v in versions if v.isdigit()]
    if not releases:
        return {}
    labels = {AEDT_ANY_LABEL: "yes", "aedt": releases[0]}
    labels.update({f"aedt.{r}": "yes" for r in releases})
    return labels


def hfss_resources(config: HFSSSimulationConfig, version: str | None = None) -> ResourceRequest:
    """What an HFSS job needs from the node that runs (or forwards) it.

    Local runs reserve the cores the machine list names for this host (a node
    given as ``-1``, "all cores", reserves one slot: set ``resources`` yourself to
    reserve more) and need AEDT (of ``version`` if given).  Cluster runs need a
    worker attached to that scheduler.
    """
    if config.scheduler_type is not SchedulerType.NONE:
        return ResourceRequest(labels={SCHEDULER_LABEL: config.scheduler_type.value})
    cores = sum(node.cores for node in config.machine_nodes if node.cores > 0)
    label = aedt_version_label(version) if version else AEDT_ANY_LABEL
    return ResourceRequest(cores=max(1, cores), labels={label: "yes"})


def simfarm_priority(pyedb: int) -> int:
    """PyEDB priority (0 normal, higher first, unbounded) → simfarm 0-10."""
    return max(0, min(10, NORMAL_PRIORITY + pyedb))


def pyedb_priority(simfarm: int) -> int:
    """simfarm 0-10 priority → PyEDB's (0 normal)."""
    return simfarm - NORMAL_PRIORITY


def pyedb_status(job: Job) -> str:
    """The job's state under PyEDB's names."""
    if job.state is JobState.PENDING:
        return "queued"
    if job.state is JobState.SCHEDULED:
        return "scheduled" if job.native_id else "queued"
    return job.state.value
