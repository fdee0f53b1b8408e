"""One way in: every job, whatever door it comes through, is admitted here.

Single submit, batch, each sweep child, workflows, resubmit and the PyEDB routes each
describe a job as an :class:`Admission` and call :func:`admit` (one job) or
:func:`admit_all` (many, accepted or refused whole). Admission runs :data:`CHECKS` in
order, then stores the job. A check is one small function that settles or refuses one
thing: a refusal is an :class:`~simfarm.gateway.errors.ApiError` (4xx, the field and the
reason), named relative to the job's spec and prefixed with where the job sits in the
request (``jobs.3``, ``template``...). Adding a rule at submit is adding one function to
:data:`CHECKS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simfarm.common.hfss_jobs import HfssRequestRejected, hfss_defaults
from simfarm.common.job_paths import check_spec_paths
from simfarm.common.license_pools import pools_by_name
from simfarm.common.models import Job, JobSpec
from simfarm.common.paths import PathRejected
from simfarm.common.store import new_job_id
from simfarm.common.store.gates import GATE_DEPENDENCIES
from simfarm.gateway.auth import Principal, current_user
from simfarm.gateway.dependencies import check_acyclic, resolve_dependencies
from simfarm.gateway.errors import ApiError, field_error
from simfarm.gateway.fit import refusal
from simfarm.gateway.services import Services


@dataclass
class Admission:
    """One job on its way in: its spec and what the door knows about it."""

    spec: JobSpec
    owner: str | None = None
    where: str = ""  # where the job sits in the request: prefix of its errors' fields
    job_id: str | None = None  # PyEDB's jobid, a workflow's ids made up front; else generated
    idempotency_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more job fields (sweep, gate...)
    dependencies: Mapping[str, list[str]] | None = None  # resolved ids; None: the spec's


@dataclass
class Round:
    """One request's admission: the gateway's services, the caller, and what checks
    looked up once for all the jobs of the request."""

    svc: Services
    archives: set[str] = field(default_factory=set)
    caller: Principal = field(default_factory=current_user)
    #: jobs not started yet per ``("user"|"account", name)``: stored ones plus this
    #: request's admitted so far (the pending limits)
    queued: dict[tuple[str, str], int] = field(default_factory=dict)


def account_chosen(rnd: Round, job: Admission) -> None:
    """The account the job charges: the one it names, else its owner's default; the
    owner must belong to it unless the caller is an admin (:mod:`simfarm.common.accounts`)."""
    book = rnd.svc.accounts
    account = job.spec.account or book.default_for(job.owner)
    if account is None:
        raise ApiError(403, "forbidden", f"{job.owner or 'you'} may charge no account",
                       [{"field": "account", "reason": "you belong to no account and the "
                         "farm has no default account: ask an admin to add you to one"}])
    refused = book.refusal(job.owner, account, rnd.caller.admin)
    if refused is not None:
        error = "forbidden" if refused.status == 403 else "validation_error"
        raise ApiError(refused.status, error, refused.reason,
                       [{"field": "account", "reason": refused.reason}])
    if job.spec.account != account:
        job.spec = job.spec.model_copy(update={"account": account})
    job.extra["account"] = account


Check = Callable[[Round, Admission], None]


def within_pending_limits(rnd: Round, job: Admission) -> None:
    """No more jobs waiting to start than the owner's and the account's
    ``max_pending_jobs`` (:mod:`simfarm.common.user_limits`), counting the jobs of this
    request admitted before it: 429 naming the limit."""
    limits = rnd.svc.settings.limits
    user, account = job.owner or "", job.extra.get("account") or job.spec.account or ""
    wanted = [("user", user, limits.of_user(user).max_pending_jobs if user else None),
              ("account", account,
               limits.of_account(account).max_pending_jobs if account else None)]
    if all(cap is None for _, _, cap in wanted):
        return
    if any((kind, name) not in rnd.queued for kind, name, _ in wanted):
        stored = rnd.svc.jobs.queued(user, account)
        for (kind, name, _), count in zip(wanted, stored, strict=True):
            rnd.queued.setdefault((kind, name), count)
    for kind, name, cap in wanted:
        if cap is None:
            continue
        count = rnd.queued[(kind, name)]
        if count + 1 > cap:
            who = f"user {name}" if kind == "user" else f"account {name}"
            why = (f"{who} may have at most {cap} jobs waiting to start (max_pending_jobs); "
                   f"{count} are pending or held")
            raise ApiError(429, "limit_exceeded", why,
                           [{"field": "account" if kind == "account" else "owner",
                             "reason": why}])
    for kind, name, _ in wanted:
        rnd.queued[(kind, name)] += 1


def hfss_resources(rnd: Round, job: Admission) -> None:
    """An HFSS job's unset resources and time limit from its configuration; it reserves
    exactly the cores ansysedt is told, and the licences of the farm's pools those cores
    check out (see :func:`~simfarm.common.hfss_jobs.hfss_defaults`)."""
    settings = rnd.svc.settings
    try:
        job.spec = hfss_defaults(job.spec, settings.hfss_licensing,
                                 {p.name for p in settings.licenses})
    except HfssRequestRejected as exc:
        raise field_error(exc.field, exc.reason) from None


def licenses_within_pools(rnd: Round, job: Admission) -> None:
    """No more of a floating licence than the farm's pool will ever have."""
    pools = pools_by_name(rnd.svc.settings.licenses)
    for name, count in sorted(job.spec.resources.licenses.items()):
        pool = pools.get(name)
        if pool is not None and count > pool.count:
            where = f" on {pool.server}" if pool.server else ""
            raise ApiError(422, "unsatisfiable", f"needs {count} {name} licences; the farm's "
                           f"pool has {pool.count}", [{
                               "field": f"resources.licenses.{name}",
                               "reason": f"needs {count} {name} licences but the farm's "
                                         f"{name} pool{where} has {pool.count}: it could "
                                         "never start"}])


