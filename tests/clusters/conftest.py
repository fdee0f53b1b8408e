"""Fixtures for the cluster backends: a real single-node SLURM (tests/slurm/slurm-up.sh),
PBS through SLURM's Torque wrappers, and the FAKE LSF and HPC Pack tools.

The SLURM started here is left running after the session (other test sessions may be
using it); scripts/run-tests.sh stops it when it started it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simfarm.workers.schedulers import ClusterOptions
from tests.clusters.harness import Cluster, LimitJob, build
from tests.helpers import ROOT, wait_until

SLURM_DIR = Path(os.environ.get("SIMFARM_SLURM_DIR", "/tmp/simfarm-slurm"))
UP = ROOT / "tests" / "slurm" / "slurm-up.sh"
NOT_INSTALLABLE = 3


@dataclass
class SlurmCluster:
    """The running test SLURM."""

    directory: Path
    conf: Path

    def pid(self, daemon: str) -> int | None:
        try:
            pid = int((self.directory / f"{daemon}.pid").read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def stop_controller(self) -> None:
        """Shut slurmctld down (slurmd and running jobs stay)."""
        subprocess.run(["scontrol", "shutdown", "slurmctld"], check=False, timeout=30,
                       capture_output=True)
        wait_until(lambda: self.pid("slurmctld") is None, 30, "slurmctld to stop")

    def start(self) -> None:
        """Start whatever daemons are down and wait for the node to be usable."""
        result = subprocess.run([str(UP)], capture_output=True, text=True, timeout=600,
                                env={**os.environ, "SIMFARM_SLURM_DIR": str(self.directory)})
        if result.returncode != 0:
            raise RuntimeError(f"slurm-up.sh failed ({result.returncode}):\n{result.stderr}")


_state: dict[str, object] = {}


def slurm_or_reason() -> SlurmCluster | str:
    """Start the test SLURM once per session; a string says why it cannot exist here."""
    if "cluster" in _state:
        return _state["cluster"]  # type: ignore[return-value]
    result = subprocess.run([str(UP)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "SIMFARM_SLURM_DIR": str(SLURM_DIR)})
    if result.returncode == NOT_INSTALLABLE:
        reason = f"SLURM cannot be installed on this machine: {result.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM tests, but: {reason}")
        _state["cluster"] = reason
        return reason
    if result.returncode != 0:
        pytest.fail(f"tests/slurm/slurm-up.sh failed ({result.returncode}):\n{result.stderr}")
    os.environ["SLURM_CONF"] = str(SLURM_DIR / "slurm.conf")
    cluster = SlurmCluster(SLURM_DIR, SLURM_DIR / "slurm.conf")
    _state["cluster"] = cluster
    return cluster


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running single-node SLURM; skipped only where SLURM cannot be installed."""
    found = slurm_or_reason()
    if isinstance(found, str):
        pytest.skip(found)
    yield found


@pytest.fixture(params=["slurm", "pbs", "lsf", "winhpc"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """Each backend in turn: real SLURM, PBS via SLURM's Torque wrappers, FAKE LSF/HPC."""
    if request.param in ("slurm", "pbs"):
        request.getfixturevalue("slurm_cluster")
    flaky = request.node.get_closest_marker("flaky_status") is not None
    built = build(request.param, tmp_path / "work", shim_failures=flaky)
    yield built
    built.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "flaky_status: route the backend's status command "
                            "through tests/fakes/flaky.py so failures can be injected")


@pytest.fixture(scope="session", autouse=True)
def early_limit_jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LimitJob]]:
    """SLURM enforces limits in whole minutes (checked every 30 s), so the SLURM and PBS
    time-limit jobs start first and the rest of the suite runs while they wait."""
    found = slurm_or_reason()
    jobs: dict[str, LimitJob] = {}
    if not isinstance(found, str):
        for kind in ("slurm", "pbs"):
            cluster = build(kind, tmp_path_factory.mktemp(f"limit-{kind}"))
            job = cluster.submit(cluster.request(["sleep", "600"]),
                                 ClusterOptions(time_limit_s=60))
            jobs[kind] = LimitJob(cluster, job, cluster.follow(cluster.poller(), job),
                                  time.monotonic())
    yield jobs
    for entry in jobs.values():
        if not entry.seen.done.is_set():
            entry.cluster.backend.cancel(entry.job.native_id)
        entry.cluster.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every cluster test shares the one private SLURM: with pytest-xdist they all run in
    one worker (``--dist loadgroup``), so a controller restart never hits another test."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.xdist_group("clusters"))
