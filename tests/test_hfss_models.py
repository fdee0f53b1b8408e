"""Unit tests for simfarm.common.hfss: PyEDB-compatible HFSS job models."""

from __future__ import annotations

import json
import re
import tempfile
from typing import Any

import pytest
from pydantic import ValidationError

from simfarm.common.hfss import (
    HFSS3DLayoutBatchOptions,
    HFSSSimulationConfig,
    MachineNode,
    SchedulerOptions,
    SchedulerType,
    create_hfss_config,
    parse_memory_mb,
    parse_walltime,
)


def test_scheduler_type_values_match_pyedb() -> None:
    assert [t.value for t in SchedulerType] == ["none", "lsf", "slurm", "pbs", "windows_hpc"]
    assert SchedulerType("windows_hpc") is SchedulerType.WINDOWS_HPC


def test_scheduler_options_defaults() -> None:
    opts = SchedulerOptions()
    assert opts.model_dump() == {
        "queue": "default",
        "time": "24:00:00",
        "nodes": 1,
        "tasks_per_node": 1,
        "cores_per_node": 0,
        "memory": "4GB",
        "account": None,
        "reservation": None,
        "qos": None,
        "constraints": None,
        "exclusive": False,
        "gpus": 0,
        "gpu_type": None,
        "priority": "Normal",
        "email_notification": None,
        "run_as_administrator": False,
    }


@pytest.mark.parametrize(
    ("time", "seconds"),
    [("24:00:00", 86400), ("100:30:00", 361800), ("2.03:00:00", 183600), ("90", 5400)],
)
def test_scheduler_time_formats(time: str, seconds: int) -> None:
    assert SchedulerOptions(time=time).walltime_seconds == seconds
    assert parse_walltime(time) == seconds


@pytest.mark.parametrize("time", ["1h", "24:00", "1:99:00", "1.25:00:00", "", "1:00:00 "])
def test_scheduler_time_rejected(time: str) -> None:
    with pytest.raises(ValidationError):
        SchedulerOptions(time=time)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nodes", 0),
        ("tasks_per_node", 0),
        ("cores_per_node", -1),
        ("gpus", -1),
        ("priority", "Urgent"),
        ("memory", "lots"),
    ],
)
def test_scheduler_options_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError):
        SchedulerOptions(**{field: value})


def test_scheduler_options_validates_on_assignment() -> None:
    opts = SchedulerOptions()
    with pytest.raises(ValueError):
        opts.nodes = 0


@pytest.mark.parametrize(
    ("memory", "mb"),
    [
        ("4GB", 4096),
        ("512M", 512),
        ("64gb", 65536),
        ("2048", 2048),
        ("1TB", 1048576),
        ("8GiB", 8192),
    ],
)
def test_memory_parsing(memory: str, mb: int) -> None:
    assert parse_memory_mb(memory) == mb
    assert SchedulerOptions(memory=memory).memory_mb == mb


def test_machine_node_defaults_and_str() -> None:
    node = MachineNode()
    assert (node.hostname, node.cores, node.max_cores, node.utilization) == (
        "localhost",
        -1,
        20,
        90,
    )
    assert str(node) == "localhost:-1:20:90%"
    assert (
        str(MachineNode(hostname="n01", cores=8, max_cores=32, utilization=100)) == "n01:8:32:100%"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"utilization": 0},
        {"utilization": 101},
        {"max_cores": 0},
        {"hostname": ""},
        {"hostname": "a:b"},
        {"hostname": "a,b"},
        {"cores": 0},
        {"cores": -2},
    ],
)
def test_machine_node_rejects(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MachineNode(**kwargs)


def test_layout_options_defaults_and_batch_string() -> None:
    opts = HFSS3DLayoutBatchOptions()
    assert opts.create_starting_mesh is False
    assert opts.default_process_priority == "Normal"
    assert opts.mpi_vendor == "Intel"
    assert opts.mpi_version == "Default"
    assert opts.remote_spawn_command == "Scheduler"
    assert opts.temp_directory == tempfile.gettempdir()
    text = HFSS3DLayoutBatchOptions(
        enable_gpu=True, mpi_vendor="Open MPI"
    ).to_batch_options_string()
    assert text.startswith(
        "'HFSS 3D Layout Design/CreateStartingMesh'='0' "
        "'HFSS 3D Layout Design/DefaultProcessPriority'='Normal' "
        "'HFSS 3D Layout Design/EnableGPU'='1' 'HFSS 3D Layout Design/MPIVendor'='Open MPI' "
    )
    assert text.endswith("'Q3D Extractor/RAMLimitPercent'='90'")
    assert text.count("'='") == 13


@pytest.mark.parametrize(
    "kwargs",
    [{"default_process_priority": "Realtime"}, {"mpi_vendor": "MPICH"}, {"temp_directory": ""}],
)
def test_layout_options_rejects(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        HFSS3DLayoutBatchOptions(**kwargs)


def test_config_defaults_and_auto_jobid() -> None:
    cfg = HFSSSimulationConfig(project_path="/data/board.aedb")
    assert re.fullmatch(r"JOB_\d{8}_\d{6}_[0-9a-f]{8}", cfg.jobid)
    assert cfg.solver == "Hfss3DLayout"
    assert cfg.user == "unknown"
    assert (cfg.distributed, cfg.auto, cfg.non_graphical, cfg.monitor) == (True, True, True, True)
    assert [str(n) for n in cfg.machine_nodes] == ["localhost:-1:20:90%"]
    assert (cfg.design_name, cfg.design_mode, cfg.setup_name) == ("", "", "")
    assert cfg.scheduler_type is SchedulerType.NONE
    assert cfg.ansys_edt_path == ""
    other = HFSSSimulationConfig(project_path="/data/board.aedb")
    assert other.jobid != cfg.jobid


def test_config_does_not_require_project_on_submitting_machine() -> None:
    cfg = HFSSSimulationConfig(project_path="/nowhere/on/this/host/design.AEDT")
    assert cfg.project_path.endswith(".AEDT")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"project_path": "/data/board.txt"},
        {"jobid": "bad id"},
        {"jobid": "x;rm"},
        {"scheduler_type": "sge"},
        {"scheduler_options": {"nodes": 0}},
        {"unknown_field": 1},
    ],
)
def test_config_rejects(kwargs: dict[str, object]) -> None:
    data: dict[str, object] = {"project_path": "/data/board.aedt", **kwargs}
    with pytest.raises(ValueError):
        HFSSSimulationConfig(**data)


