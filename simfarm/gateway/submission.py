"""Creating jobs with what the plain store does not check: dependencies (ids resolved,
unknown ids and cycles rejected, the job held until they are met)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simfarm.common.deps import Dependencies
from simfarm.common.errors import JobNotFound
from simfarm.common.models import Job, JobSpec
from simfarm.common.store.holds import HOLD_DEPENDENCIES
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


def check_files(svc: Services, spec: JobSpec, where: str = "files") -> None:
    """A staged job's project archive must be on the gateway already."""
    files = spec.files
    if files is None or files.mode != "staged" or files.archive is None:
        return
    if not svc.blobs.exists(files.archive):
        raise field_error(f"{where}.archive", "no such blob on the gateway: upload the project "
                          "first (PUT /api/v1/blobs/<sha256>)")
    svc.blob_index.touch(files.archive)


def create_job(
    svc: Services,
    spec: JobSpec,
    *,
    job_id: str | None = None,
    idempotency_key: str | None = None,
    owner: str | None = None,
    extra: Mapping[str, Any] | None = None,
    resolved: Mapping[str, list[str]] | None = None,
) -> tuple[Job, bool]:
    """Store a job; one with dependencies starts held until they are met.
    ``resolved`` overrides the spec's dependencies (sweep children, element-wise)."""
    check_files(svc, spec)
    fields = dict(extra or {})
    if resolved is None and spec.depends_on is not None and not spec.depends_on.is_empty():
        resolved = resolve_dependencies(svc, spec.depends_on)
    if resolved and any(resolved.values()):
        if job_id is not None:
            check_acyclic(svc, job_id, resolved)
        fields["dependencies"] = {k: v for k, v in resolved.items() if v}
        fields["hold"] = HOLD_DEPENDENCIES
        fields["reason"] = "waiting for dependencies"
    else:
        resolved = None
    job, created = svc.jobs.create(
        spec, job_id=job_id, idempotency_key=idempotency_key, owner=owner, extra=fields
    )
    if created and resolved:
        svc.holds.watch(job.id, [i for ids in resolved.values() for i in ids])
        job = svc.jobs.get(job.id)
    return job, created
