"""Backend parsers against recorded/representative scheduler outputs (no cluster needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simfarm.workers.schedulers import BackendConfig, ClusterState, create_backend
from simfarm.workers.schedulers.commands import CommandResult
from simfarm.workers.schedulers.errors import CommandError
from simfarm.workers.schedulers.pbs import parse_qstat_table
from simfarm.workers.schedulers.winhpc import parse_list_format
from tests.helpers import FAKES

RECORDED = FAKES / "pbs"


def result(stdout: str, rc: int = 0, stderr: str = "", argv: list[str] | None = None
           ) -> CommandResult:
    return CommandResult(argv or ["cmd"], rc, stdout, stderr, 0.01)


def pbs(flavour: str):  # type: ignore[no-untyped-def]
    return create_backend("pbs", BackendConfig(extra={"flavour": flavour}))


def test_pbs_pro_json_states_exit_codes_and_reasons() -> None:
    text = (RECORDED / "qstat-f-F-json-x.json").read_text()
    ids = [f"410{i}.pbs-head" for i in range(1, 8)]
    found = pbs("pro").parse_status_output(
        result(text, 153, "qstat: Unknown Job Id 4107.pbs-head\n"), ids)
    got = {k: (v.state, v.exit_code) for k, v in found.items() if v}
    assert got == {
        "4101.pbs-head": (ClusterState.COMPLETED, 0),
        "4102.pbs-head": (ClusterState.FAILED, 3),
        "4103.pbs-head": (ClusterState.FAILED, None),
        "4104.pbs-head": (ClusterState.FAILED, 128 + 15),
        "4105.pbs-head": (ClusterState.QUEUED, None),
        "4106.pbs-head": (ClusterState.RUNNING, None),
    }, "4107 is unknown to the server: left out, so the poller looks for its record"
    assert "TIMEOUT" in (found["4103.pbs-head"].reason or "")
    assert "signal 15" in (found["4104.pbs-head"].reason or "")
    assert "Insufficient amount of resource" in (found["4105.pbs-head"].reason or "")


def test_pbs_server_errors_are_hiccups_not_answers() -> None:
    with pytest.raises(CommandError):
        pbs("pro").parse_status_output(
            result("", 1, "Connection refused\nqstat: cannot connect to server pbs-head"),
            ["4101.pbs-head"])
    with pytest.raises(CommandError):
        pbs("pro").parse_status_output(result("<html>proxy</html>"), ["4101.pbs-head"])


def test_pbs_qstat_x_table() -> None:
    table = parse_qstat_table((RECORDED / "qstat-x.txt").read_text())
    assert table == {"4101.pbs-head": ("F", "workq"), "4102.pbs-head": ("F", "workq"),
                     "4105.pbs-head": ("Q", "workq"), "4106.pbs-head": ("R", "workq")}


def test_pbs_pro_partitions_from_queues_and_nodes() -> None:
    backend = pbs("pro")
    parts = {p.name: p for p in backend.parse_partitions([
        result((RECORDED / "qstat-Qf-F-json.json").read_text()),
        result((RECORDED / "pbsnodes-a-F-json.json").read_text())])}
    assert set(parts) == {"workq", "gpu"}, "route queues run no jobs"
    assert (parts["workq"].nodes_total, parts["workq"].cores_total) == (2, 32)
    assert parts["workq"].cores_used == 1 and parts["workq"].nodes_used == 1  # node02 down
    assert parts["workq"].memory_mb == 64000
    assert (parts["gpu"].state, parts["gpu"].cores_total) == ("down", 32)


def test_torque_text_with_continuation_lines_and_walltime_kill() -> None:
    text = (RECORDED / "torque-qstat-f.txt").read_text()
    ids = ["5120", "5121", "5122"]
    found = pbs("torque").parse_status_output(result(text), ids)
    assert (found["5120"].state, found["5120"].exit_code) == (ClusterState.FAILED, 2)
    assert found["5121"].state is ClusterState.FAILED
    assert "TIMEOUT" in (found["5121"].reason or "")
    assert found["5122"].state is ClusterState.RUNNING


def test_torque_ended_without_exit_status_is_tentative() -> None:
    text = "Job Id:\t9\n\tJob_Name = x\n\tjob_state = C\n\tqueue = debug\n"
    status = pbs("torque").parse_status_output(result(text), ["9"])["9"]
    assert status is not None and status.tentative and status.state is ClusterState.FAILED


def test_slurm_squeue_lines_garbage_and_unknown_states() -> None:
    backend = create_backend("slurm")
    out = backend.parse_status_output(result(
        "11|PENDING|Resources\n12|RUNNING|None\n13|TIMEOUT|TimeLimit\n14|NEWSTATE|None\n"),
        ["11", "12", "13", "14", "15"])
    assert out["11"] is not None and out["11"].reason == "Resources"
    assert out["12"] is not None and out["12"].state is ClusterState.RUNNING
    assert out["13"] is not None and out["13"].reason == "TIMEOUT: TimeLimit"
    assert out["14"] is None, "listed in an unknown state: not gone, no update"
    assert "15" not in out
    with pytest.raises(CommandError):
        backend.parse_status_output(result("Traceback (most recent call last):\n"), ["11"])
    with pytest.raises(CommandError):
        backend.parse_status_output(result("", 1, "slurm_load_jobs error: Unable to contact "
                                                  "slurm controller (connect failure)"), ["11"])
    assert backend.parse_status_output(
        result("", 1, "slurm_load_jobs error: Invalid job id specified"), ["11"]) == {}


def test_slurm_accounting_exit_codes_and_signals() -> None:
    backend = create_backend("slurm")
    out = backend.parse_accounting_output(result(
        "21|COMPLETED|0:0\n22|FAILED|3:0\n23|CANCELLED by 0|0:15\n24|TIMEOUT|0:15\n"
        "25|OUT_OF_MEMORY|0:125\n26|RUNNING|0:0\n"), ["21", "22", "23", "24", "25", "26"])
    assert (out["21"].state, out["21"].exit_code) == (ClusterState.COMPLETED, 0)
    assert (out["22"].state, out["22"].exit_code) == (ClusterState.FAILED, 3)
    assert out["23"].state is ClusterState.CANCELLED
    assert out["24"].reason == "TIMEOUT" and out["25"].reason == "OUT_OF_MEMORY"
    assert "26" not in out, "not final: the queue, not accounting, speaks for it"


def test_lsf_exit_reasons() -> None:
    backend = create_backend("lsf")
    records = {"COMMAND": "bjobs", "JOBS": 4, "RECORDS": [
        {"JOBID": "1", "STAT": "EXIT", "EXIT_CODE": "140",
         "EXIT_REASON": "TERM_RUNLIMIT: job killed after reaching LSF run time limit"},
        {"JOBID": "2", "STAT": "EXIT", "EXIT_CODE": "130",
         "EXIT_REASON": "TERM_OWNER: job killed by owner"},
        {"JOBID": "3", "STAT": "DONE", "EXIT_CODE": "", "EXIT_REASON": ""},
        {"JOBID": "4", "ERROR": "Job <4> is not found"}]}
    out = backend.parse_status_output(result(json.dumps(records), 255), ["1", "2", "3", "4"])
    assert out["1"] is not None and "TIMEOUT" in (out["1"].reason or "")
    assert out["2"] is not None and out["2"].state is ClusterState.CANCELLED
    assert out["3"] is not None and (out["3"].state, out["3"].exit_code) == (
        ClusterState.COMPLETED, 0)
    assert "4" not in out
    with pytest.raises(CommandError):
        backend.parse_status_output(result("LSF is down. Please wait ...", 255), ["1"])


def test_hpc_pack_list_format_and_time_limit() -> None:
    text = ("Id                  : 7\nName                : simfarm-a-0\nState"
            "               : Canceled\nErrorMessage        : The job was canceled because it "
            "exceeded its run time.\n\nId                  : 8\nState               : "
            "Canceled\nErrorMessage        : Canceled by user.\n\n")
    assert parse_list_format(text)[0]["ErrorMessage"].startswith("The job was canceled")
    out = create_backend("winhpc").parse_status_output(result(text), ["7", "8"])
    assert out["7"] is not None and out["7"].state is ClusterState.FAILED
    assert "TIMEOUT" in (out["7"].reason or "")
    assert out["8"] is not None and out["8"].state is ClusterState.CANCELLED
    with pytest.raises(CommandError):
        parse_list_format("Error: something unexpected happened\n")


def test_recorded_files_are_valid_json() -> None:
    for path in Path(RECORDED).glob("*.json"):
        json.loads(path.read_text())