def test_config_string_helpers() -> None:
    cfg = HFSSSimulationConfig(
        project_path="/p.aedt",
        design_name="main",
        design_mode="Nominal",
        setup_name="Setup1",
        machine_nodes=[MachineNode(hostname="a", cores=4), MachineNode(hostname="b", cores=8)],
        scheduler_options=SchedulerOptions(nodes=3, tasks_per_node=2),
    )
    assert cfg.generate_design_string() == "main:Nominal:Setup1"
    assert cfg.generate_machinelist_string() == "list=a:4:20:90%,b:8:20:90%"
    assert cfg.num_cores_for_scheduler() == 6
    cfg.scheduler_options = SchedulerOptions(nodes=2, cores_per_node=16, tasks_per_node=2)
    assert cfg._num_cores_for_scheduler() == 32
    assert cfg.generate_batch_options_string() == cfg.layout_options.to_batch_options_string()


def test_to_dict_from_dict_round_trip_through_json() -> None:
    cfg = create_hfss_config(
        project_path="/shared/array.aedt",
        jobid="array_001",
        ansys_edt_path="/ansys/v252/Linux64/ansysedt",
        design_name="main",
        setup_name="Setup1",
        scheduler_type=SchedulerType.SLURM,
        scheduler_options=SchedulerOptions(
            queue="compute", nodes=4, memory="64GB", time="08:00:00"
        ),
        user="alice",
    )
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["scheduler_type"] == "slurm"
    assert {"platform", "timestamp", "version"} <= data.keys()
    back = HFSSSimulationConfig.from_dict(data)
    assert back.model_dump() == cfg.model_dump()
    # PyEDB-style direct construction from to_dict output also works.
    assert HFSSSimulationConfig(**data).model_dump() == cfg.model_dump()


@pytest.mark.parametrize("cfg", [
    HFSSSimulationConfig(),
    HFSSSimulationConfig.from_dict({"project_path": "/p/x.aedb", "jobid": "j1"}),
    create_hfss_config(project_path="/p/y.aedt", jobid="j2", scheduler_type=SchedulerType.PBS,
                       machine_nodes=[MachineNode(hostname="h1", cores=4), MachineNode()],
                       scheduler_options=SchedulerOptions(nodes=2, account="acc", gpus=1),
                       layout_options=HFSS3DLayoutBatchOptions(enable_gpu=True)),
])
def test_dump_of_stored_puts_the_defaults_back(cfg: HFSSSimulationConfig) -> None:
    """What the gateway stores (defaults left out) reads back as the full dump, without
    building the model: PyEDB's job list shows every key of every config."""
    stored = json.loads(cfg.model_dump_json(exclude_defaults=True))
    assert HFSSSimulationConfig.dump_of_stored(stored) == cfg.model_dump(mode="json")


def test_from_dict_fallbacks_match_pyedb() -> None:
    cfg = HFSSSimulationConfig.from_dict({"project_path": "/p/x.aedb", "user": None})
    assert (cfg.design_name, cfg.design_mode, cfg.setup_name) == ("main", "Nominal", "Setup1")
    assert cfg.machine_nodes == []
    assert cfg.user == "unknown"
    assert cfg.jobid.startswith("JOB_")
    assert cfg.scheduler_options == SchedulerOptions()


