"""The FAKE ansysedt (tests/fakes/ansysedt) takes what simfarm builds and rejects bad flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simfarm.common.aedt import build_ansysedt_argv
from simfarm.common.hfss import MachineNode, SchedulerOptions, SchedulerType, create_hfss_config
from simfarm.workers.aedt_log import ProgressTracker, failure_reason, is_error_line

FAKE = Path(__file__).parent / "fakes" / "ansysedt"


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "FAKE_ANSYSEDT_SECONDS": "0.05", **env}
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, env=full_env, timeout=30
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "board.aedt"
    path.write_text("$begin 'Setup1'\nMaximumPasses=6\n$end 'Setup1'\n")
    return path


def test_accepts_local_argv_and_writes_log_results_and_monitor(project: Path) -> None:
    cfg = create_hfss_config(project_path=str(project), jobid="J1", design_name="main",
                             setup_name="Setup1")
    argv = build_ansysedt_argv(cfg, FAKE)
    done = run(argv, FAKE_ANSYSEDT_PASSES="4")
    assert done.returncode == 0, done.stderr
    log = project.with_suffix(".log").read_text().splitlines()
    assert any(line.startswith("Batch Solve/Save: ") for line in log)
    tracker = ProgressTracker(max_passes=6)
    for line in log:
        tracker.feed(line)
    assert tracker.adaptive_pass == 4 and tracker.converged and tracker.completed_normally
    # -monitor echoes the log messages on stdout.
    assert "[CONVERGE] Pass Number:  4;" in done.stdout
    assert (project.with_suffix(".aedtresults") / "main.results" / "Setup1.profile").is_file()


def test_accepts_scheduler_argv(project: Path) -> None:
    cfg = create_hfss_config(
        project_path=str(project),
        jobid="S1",
        scheduler_type=SchedulerType.SLURM,
        scheduler_options=SchedulerOptions(nodes=2, cores_per_node=4),
        monitor=False,
    )
    done = run(build_ansysedt_argv(cfg, FAKE))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # no -monitor, nothing on stdout


def test_log_is_appended_across_runs_and_respects_max_passes(project: Path) -> None:
    cfg = create_hfss_config(project_path=str(project), jobid="J2")
    argv = build_ansysedt_argv(cfg, FAKE)
    assert run(argv).returncode == 0
    done = run(argv, FAKE_ANSYSEDT_PASSES="9", FAKE_ANSYSEDT_SWEEP_POINTS="0")
    assert done.returncode == 0
    text = project.with_suffix(".log").read_text()
    assert text.count("Starting Batch Run:") == 2
    assert "Adaptive Pass 6 :" in text and "Adaptive Pass 7 :" not in text
    assert "Adaptive Passes did not converge" in text


def test_exit_code_and_solver_error(project: Path) -> None:
    argv = build_ansysedt_argv(create_hfss_config(project_path=str(project), jobid="J3"), FAKE)
    crashed = run(argv, FAKE_ANSYSEDT_EXIT_CODE="7")
    assert crashed.returncode == 7
    failed = run(argv, FAKE_ANSYSEDT_OUTCOME="solver_error")
    assert failed.returncode == 0  # AEDT may exit 0 after a failed solve ...
    errors = [line for line in failed.stderr.splitlines() if is_error_line(line)]
    assert failure_reason(failed.returncode, errors) is not None  # ... the log tells.
    benign = run(argv, FAKE_ANSYSEDT_OUTCOME="error_word")
    errors = [line for line in benign.stdout.splitlines() if is_error_line(line)]
    assert "Error tolerance" in benign.stdout and errors == []


def test_records_argv(project: Path, tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    argv = build_ansysedt_argv(create_hfss_config(project_path=str(project), jobid="J4"), FAKE)
    run(argv, FAKE_ANSYSEDT_RECORD=str(record))
    assert json.loads(record.read_text()) == argv[1:]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-ng", "-bogus", "-batchsolve", "{p}"], "unknown command line option -bogus"),
        (["-ng", "{p}"], "-ng (non-graphical) needs a batch action"),
        (["-monitor", "{p}"], "-monitor is only valid with a batch action"),
        (["-ng", "-distributed", "-batchsolve", "{p}"], "-distributed needs -machinelist"),
        (["-ng", "-machinelist", "list=a:b:c", "-batchsolve", "{p}"], "malformed -machinelist"),
        (["-ng", "-machinelist", "cores=4", "-batchsolve", "{p}"], "malformed -machinelist"),
        (["-ng", "-batchoptions", "RAM=90", "-batchsolve", "{p}"], "malformed -batchoptions"),
        (["-ng", "-batchsolve", "main::Setup1", "{p}"], "malformed design spec"),
        (["-ng", "-batchsolve", "main:Weird:Setup1", "{p}"], "malformed design spec"),
        (["-ng", "-jobid", "-ng", "-batchsolve", "{p}"], "option -jobid needs a value"),
        (["-ng", "-batchsolve", "{p}x"], "not an .aedt or .aedb project"),
        (["-ng", "-batchsolve", "{missing}"], "does not exist"),
    ],
)
def test_rejects_what_ansysedt_rejects(
    project: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    argv = [a.format(p=project, missing=tmp_path / "gone.aedt") for a in args]
    done = run([str(FAKE), *argv])
    assert done.returncode == 1
    assert message in done.stderr
    assert not project.with_suffix(".log").exists()


def test_accepts_case_insensitive_flags_and_machine_list_forms(project: Path) -> None:
    nodes = [MachineNode(hostname="n1.lab", cores=4), MachineNode(hostname="n2", cores=-1)]
    cfg = create_hfss_config(project_path=str(project), jobid="J5", machine_nodes=nodes)
    assert run(build_ansysedt_argv(cfg, FAKE)).returncode == 0
    argv = [str(FAKE), "-NG", "-Distributed", "-MachineList", "num=4", "-BatchSolve", str(project)]
    assert run(argv).returncode == 0
