"""HFSS licence demand from cores, against the worked examples of Ansys' licensing guide
and of the calculator blog posts docs/licences.md cites:

* Ansys, Inc. Licensing Guide, "HPC Parametric Pack Licensing" (ansyshelp.ansys.com,
  v251 alic_parapacklicensing): each variation after the first needs 8 HPC increments or
  1 HPC Pack; 4 cores included per variation; upfront checkout
  ``k * max(0, i*j - 4) + (k - 1) * 8`` increments (i solver licences, j cores per
  task, k tasks), its example 6 variations of 24 cores;
* PADT, "Looking Under the Hood of Ansys HPC Licensing" (2024-02-16), example 1: 16
  parallel variations of 4 cores = 120 HPC Workgroup increments;
* Exxact, "Ansys HPC Pack - Ansys Licensing for CPUs and GPUs Explained" (2024-05-02):
  h packs enable 2 * 4**h cores on top of the 4 included: 12, 36, 132, 516, 2052.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simfarm.common.hfss_jobs import HfssRequestRejected, hfss_defaults
from simfarm.common.hfss_licensing import (
    HfssLicensing,
    JobLicensing,
    hfss_license_demand,
    pack_count,
    packs_for,
    workgroup_increments,
)
from simfarm.common.models import JobSpec

WORKGROUP = HfssLicensing()
PACK = HfssLicensing(scheme="pack")


def test_padt_example_1_sixteen_variations_of_four_cores_need_120_hpc() -> None:
    assert workgroup_increments(4 * 16, variations=16) == 120
    demand = hfss_license_demand(64, WORKGROUP, JobLicensing(parallel_variations=16))
    assert demand == {"electronics_desktop": 1, "anshpc": 120}


def test_licensing_guide_upfront_formula_six_variations_of_24_cores() -> None:
    i, j, k = 1, 24, 6  # the guide's example: 6 parametric variations, 24 cores each
    upfront = k * max(0, i * j - 4) + (k - 1) * 8
    assert upfront == 160
    assert workgroup_increments(j * k, variations=k) == upfront


@pytest.mark.parametrize(("packs", "total_cores"),
                         [(0, 4), (1, 12), (2, 36), (3, 128 + 4), (4, 516), (5, 2052)])
def test_exxact_pack_table_each_pack_count_enables_its_cores_and_no_more(
        packs: int, total_cores: int) -> None:
    assert pack_count(total_cores) == packs
    assert pack_count(total_cores + 1) == packs + 1
    assert packs_for(total_cores - 4) == packs


def test_one_job_without_variations_pays_one_increment_per_core_beyond_four() -> None:
    assert [workgroup_increments(c) for c in (1, 4, 5, 8, 16)] == [0, 0, 1, 4, 12]
    assert hfss_license_demand(4, WORKGROUP) == {"electronics_desktop": 1}
    assert hfss_license_demand(12, PACK) == {"electronics_desktop": 1, "anshpc_pack": 1}


def test_each_variation_after_the_first_costs_one_pack() -> None:
    assert pack_count(3 * 4, variations=3) == 2  # 4 cores each: only the variations count
    # 2 variations of 12 cores: 1 for the second variation + 16 extra cores (2 packs)
    assert pack_count(24, variations=2) == 1 + 2


def test_feature_names_and_included_cores_are_the_labs_settings() -> None:
    lab = HfssLicensing(solver_feature="hfss_solve", hpc_feature="hfss_hpc", included_cores=0)
    assert hfss_license_demand(8, lab) == {"hfss_solve": 1, "hfss_hpc": 8}
    assert hfss_license_demand(8, lab, JobLicensing(scheme="none")) == {}


def _job(tmp_path: Path, **extra: object) -> JobSpec:
    return JobSpec.model_validate({"kind": "hfss", "hfss": {
        "project_path": str(tmp_path / "a.aedt"),
        "machine_nodes": [{"hostname": "localhost", "cores": -1}]}, **extra})


def test_submit_settles_the_licences_of_counted_pools_only(tmp_path: Path) -> None:
    spec = hfss_defaults(_job(tmp_path, resources={"cores": 12}), WORKGROUP, {"anshpc"})
    assert spec.resources.licenses == {"anshpc": 8}  # no pool for the solver: not asked
    both = hfss_defaults(_job(tmp_path, resources={"cores": 12}), WORKGROUP,
                         {"anshpc", "electronics_desktop"})
    assert both.resources.licenses == {"anshpc": 8, "electronics_desktop": 1}
    assert hfss_defaults(both, WORKGROUP, {"anshpc", "electronics_desktop"}) == both
    untouched = hfss_defaults(_job(tmp_path, resources={"cores": 12}), WORKGROUP, set())
    assert untouched.resources.licenses == {}


def test_the_job_overrides_counts_scheme_and_variations(tmp_path: Path) -> None:
    pools = {"anshpc", "anshpc_pack", "electronics_desktop"}
    named = hfss_defaults(_job(tmp_path, resources={"cores": 12, "licenses": {"anshpc": 2}}),
                          WORKGROUP, pools)
    assert named.resources.licenses == {"anshpc": 2, "electronics_desktop": 1}
    packed = hfss_defaults(_job(tmp_path, resources={"cores": 12},
                                licensing={"scheme": "pack"}), WORKGROUP, pools)
    assert packed.resources.licenses == {"anshpc_pack": 1, "electronics_desktop": 1}
    sweep = hfss_defaults(_job(tmp_path, resources={"cores": 64},
                               licensing={"parallel_variations": 16}), WORKGROUP, pools)
    assert sweep.resources.licenses == {"anshpc": 120, "electronics_desktop": 1}
    with pytest.raises(HfssRequestRejected) as caught:
        hfss_defaults(_job(tmp_path, resources={"cores": 4096},
                           licensing={"parallel_variations": 2000}), WORKGROUP, pools)
    assert caught.value.field == "licensing" and "more than 10000" in caught.value.reason


def test_a_cluster_run_is_licensed_for_the_cores_its_scheduler_grants(tmp_path: Path) -> None:
    spec = JobSpec.model_validate({"kind": "hfss", "hfss": {
        "project_path": str(tmp_path / "a.aedt"), "scheduler_type": "slurm",
        "scheduler_options": {"nodes": 2, "cores_per_node": 8}}})
    settled = hfss_defaults(spec, WORKGROUP, {"anshpc"})
    assert settled.resources.licenses == {"anshpc": 12}