def test_create_hfss_config_defaults() -> None:
    cfg = create_hfss_config(project_path="/p/antenna.aedt")
    assert cfg.jobid.startswith("JOB_")
    assert [str(n) for n in cfg.machine_nodes] == ["localhost:-1:20:90%"]
    assert cfg.scheduler_options == SchedulerOptions()
    cfg2 = create_hfss_config("/p/antenna.aedt", jobid=None, ansys_edt_path=None, distributed=False)
    assert cfg2.distributed is False
    assert cfg2.ansys_edt_path == ""


def test_scheduler_type_accepts_any_case_and_dict_options() -> None:
    # As in PyEDB's documented example, which PyEDB itself rejected.
    cfg = create_hfss_config(
        project_path="antenna.AEDB",
        scheduler_type="SLURM",  # type: ignore[arg-type]
        scheduler_options={"queue": "hpclarge", "nodes": 2, "cores_per_node": 32},  # type: ignore[arg-type]
    )
    assert cfg.scheduler_type is SchedulerType.SLURM
    assert cfg.num_cores_for_scheduler() == 64
    cfg.scheduler_type = "Windows_HPC"  # type: ignore[assignment]
    assert cfg.scheduler_type is SchedulerType.WINDOWS_HPC


def test_hfss_job_spec_derives_routing_and_time_limit() -> None:
    # Derived at submit (the gateway's admission calls hfss_defaults), not by the model.
    from simfarm.common.hfss_jobs import hfss_defaults
    from simfarm.common.models import JobSpec

    spec = hfss_defaults(JobSpec(kind="hfss", hfss={  # type: ignore[arg-type]
        "project_path": "/p/a.aedt",
        "machine_nodes": [{"hostname": "localhost", "cores": 6}],
        "scheduler_options": {"time": "2:00:00"},
    }))
    assert spec.resources.labels == {"aedt.any": "yes"}
    assert spec.resources.cores == 6
    assert spec.timeout_s == 7200
    cluster = hfss_defaults(JobSpec(kind="hfss", hfss={  # type: ignore[arg-type]
        "project_path": "/p/a.aedt", "scheduler_type": "slurm"}))
    assert cluster.resources.labels == {"scheduler": "slurm"}
    explicit = hfss_defaults(JobSpec(
        kind="hfss", hfss={"project_path": "/p/a.aedt"},  # type: ignore[arg-type]
        resources={"cores": 2, "labels": {"aedt.2024.2": "yes"}},  # type: ignore[arg-type]
        timeout_s=60))
    assert explicit.resources.labels == {"aedt.2024.2": "yes"} and explicit.timeout_s == 60
    for bad in ({"kind": "hfss"}, {"kind": "hfss", "hfss": {"project_path": "/a.aedt"},
                                   "argv": ["x"]},
                {"kind": "command", "argv": ["x"], "hfss": {"project_path": "/a.aedt"}}):
        with pytest.raises(ValidationError):
            JobSpec.model_validate(bad)


def test_hfss_cores_rule_tells_ansysedt_what_is_reserved() -> None:
    from simfarm.common.hfss_jobs import HfssRequestRejected, hfss_defaults
    from simfarm.common.models import JobSpec

    def settle(nodes: list[dict[str, Any]], **resources: Any) -> tuple[int, list[str]]:
        spec = JobSpec.model_validate({
            "kind": "hfss", "hfss": {"project_path": "/p/a.aedt", "machine_nodes": nodes},
            **({"resources": resources} if resources else {})})
        settled = hfss_defaults(spec)
        assert hfss_defaults(settled) == settled  # settling twice changes nothing
        assert settled.hfss is not None
        return settled.resources.cores, [str(n) for n in settled.hfss.machine_nodes]

    assert settle([{"cores": -1}]) == (1, ["localhost:1:20:90%"])
    assert settle([{"cores": -1}], cores=32) == (32, ["localhost:32:32:90%"])
    assert settle([{"cores": 16}]) == (16, ["localhost:16:20:90%"])
    assert settle([{"hostname": "a", "cores": 4}, {"hostname": "b", "cores": -1}],
                  cores=10) == (10, ["a:4:20:90%", "b:6:20:90%"])
    for nodes, cores in (([{"cores": 16}], 4), ([{"hostname": "a", "cores": 4},
                                                 {"hostname": "b", "cores": -1}], 4)):
        with pytest.raises(HfssRequestRejected) as err:
            settle(nodes, cores=cores)
        assert err.value.field == "resources.cores"
    gpu = hfss_defaults(JobSpec.model_validate({
        "kind": "hfss", "hfss": {"project_path": "/p/a.aedt"},
        "resources": {"labels": {"gpu": "a100"}}}))
    assert gpu.resources.labels == {"gpu": "a100", "aedt.any": "yes"}
