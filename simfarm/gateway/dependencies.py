"""A submission's dependencies: job and sweep ids resolved to job ids (unknown ids are a
422 naming the field), and cycles through client-chosen ids refused."""

from __future__ import annotations

from collections.abc import Mapping

from simfarm.common.deps import Dependencies
from simfarm.common.errors import JobNotFound
from simfarm.gateway.auth import can_see
from simfarm.gateway.errors import ApiError, field_error
from simfarm.gateway.services import Services

MAX_GRAPH_VISITS = 100_000


def _job_visible(svc: Services, job_id: str) -> bool:
    try:
        return can_see(svc.jobs.owner_of(job_id))
    except JobNotFound:
        return False


def _sweep_visible(svc: Services, sweep_id: str) -> bool:
    sweep = svc.sweeps.get(sweep_id, svc.jobs, children=False)
    return sweep is not None and can_see(sweep.owner)


def resolve_dependencies(
    svc: Services, deps: Dependencies, *, element: int | None = None, where: str = "depends_on"
) -> dict[str, list[str]]:
    """Condition → concrete job ids. A sweep id stands for all its children, or with
    ``element`` for its child of that index. Unknown ids are a 422 naming the field."""
    resolved: dict[str, list[str]] = {}
    for condition, ids in deps.by_condition().items():
        out: list[str] = []
        for n, ident in enumerate(ids):
            field = f"{where}.{condition}.{n}"
            if _job_visible(svc, ident):
                if element is not None:
                    raise field_error(field, f"{ident} is a job; elementwise needs sweep ids")
                out.append(ident)
                continue
            if not svc.sweeps.exists(ident) or not _sweep_visible(svc, ident):
                raise field_error(field, f"unknown job or sweep id {ident}")
            children = svc.sweeps.child_ids(ident)
            if element is None:
                out.extend(children)
            elif element < len(children):
                out.append(children[element])
            else:
                raise field_error(
                    field, f"sweep {ident} has {len(children)} children; elementwise "
                    f"dependencies need at least {element + 1}")
        resolved[condition] = list(dict.fromkeys(out))
    return resolved


def check_acyclic(svc: Services, job_id: str, resolved: Mapping[str, list[str]]) -> None:
    """Reject a dependency path leading back to ``job_id`` (possible when a client picks
    ids, e.g. PyEDB job ids, or an expired id is reused)."""
    stack = [i for ids in resolved.values() for i in ids]
    seen: set[str] = set()
    while stack:
        current = stack.pop()
        if current == job_id:
            raise ApiError(422, "validation_error", f"dependency cycle: job {job_id} would "
                           "wait for itself", [{"field": "depends_on", "reason": "cycle"}])
        if current in seen or len(seen) >= MAX_GRAPH_VISITS:
            continue
        seen.add(current)
        for job in svc.jobs.get_many([current]):
            for ids in (job.dependencies or {}).values():
                stack.extend(ids)