def paths_allowed(rnd: Round, job: Admission) -> None:
    """Paths well formed and under the allowed roots."""
    try:
        check_spec_paths(job.spec, rnd.svc.settings.allowed_roots)
    except PathRejected as exc:
        raise field_error(exc.field, exc.reason) from None


def fits_some_node(rnd: Round, job: Admission) -> None:
    """Some registered node could ever run it (AEDT, cluster, cores, memory, labels,
    node-local licence tokens)."""
    refused = refusal(rnd.svc.capacities, job.spec, {p.name for p in rnd.svc.settings.licenses})
    if refused is not None:
        where, why = refused
        raise ApiError(422, "unsatisfiable", why, [{"field": where, "reason": why}])


def files_uploaded(rnd: Round, job: Admission) -> None:
    """A staged job's project archive is on the gateway already."""
    files = job.spec.files
    if files is None or files.mode != "staged" or files.archive is None:
        return
    if files.archive in rnd.archives:
        return
    if not rnd.svc.blobs.exists(files.archive):
        raise field_error("files.archive", "no such blob on the gateway: upload the project "
                          "first (PUT /api/v1/blobs/<sha256>)")
    rnd.svc.blob_index.touch(files.archive)
    rnd.archives.add(files.archive)


def dependencies_known(rnd: Round, job: Admission) -> None:
    """Dependencies resolved to visible job ids; no cycle through a client-chosen id."""
    deps = job.spec.depends_on
    if job.dependencies is None and deps is not None and not deps.is_empty():
        job.dependencies = resolve_dependencies(rnd.svc, deps)
    if job.dependencies and job.job_id is not None:
        check_acyclic(rnd.svc, job.job_id, job.dependencies)


CHECKS: tuple[Check, ...] = (
    account_chosen,
    hfss_resources,
    paths_allowed,
    licenses_within_pools,
    fits_some_node,
    files_uploaded,
    dependencies_known,
    within_pending_limits,
)


def placed(exc: ApiError, where: str) -> ApiError:
    """``exc`` with its fields (and detail) prefixed by where the job sits."""
    if not where:
        return exc
    fields = [{**f, "field": f"{where}.{f['field']}" if f.get("field") else where}
              for f in exc.fields] or [{"field": where, "reason": exc.detail}]
    return ApiError(exc.status, exc.error, f"{where}: {exc.detail}", fields)


def check(rnd: Round, job: Admission) -> None:
    """Run every check on ``job`` (it may settle parts of its spec), or raise the first
    refusal."""
    for step in CHECKS:
        try:
            step(rnd, job)
        except ApiError as exc:
            raise placed(exc, job.where) from None


def _fields(job: Admission) -> dict[str, Any]:
    fields = dict(job.extra)
    deps = {k: v for k, v in (job.dependencies or {}).items() if v}
    if deps:
        fields.update(dependencies=deps, gate=GATE_DEPENDENCIES,
                      reason="waiting for dependencies")
    return fields


def _watched(fields: Mapping[str, Any]) -> list[str]:
    deps: dict[str, list[str]] = fields.get("dependencies") or {}
    return [i for ids in deps.values() for i in ids]


def admit(svc: Services, job: Admission) -> tuple[Job, bool]:
    """Check and store one job; ``(job, created)`` (False: an idempotent replay). A
    client-chosen id that exists raises :class:`~simfarm.common.errors.DuplicateJob`."""
    check(Round(svc), job)
    return store(svc, job)


def store(svc: Services, job: Admission) -> tuple[Job, bool]:
    """Store one checked job (gated while it has dependencies); nudges the dispatcher."""
    fields = _fields(job)
    stored, created = svc.jobs.create(job.spec, job_id=job.job_id,
                                      idempotency_key=job.idempotency_key, owner=job.owner,
                                      extra=fields)
    watched = _watched(fields)
    if created and watched:
        svc.gates.watch(stored.id, watched)
        stored = svc.jobs.get(stored.id)
    svc.replication.wait()  # a replay too: its first answer may not have been replicated
    return stored, created


def check_all(svc: Services, jobs: Sequence[Admission]) -> None:
    """Check every job of one request, or raise the first refusal."""
    rnd = Round(svc)
    for job in jobs:
        check(rnd, job)


def store_all(svc: Services, jobs: Sequence[Admission]) -> list[str]:
    """Store checked jobs in pipelined round trips (ids generated unless given); the
    ids in order. Nudges the dispatcher."""
    by_owner: dict[str | None, list[tuple[str, JobSpec, dict[str, Any]]]] = {}
    ids: list[str] = []
    for job in jobs:
        job.job_id = job.job_id or new_job_id()
        by_owner.setdefault(job.owner, []).append((job.job_id, job.spec, _fields(job)))
        ids.append(job.job_id)
    for owner, items in by_owner.items():
        svc.jobs.create_batch(items, owner=owner)
    for items in by_owner.values():
        for job_id, _, fields in items:
            watched = _watched(fields)
            if watched:
                svc.gates.watch(job_id, watched)
    svc.jobs.nudge_dispatcher()
    svc.replication.wait()
    return ids


def admit_all(svc: Services, jobs: Sequence[Admission]) -> list[str]:
    """Check every job first, then store them all: accepted or refused whole."""
    check_all(svc, jobs)
    return store_all(svc, jobs)
