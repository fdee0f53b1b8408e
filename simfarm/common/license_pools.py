"""Floating licence pools: the farm-wide licence features of ``[[licenses]]`` in settings.

A pool is one licence feature the whole farm shares (a FlexLM feature such as ``anshpc``
on ``1055@lic01``), unlike the node-local tokens of ``node_licenses`` that one machine
holds. A job asks for both the same way, in ``resources.licenses``; a name that is a
pool is drawn from the pool when the job is placed and returned when it ends, any other
name is a token of the node that runs it. docs/licences.md explains the whole path.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from simfarm.common.names import check_name, unique_names

_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,64}$")
_SERVER = re.compile(r"^\d{1,5}@[A-Za-z0-9_.\-]{1,253}$")
#: a name as SLURM/LSF/PBS spell licences and resources (SLURM's remote ones: name@server)
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}(@[A-Za-z0-9_.\-]{1,253})?$")


class LicensePool(BaseModel):
    """One floating licence feature shared by the farm (a ``[[licenses]]`` table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the name jobs ask for in resources.licenses")
    count: int = Field(ge=0, le=1_000_000,
                       description="most licences farm jobs may hold at once (the whole "
                       "pool when no server is polled)")
    server: str | None = Field(default=None,
                               description="FlexLM server port@host polled with lmstat")
    feature: str | None = Field(default=None,
                                description="the vendor's feature name on the server "
                                "(default: name)")
    cluster: str | None = Field(default=None,
                                description="the licence's name on clusters (sbatch "
                                "--licenses, LSF rusage, PBS -l); unset: not passed")

    @field_validator("name", "feature")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        return value if value is None else check_name(value, _NAME, "licence name")

    @field_validator("server")
    @classmethod
    def _check_server(cls, value: str | None) -> str | None:
        if value is not None and not _SERVER.match(value):
            raise ValueError(f"server {value!r} must be port@host, e.g. 1055@lic01")
        return value

    @field_validator("cluster")
    @classmethod
    def _check_cluster(cls, value: str | None) -> str | None:
        return value if value is None else check_name(value, _CLUSTER_NAME,
                                                      "cluster licence name")

    @property
    def vendor_feature(self) -> str:
        """The feature's name in lmstat's output."""
        return self.feature or self.name


def check_unique(pools: Iterable[LicensePool]) -> list[LicensePool]:
    """``pools`` as a list, or ValueError naming a pool defined twice."""
    return unique_names(pools, "licence pool")


def pools_by_name(pools: Iterable[LicensePool]) -> dict[str, LicensePool]:
    """The pools by the name jobs use."""
    return {p.name: p for p in pools}


def split_request(licenses: Mapping[str, int],
                  pools: Collection[str]) -> tuple[dict[str, int], dict[str, int]]:
    """``(node tokens, pool licences)`` of a job's ``resources.licenses``: a name that is a
    pool is the farm's, any other is a token of the node that runs the job."""
    node: dict[str, int] = {}
    pool: dict[str, int] = {}
    for name, count in licenses.items():
        (pool if name in pools else node)[name] = count
    return node, pool


def cluster_request(licenses: Mapping[str, int],
                    pools: Mapping[str, LicensePool]) -> dict[str, int]:
    """The licences a cluster job passes to its scheduler: those it asks of the farm's
    pools that have a cluster name, under that name (node tokens are not passed)."""
    out: dict[str, int] = {}
    for name, count in sorted(licenses.items()):
        pool = pools.get(name)
        if pool is not None and pool.cluster and count > 0:
            out[pool.cluster] = out.get(pool.cluster, 0) + count
    return out


class Checkout(BaseModel):
    """One checkout line of the server's last good report."""

    user: str
    host: str
    licenses: int


class LicenseStatus(BaseModel):
    """One pool as the farm sees it now (``GET /api/v1/licenses``, ``simfarm licenses``).

    ``limit`` is what farm jobs may hold at once now: the configured ``count``, or with
    a server that answers, ``min(count, issued - outside)``; ``outside`` is what the
    server has in use beyond what the farm's running jobs hold."""

    name: str
    count: int = Field(description="configured: most farm jobs may ever hold at once")
    server: str | None = Field(default=None, description="FlexLM server port@host")
    feature: str = Field(description="the feature's name on the server")
    limit: int = Field(description="what farm jobs may hold at once now")
    held: int = Field(default=0, description="held by farm jobs now")
    free: int = Field(default=0, description="limit minus held (never below 0)")
    outside: int = Field(default=0, description="in use outside the farm")
    issued: int | None = Field(default=None, description="the server's total")
    in_use: int | None = Field(default=None, description="in use on the server")
    waiting: int = Field(default=0, description="pending jobs that ask for it")
    source: str = Field(default="configured", description="where the limit comes from: "
                        "configured (no server), server, last-good (within the grace "
                        "period), fallback (configured count: the server failed too long)")
    polled_at: float | None = Field(default=None, description="last poll (epoch seconds)")
    poll_status: str = Field(default="not polled", description="ok, or why the last poll "
                             "gave no figures")
    last_good_at: float | None = Field(default=None,
                                       description="last poll with good figures")
    warning: str | None = Field(default=None, description="what an operator should know")
    checkouts: list[Checkout] = Field(default_factory=list,
                                      description="who has it checked out (last good poll)")

    def with_held(self, held: int) -> LicenseStatus:
        """This status with the farm's holdings as Redis has them now."""
        return self.model_copy(update={"held": held, "free": max(0, self.limit - held)})
