"""Submit-time check for HFSS jobs: some live node must be able to run them.

PyEDB failed with an IndexError when no AEDT was installed; simfarm answers the submit
with a 422 saying what is missing (AEDT, that AEDT release, or a cluster worker).
"""

from __future__ import annotations

from simfarm.common.hfss_jobs import AEDT_ANY_LABEL, SCHEDULER_LABEL
from simfarm.common.models import JobSpec, NodeInfo
from simfarm.gateway.errors import ApiError
from simfarm.gateway.services import Services


def capable_nodes(svc: Services, spec: JobSpec) -> list[NodeInfo]:
    """Live nodes carrying every label the job asks for."""
    wanted = spec.resources.labels
    return [n for n in svc.nodes.all()
            if n.alive and all(n.labels.get(k) == v for k, v in wanted.items())]


def missing_reason(spec: JobSpec) -> str:
    """Why no node can take this HFSS job, in the user's terms."""
    labels = spec.resources.labels
    if SCHEDULER_LABEL in labels:
        return f"no worker is attached to a {labels[SCHEDULER_LABEL]} cluster"
    release = next((k[5:] for k in labels if k.startswith("aedt.") and k != AEDT_ANY_LABEL),
                   None)
    which = f"AEDT {release}" if release else "Ansys Electronics Desktop"
    return (f"no worker node has {which} installed; install it on a worker, set "
            "ANSYSEM_ROOT<ver> there, or start a worker on a machine that has it")


def check_hfss_spec(svc: Services, spec: JobSpec) -> list[NodeInfo]:
    """The nodes that can run an HFSS job, or a 422 :class:`ApiError` when none can."""
    nodes = capable_nodes(svc, spec)
    if not nodes:
        reason = missing_reason(spec)
        raise ApiError(422, "validation_error", reason,
                       [{"field": "resources.labels", "reason": reason}])
    return nodes
