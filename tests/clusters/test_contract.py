"""One contract for every cluster backend: real SLURM, PBS (SLURM's Torque wrappers),
FAKE LSF and FAKE HPC Pack. Each test is run once per backend."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from simfarm.workers.schedulers import ClusterOptions, ClusterState
from tests.clusters.harness import Cluster, LimitJob, inject
from tests.helpers import wait_for, wait_until

ARGS = ["plain", "with space", "it's \"quoted\"", "$(touch /tmp/simfarm-pwned)", "a\nb", "*"]
PRINT_ARGV = ("import json, os, sys; print(json.dumps({'argv': sys.argv[1:], "
              "'env': os.environ.get('SIMFARM_TEST_VALUE')}))")


def _states_move_forward(states: list[str]) -> bool:
    order = {"queued": 0, "running": 1, "completed": 2, "failed": 2, "cancelled": 2}
    ranks = [order[s] for s in states]
    return ranks == sorted(ranks) and len(set(states)) == len(states)


def test_job_runs_to_completed_with_exact_argv_and_env(cluster: Cluster) -> None:
    value = "x y'z\"$HOME`id`"
    job, seen = cluster.run([sys.executable, "-c", PRINT_ARGV, *ARGS],
                            env={"SIMFARM_TEST_VALUE": value})
    final = seen.last
    assert final is not None and final.state is ClusterState.COMPLETED, seen.statuses
    assert final.exit_code == 0
    assert _states_move_forward(seen.states()), seen.states()
    output = (job.job_dir / f"{job.native_id}.out").read_text()
    printed = json.loads(output.strip().splitlines()[-1])
    assert printed == {"argv": ARGS, "env": value}
    assert not Path("/tmp/simfarm-pwned").exists()
    assert job.script_path.name.startswith(job.job_dir.name)  # named after the job
    assert (job.job_dir / f"{job.native_id}.ec").read_text().strip() == "0"


def test_failing_job_is_failed_with_its_exit_code(cluster: Cluster) -> None:
    job, seen = cluster.run(["bash", "-c", "echo about to fail; exit 3"])
    final = seen.last
    assert final is not None
    assert final.state is ClusterState.FAILED, seen.statuses
    assert final.exit_code == 3
    assert "about to fail" in (job.job_dir / f"{job.native_id}.out").read_text()


def test_cancel_ends_cancelled_and_kills_the_process(cluster: Cluster, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    request = cluster.request(["bash", "-c", f"echo $$ > {pid_file}; exec sleep 300"])
    job = cluster.submit(request)
    poller = cluster.poller()
    seen = cluster.follow(poller, job)
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 60, "job to start")
    pid = int(pid_file.read_text())
    assert psutil.pid_exists(pid)
    poller.cancel(job.native_id)
    final = seen.wait(60)
    assert final.state is ClusterState.CANCELLED, seen.statuses

    def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(gone, 30, f"process {pid} to be gone")
    cluster.backend.cancel(job.native_id)  # cancelling an ended job is not an error


def test_partitions_are_listed_with_capacity(cluster: Cluster, tmp_path: Path) -> None:
    partitions = {p.name: p for p in cluster.backend.partitions()}
    assert set(partitions) == cluster.queues
    for partition in partitions.values():
        assert partition.cores_total > 0 and partition.nodes_total > 0
        assert partition.state in ("up", "Open:Active")
    if cluster.default_queue:
        assert partitions[cluster.default_queue].default
    if not cluster.reports_allocation:
        return
    marker = tmp_path / "started"
    job = cluster.submit(cluster.request(["bash", "-c", f"touch {marker}; sleep 30"]),
                         ClusterOptions(tasks_per_node=2))
    wait_until(marker.exists, 60, "job to start")
    busy = wait_for(lambda: {p.name: p for p in cluster.backend.partitions()},
                    lambda found: any(p.cores_used >= 2 for p in found.values()), 20,
                    "partitions to show the running job's cores")
    assert any(p.cores_free <= p.cores_total - 2 for p in busy.values())
    cluster.backend.cancel(job.native_id)


def test_status_of_many_jobs_is_one_command(cluster: Cluster) -> None:
    jobs = [cluster.submit(cluster.request(["bash", "-c", f"sleep 1; exit {code}"]))
            for code in (0, 4, 0)]
    poller = cluster.poller(start=False)
    recorders = [cluster.follow(poller, job) for job in jobs]
    before = cluster.backend.runner.count(cluster.status_command)
    poller.poll_once()
    assert cluster.backend.runner.count(cluster.status_command) == before + 1
    assert all(r.statuses for r in recorders), "every job got a status from the one call"
    poller.start()
    finals = [r.wait(cluster.end_timeout_s) for r in recorders]
    assert [(f.state, f.exit_code) for f in finals] == [
        (ClusterState.COMPLETED, 0), (ClusterState.FAILED, 4), (ClusterState.COMPLETED, 0)]
    # Adaptive polling: far fewer status calls than jobs x polls, never one per job.
    assert poller.polls * 1 >= (cluster.backend.runner.count(cluster.status_command) - before)


HICCUPS = {
    "slurm": "squeue: error: slurm_load_jobs error: Unable to contact slurm controller "
             "(connect failure)",
    "pbs": "Problem loading jobs.",
    "lsf": "LSF is down. Please wait ...",
    "winhpc": "Unable to connect to the head node. The scheduler is unavailable.",
}


@pytest.mark.flaky_status
def test_status_command_hiccups_are_retried_and_reported(cluster: Cluster) -> None:
    shim = cluster.backend.config.bin_dir
    assert shim is not None
    job = cluster.submit(cluster.request(["bash", "-c", "sleep 2; exit 0"]))
    inject(shim, cluster.status_command, 2, message=HICCUPS[cluster.kind], rc=1)
    poller = cluster.poller()
    seen = cluster.follow(poller, job)
    wait_until(lambda: not int((shim / f"{cluster.status_command}.failures").read_text()),
               30, "the injected failures to be used up")
    inject(shim, cluster.status_command, 1, garbage="<html>502 Bad Gateway</html>\n")
    final = seen.wait(cluster.end_timeout_s)
    assert final.state is ClusterState.COMPLETED and final.exit_code == 0, seen.statuses
    assert any("status check failed" in p for p in seen.problems), seen.problems
    assert any("works again" in p for p in seen.problems), seen.problems


def test_job_gone_from_the_queue_is_settled_from_its_record(cluster: Cluster) -> None:
    job = cluster.submit(cluster.request(["bash", "-c", "exit 5"]))
    wait_until(lambda: (job.job_dir / f"{job.native_id}.ec").exists(), 60, "job to finish")
    wait_until(lambda: job.native_id not in cluster.backend.status([job.native_id]), 60,
               "the cluster to forget the job")
    poller = cluster.poller()
    seen = cluster.follow(poller, job)
    final = seen.wait(30)
    assert final.state is ClusterState.FAILED and final.exit_code == 5, seen.statuses
    assert final.source != "squeue" and "qstat" not in final.source


@pytest.mark.timeout(300)
def test_time_limit_ends_the_job_as_failed(cluster: Cluster,
                                           early_limit_jobs: dict[str, LimitJob]) -> None:
    # One "minute": 60 s on SLURM/PBS (job started at session start), 2 s on the fakes.
    if cluster.kind in early_limit_jobs:
        early = early_limit_jobs[cluster.kind]
        job, seen, started = early.job, early.seen, early.submitted_at
    else:
        started = time.monotonic()
        job = cluster.submit(cluster.request(["sleep", "600"]), ClusterOptions(time_limit_s=60))
        seen = cluster.follow(cluster.poller(), job)
    final = seen.wait(cluster.limit_minute_s * 2 + 90)
    assert final.state is ClusterState.FAILED, seen.statuses
    if cluster.reports_timeout:
        assert final.reason and "TIMEOUT" in final.reason, final
    else:  # the Torque wrappers only say "C"; the missing exit-code file says "killed"
        assert final.exit_code is None
    assert time.monotonic() - started >= cluster.limit_minute_s * 0.9
    assert not os.path.exists(job.job_dir / f"{job.native_id}.ec")


def test_a_job_with_licences_is_taken_and_runs(cluster: Cluster) -> None:
    from dataclasses import replace

    request = replace(cluster.request([sys.executable, "-c", "print('licensed')"]),
                      licenses={"simfarm_anshpc": 2, "simfarm_solver": 1})
    job = cluster.submit(request)
    seen = cluster.follow(cluster.poller(), job)
    final = seen.wait(cluster.end_timeout_s)
    assert final.state is ClusterState.COMPLETED, seen.statuses
    if cluster.kind != "winhpc":  # HPC Pack takes them as a `job new` switch
        assert "simfarm_anshpc" in job.script_path.read_text()
