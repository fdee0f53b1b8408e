"""HFSS batch solves on every cluster backend, with the exact ansysedt argv simfarm builds.

PyEDB's manager could not cancel a cluster job (its ``SchedulerManager`` had no
``cancel_job``, so a cancel returned False and the solve went on); here a cancel
reaches ``scancel``/``qdel``/``bkill``/``job cancel`` and the solver's process tree goes.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from simfarm.common.aedt import build_ansysedt_argv
from simfarm.common.hfss import SchedulerOptions, SchedulerType, create_hfss_config
from simfarm.workers.aedt_log import ProgressTracker, batch_log_path
from simfarm.workers.schedulers import ClusterState
from tests.clusters.harness import Cluster
from tests.helpers import FAKES, wait_until

KIND = {"slurm": SchedulerType.SLURM, "pbs": SchedulerType.PBS, "lsf": SchedulerType.LSF,
        "winhpc": SchedulerType.WINDOWS_HPC}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "cluster_board.aedt"
    path.write_text("$begin 'Setup1'\nMaximumPasses=6\n$end 'Setup1'\n")
    return path


def hfss_argv(cluster: Cluster, project: Path) -> list[str]:
    config = create_hfss_config(
        project_path=str(project), design_name="main", setup_name="Setup1",
        scheduler_type=KIND[cluster.kind],
        scheduler_options=SchedulerOptions(nodes=1, cores_per_node=2),
    )
    return build_ansysedt_argv(config, FAKES / "ansysedt")


def test_hfss_solve_completes_on_the_cluster(cluster: Cluster, project: Path) -> None:
    job, seen = cluster.run(hfss_argv(cluster, project), env={"FAKE_ANSYSEDT_SECONDS": "0.2"})
    final = seen.last
    assert final is not None and final.state is ClusterState.COMPLETED, seen.statuses
    assert final.exit_code == 0
    tracker = ProgressTracker()
    for line in batch_log_path(project).read_text().splitlines():
        tracker.feed(line)
    assert tracker.completed_normally and tracker.converged
    output = (job.job_dir / f"{job.native_id}.out").read_text()
    assert "Normal completion of simulation" in output  # the -monitor stream


def test_cancel_reaches_the_cluster_and_stops_the_solver(cluster: Cluster,
                                                         project: Path) -> None:
    request = cluster.request(hfss_argv(cluster, project),
                              env={"FAKE_ANSYSEDT_OUTCOME": "hang",
                                   "FAKE_ANSYSEDT_SPAWN_CHILD": "1"})
    job = cluster.submit(request)
    poller = cluster.poller()
    seen = cluster.follow(poller, job)
    child_file = project.parent / "cluster_board.fake_child_pid"
    wait_until(lambda: child_file.exists() and child_file.read_text().strip(), 60,
               "the solver to start on the cluster")
    child = int(child_file.read_text())
    poller.cancel(job.native_id)
    final = seen.wait(60)
    assert final.state is ClusterState.CANCELLED, seen.statuses

    def gone() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(gone, 30, "the solver's child process to be gone")
