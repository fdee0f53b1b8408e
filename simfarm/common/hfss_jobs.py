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

from collections.abc import Collection, Iterable, Mapping

from simfarm.common.hfss import (
    HFSSSimulationConfig,
    MachineNode,
    SchedulerType,
    aedt_release,
    normalize_aedt_version,
)
from simfarm.common.hfss_licensing import HfssLicensing, hfss_license_demand, merged
from simfarm.common.models import MAX_CORES, MAX_LICENSES, Job, JobSpec
from simfarm.common.states import JobState

__all__ = [
    "AEDT_ANY_LABEL",
    "aedt_labels",
    "aedt_release",
    "aedt_version_label",
    "hfss_defaults",
    "hfss_missing_reason",
    "hfss_routing_labels",
    "normalize_aedt_version",
    "pyedb_priority",
    "pyedb_state",
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


class HfssRequestRejected(ValueError):
    """An HFSS job whose resource request and configuration cannot both hold."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def hfss_routing_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels among ``labels`` that route an HFSS job: AEDT releases or a scheduler."""
    return {k: v for k, v in labels.items()
            if k in (SCHEDULER_LABEL, "aedt") or k.startswith("aedt.")}


def hfss_missing_reason(labels: Mapping[str, str]) -> str:
    """Why no node can take an HFSS job asking for ``labels``, in the user's terms."""
    if SCHEDULER_LABEL in labels:
        return f"no worker is attached to a {labels[SCHEDULER_LABEL]} cluster"
    release = next((k[5:] for k in labels if k.startswith("aedt.") and k != AEDT_ANY_LABEL),
                   None)
    which = f"AEDT {release}" if release else "Ansys Electronics Desktop"
    return (f"no worker node has {which} installed; install it on a worker, set "
            "ANSYSEM_ROOT<ver> there, or start a worker on a machine that has it")


def _told_cores(config: HFSSSimulationConfig, asked: int | None) -> tuple[int, list[MachineNode]]:
    """The cores a local run reserves and the machine list that tells ansysedt exactly
    that: entries left at ``-1`` ("all cores") get the cores asked for beyond what the
    other entries name (at least one each)."""
    nodes = config.machine_nodes
    named = sum(n.cores for n in nodes if n.cores > 0)
    open_ = [i for i, n in enumerate(nodes) if n.cores < 0]
    if not nodes:  # no -machinelist at all: nothing tells ansysedt a number
        return asked or 1, nodes
    if not open_:
        if asked is not None and asked != named:
            raise HfssRequestRejected("resources.cores", (
                f"{asked} cores disagree with hfss.machine_nodes, which tell ansysedt to use "
                f"{named}; give one number (or leave the machine list's cores at -1)"))
        return named, nodes
    cores = asked if asked is not None else named + len(open_)
    spare = cores - named
    if spare < len(open_):
        raise HfssRequestRejected("resources.cores", (
            f"{cores} cores cannot cover hfss.machine_nodes: they name {named} and leave "
            f"{len(open_)} at -1, which need at least one core each"))
    filled = list(nodes)
    for n, i in enumerate(open_):
        share = spare - (len(open_) - 1) if n == 0 else 1
        filled[i] = nodes[i].model_copy(update={
            "cores": share, "max_cores": max(nodes[i].max_cores, share)})
    return cores, filled


def hfss_defaults(spec: JobSpec, licensing: HfssLicensing | None = None,
                  pools: Collection[str] = ()) -> JobSpec:
    """``spec`` with what an HFSS job leaves unsaid taken from its configuration; any
    other spec unchanged. Called once, at submit (the gateway's admission).

    * labels: the routing label (``aedt.any``, or ``scheduler=<type>`` for a cluster
      run) is added unless the request names an AEDT or scheduler label itself;
    * cores of a local run: the job reserves exactly the cores ``ansysedt`` is told by
      ``-machinelist``. Entries left at ``-1`` ("all cores") are given the cores the
      request asks for (``resources.cores``, ``--cores``; 1 when unsaid), so the number
      ansysedt sees is the number reserved; a request that disagrees with explicit
      machine-list cores is refused (:class:`HfssRequestRejected`). A cluster run's cores
      come from its scheduler options (``-machinelist numcores=N``), granted by the cluster;
    * ``timeout_s``: the configuration's wall time (PyEDB's default 24:00:00);
    * licences, with ``licensing`` (the farm's ``hfss_licensing``): the solver and HPC
      licences the job's cores check out (:mod:`~simfarm.common.hfss_licensing`), for
      the features among ``pools``; names the request gives itself keep its counts.
    """
    config = spec.hfss
    if spec.kind != "hfss" or config is None:
        return spec
    given = spec.resources.model_fields_set
    labels = dict(spec.resources.labels)
    asked = spec.resources.cores if "cores" in given else None
    if config.scheduler_type is not SchedulerType.NONE:
        routing = {SCHEDULER_LABEL: config.scheduler_type.value}
        cores, machine_nodes = asked or 1, config.machine_nodes
    else:
        routing = {AEDT_ANY_LABEL: "yes"}
        cores, machine_nodes = _told_cores(config, asked)
    if not hfss_routing_labels(labels):
        labels.update(routing)
    if cores > MAX_CORES:
        raise HfssRequestRejected("resources.cores", f"at most {MAX_CORES} cores, not {cores}")
    update_resources: dict[str, object] = {"cores": cores, "labels": labels}
    if licensing is not None:
        licensed = cores if config.scheduler_type is SchedulerType.NONE else \
            config.num_cores_for_scheduler()
        demand = hfss_license_demand(licensed, licensing, spec.licensing, pools)
        too_many = {k: n for k, n in demand.items() if n > MAX_LICENSES}
        if too_many:
            name, n = next(iter(too_many.items()))
            raise HfssRequestRejected("licensing", (
                f"{cores} cores in {spec.licensing.parallel_variations if spec.licensing else 1} "
                f"parallel variation(s) need {n} {name}, more than {MAX_LICENSES}"))
        if demand:
            update_resources["licenses"] = merged(spec.resources.licenses, demand)
    resources = spec.resources.model_copy(update=update_resources)
    update: dict[str, object] = {"resources": resources}
    if machine_nodes is not config.machine_nodes:
        update["hfss"] = config.model_copy(update={"machine_nodes": machine_nodes})
    if spec.timeout_s is None:
        update["timeout_s"] = float(config.scheduler_options.walltime_seconds)
    return spec.model_copy(update=update)


def simfarm_priority(pyedb: int) -> int:
    """PyEDB priority (0 normal, higher first, unbounded) → simfarm 0-10."""
    return max(0, min(10, NORMAL_PRIORITY + pyedb))


def pyedb_priority(simfarm: int) -> int:
    """simfarm 0-10 priority → PyEDB's (0 normal)."""
    return simfarm - NORMAL_PRIORITY


def pyedb_status(job: Job) -> str:
    """The job's state under PyEDB's names (see :func:`pyedb_state`)."""
    return pyedb_state(job.state, job.native_id)


def pyedb_state(state: JobState, native_id: str | None) -> str:
    """A job's state under PyEDB's names (a held job is PyEDB's ``pending``: in the
    farm, not yet queued to start; a scheduled one is ``queued`` until its cluster job
    exists)."""
    if state is JobState.PENDING:
        return "queued"
    if state is JobState.HELD:
        return "pending"
    if state is JobState.SCHEDULED:
        return "scheduled" if native_id else "queued"
    return state.value
