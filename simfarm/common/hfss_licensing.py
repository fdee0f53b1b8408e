"""How many licences an HFSS job checks out, from its cores, per Ansys' HPC licensing.

The rules (sources in docs/licences.md):

* every job needs one solver licence; it includes :attr:`HfssLicensing.included_cores`
  (4) cores per variation solved in parallel;
* **HPC Workgroup** (``anshpc``): one increment per core beyond the included ones;
* **HPC Pack** (``anshpc_pack``): ``h`` packs enable ``2 * 4**h`` cores (8, 32, 128,
  512, 2048) on top of the included ones;
* each parallel variation beyond the first needs 8 HPC increments or 1 pack; the cores
  beyond the included ones of every variation add up and are licensed together.

Feature names and the scheme are settings (``[hfss_licensing]``): license servers name
features differently. Only features the farm counts (a ``[[licenses]]`` pool) are asked
for; a job's own ``resources.licenses`` wins for the names it gives, and
``licensing.scheme = "none"`` asks for nothing.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Scheme = Literal["workgroup", "pack", "none"]
#: HPC increments (or packs: 1) each parallel variation after the first needs
INCREMENTS_PER_VARIATION = 8


class HfssLicensing(BaseModel):
    """The farm's HFSS licensing: which scheme it owns and what its server calls things."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: Scheme = Field(default="workgroup",
                           description="workgroup (anshpc per core), pack (anshpc_pack) or "
                           "none (HFSS jobs ask only for what they name)")
    solver_feature: str = Field(default="electronics_desktop",
                                description="the solver licence every HFSS job checks out")
    hpc_feature: str = Field(default="anshpc", description="HPC Workgroup increments")
    pack_feature: str = Field(default="anshpc_pack", description="HPC Packs")
    included_cores: int = Field(default=4, ge=0, le=1024,
                                description="cores per variation the solver licence includes")


class JobLicensing(BaseModel):
    """A job's say in its licence count (``licensing`` of a job spec)."""

    model_config = ConfigDict(extra="forbid")

    scheme: Scheme | None = Field(default=None,
                                  description="the farm's scheme (hfss_licensing.scheme) "
                                  "unless set; none: compute nothing")
    parallel_variations: int = Field(default=1, ge=1, le=10_000,
                                     description="variations the job solves at once; its "
                                     "cores are split evenly among them")


def packs_for(extra_cores: int) -> int:
    """The fewest HPC Packs that enable ``extra_cores`` cores beyond the included ones:
    ``h`` packs enable ``2 * 4**h``."""
    if extra_cores <= 0:
        return 0
    packs = 1
    while 2 * 4**packs < extra_cores:
        packs += 1
    return packs


def cores_per_variation(cores: int, variations: int) -> int:
    """The cores each of ``variations`` parallel variations gets out of ``cores``."""
    return max(1, math.ceil(cores / max(1, variations)))


def workgroup_increments(cores: int, variations: int = 1, included: int = 4) -> int:
    """HPC Workgroup increments for ``cores`` split over ``variations``:
    ``k * max(0, j - 4) + (k - 1) * 8`` with ``j`` cores per variation."""
    per = cores_per_variation(cores, variations)
    return (variations * max(0, per - included)
            + (variations - 1) * INCREMENTS_PER_VARIATION)


def pack_count(cores: int, variations: int = 1, included: int = 4) -> int:
    """HPC Packs for ``cores`` split over ``variations``: one per variation after the
    first, plus the packs that enable every variation's cores beyond the included ones."""
    per = cores_per_variation(cores, variations)
    return (variations - 1) + packs_for(variations * max(0, per - included))


def hfss_license_demand(cores: int, config: HfssLicensing, job: JobLicensing | None = None,
                        counted: Collection[str] | None = None) -> dict[str, int]:
    """The licences an HFSS job of ``cores`` checks out under ``config`` (and the job's
    own choices), restricted to the features in ``counted`` (every one when None)."""
    scheme = (job.scheme if job is not None and job.scheme is not None else config.scheme)
    if scheme == "none":
        return {}
    variations = job.parallel_variations if job is not None else 1
    out = {config.solver_feature: 1}
    if scheme == "workgroup":
        out[config.hpc_feature] = workgroup_increments(cores, variations, config.included_cores)
    else:
        out[config.pack_feature] = pack_count(cores, variations, config.included_cores)
    return {name: n for name, n in out.items()
            if n > 0 and (counted is None or name in counted)}


def merged(asked: Mapping[str, int], computed: Mapping[str, int]) -> dict[str, int]:
    """The computed demand with what the job named itself taking precedence."""
    return {**computed, **asked}
