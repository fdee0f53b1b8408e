"""Job scripts and scheduler options: escaping, directives, PyEDB option formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simfarm.workers.schedulers import (
    BackendConfig,
    ClusterJobRequest,
    ClusterOptions,
    create_backend,
)
from simfarm.workers.schedulers.errors import InvalidOptions
from simfarm.workers.schedulers.options import parse_memory_mb, parse_time_limit
from simfarm.workers.schedulers.render import ps_quote

HOSTILE = ["a b", "'", '"', "$(id)", "`id`", "$HOME", "a\nb", "\\", "*", "--x=1;rm -rf /", ""]
ID_VARIABLE = {"slurm": "SLURM_JOB_ID", "lsf": "LSB_JOBID", "pbs": "PBS_JOBID",
               "winhpc": "CCP_JOBID"}


def backend(kind: str):  # type: ignore[no-untyped-def]
    extra = {"pbs": {"flavour": "pro"}, "winhpc": {"node_os": "linux"}}.get(kind, {})
    return create_backend(kind, BackendConfig(extra=extra))


@pytest.mark.parametrize("kind", ["slurm", "lsf", "pbs", "winhpc"])
def test_rendered_script_runs_the_exact_argv_and_records_the_exit_code(
        kind: str, tmp_path: Path) -> None:
    program = "import json, sys; print(json.dumps(sys.argv[1:])); sys.exit(7)"
    request = ClusterJobRequest(job_id="job-1", argv=[sys.executable, "-c", program, *HOSTILE],
                                job_dir=tmp_path, env={"ODD": "x'y\"$z"}, cwd=str(tmp_path))
    script = tmp_path / "job.sh"
    script.write_text(backend(kind).render_script(request, ClusterOptions()))
    # Run the script as the compute node would, with the scheduler's job id variable.
    done = subprocess.run(["bash", str(script)], env={**os.environ, ID_VARIABLE[kind]: "42"},
                          timeout=30)
    assert done.returncode == 7
    assert (tmp_path / "42.ec").read_text().strip() == "7"
    printed = (tmp_path / "42.out").read_text().strip().splitlines()[-1]
    assert json.loads(printed) == HOSTILE


@pytest.mark.parametrize("field", ["queue", "account", "reservation", "qos", "constraints"])
def test_directive_injection_is_refused(field: str) -> None:
    with pytest.raises(InvalidOptions, match=field):
        ClusterOptions.from_any({field: "ok\n#SBATCH --uid=0"})
    with pytest.raises(InvalidOptions):
        ClusterOptions.from_any({field: 'a"b'})


def test_job_dir_with_spaces_is_refused_for_directive_schedulers(tmp_path: Path) -> None:
    request = ClusterJobRequest(job_id="j", argv=["true"], job_dir=tmp_path / "my jobs")
    with pytest.raises(InvalidOptions, match="must not contain spaces"):
        backend("slurm").render_script(request, ClusterOptions())


def test_job_id_must_be_safe_for_file_names(tmp_path: Path) -> None:
    request = ClusterJobRequest(job_id="../x", argv=["true"], job_dir=tmp_path)
    with pytest.raises(InvalidOptions):
        backend("lsf").render_script(request, ClusterOptions())


def test_powershell_script_quotes_every_value(tmp_path: Path) -> None:
    request = ClusterJobRequest(job_id="j1", argv=["C:\\Ansys\\ansysedt.exe", "it's",
                                                   "$env:PATH", "a\u2019b"],
                                job_dir=Path("C:/jobs/j1"), env={"K": "v'v"})
    text = create_backend("winhpc").render_script(request, ClusterOptions())
    assert "& 'C:\\Ansys\\ansysedt.exe' 'it''s' '$env:PATH' 'a\u2019\u2019b'" in text
    assert "SetEnvironmentVariable('K', 'v''v', 'Process')" in text
    assert ps_quote("\u2018x\u2019") == "'\u2018\u2018x\u2019\u2019'"


def test_pyedb_scheduler_option_formats() -> None:
    assert parse_time_limit("24:00:00") == 86400
    assert parse_time_limit("1.02:00:00") == 93600  # days.hours:minutes:seconds
    assert parse_time_limit("2-00:00:30") == 172830
    assert parse_time_limit("90") == 5400  # minutes
    assert parse_memory_mb("4GB") == 4096 and parse_memory_mb("512MB") == 512
    assert parse_memory_mb("2g") == 2048 and parse_memory_mb(100) == 100
    options = ClusterOptions.from_any({"queue": "default", "time": "00:30:00", "nodes": 2,
                                       "tasks_per_node": 4, "cores_per_node": 16,
                                       "memory": "4GB"})
    assert options.queue is None, "PyEDB's 'default' means the cluster default queue"
    assert (options.time_limit_s, options.total_tasks, options.cpus_per_task,
            options.total_cores) == (1800, 8, 4, 32)
    for bad in ({"time": "1:99:00"}, {"memory": "lots"}, {"priority": "Urgent"},
                {"nodes": 0}, {"email_notification": "not-an-address"}, {"colour": "red"}):
        with pytest.raises(InvalidOptions):
            ClusterOptions.from_any(bad)


def test_job_timeout_is_the_time_limit_when_options_set_none() -> None:
    assert ClusterOptions.from_any(None, time_limit_s=90.5).time_limit_s == 91
    assert ClusterOptions.from_any({"time": "00:01:00"}, time_limit_s=999).time_limit_s == 60


def test_licences_become_each_schedulers_directive(tmp_path: Path) -> None:
    request = ClusterJobRequest(job_id="lic", argv=["true"], job_dir=tmp_path,
                                licenses={"anshpc": 8, "electronics_desktop": 1})
    lines = {kind: [line for line in backend(kind).render_script(request, ClusterOptions())
                    .splitlines() if "anshpc" in line]
             for kind in ("slurm", "lsf", "pbs")}
    assert lines == {
        "slurm": ["#SBATCH --licenses=anshpc:8,electronics_desktop:1"],
        "lsf": ['#BSUB -R "rusage[anshpc=8:electronics_desktop=1]"'],
        "pbs": ["#PBS -l anshpc=8"]}
    hpc = create_backend("winhpc", BackendConfig(extra={"node_os": "windows"}))
    assert "/license:anshpc:8,electronics_desktop:1" in hpc.job_new_command(
        request, ClusterOptions())
    hostile = ClusterJobRequest(job_id="lic", argv=["true"], job_dir=tmp_path,
                                licenses={"a\n#SBATCH --uid=0": 1})
    with pytest.raises(InvalidOptions, match="licence"):
        backend("slurm").render_script(hostile, ClusterOptions())
