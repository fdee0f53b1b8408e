"""AEDT discovery and the exact ansysedt argv (simfarm.common.aedt)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from simfarm.common.aedt import (
    AEDTNotFoundError,
    batchsolve_target,
    build_ansysedt_argv,
    discover_aedt,
    find_aedt,
    normalize_version,
)
from simfarm.common.hfss import (
    HFSS3DLayoutBatchOptions,
    MachineNode,
    SchedulerOptions,
    SchedulerType,
    create_hfss_config,
)

BATCH = (
    "'HFSS 3D Layout Design/CreateStartingMesh'='0' "
    "'HFSS 3D Layout Design/DefaultProcessPriority'='Normal' "
    "'HFSS 3D Layout Design/EnableGPU'='0' "
    "'HFSS 3D Layout Design/MPIVendor'='Intel' "
    "'HFSS 3D Layout Design/MPIVersion'='Default' "
    "'HFSS 3D Layout Design/RemoteSpawnCommand'='Scheduler' "
    "'HFSS 3D Layout Design/SolveAdaptiveOnly'='0' "
    "'HFSS 3D Layout Design/ValidateOnly'='0' "
    "'HFSS 3D Layout Design/RAMLimitPercent'='90' "
    "'HFSS/RAMLimitPercent'='90' "
    "'Maxwell 2D/RAMLimitPercent'='90' "
    "'Maxwell 3D/RAMLimitPercent'='90' "
    "'Q3D Extractor/RAMLimitPercent'='90'"
)
EXE = "/ansys_inc/v252/AnsysEM/ansysedt"


def _make_exe(folder: Path, name: str = "ansysedt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / name
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


# --- argv -----------------------------------------------------------------


def test_local_argv_matches_pyedb_default_config() -> None:
    cfg = create_hfss_config(project_path="/data/board.aedb", jobid="JOB_1")
    assert build_ansysedt_argv(cfg, EXE) == [
        EXE, "-jobid", "JOB_1",
        "-machinelist", "list=localhost:-1:20:90%",
        "-ng", "-monitor",
        "-batchoptions", BATCH,
        "-batchsolve", "/data/board.aedb",
    ]  # fmt: skip


def test_local_argv_with_design_and_several_hosts() -> None:
    cfg = create_hfss_config(
        project_path="/shared/pkg.aedt",
        jobid="pkg-7",
        design_name="main",
        setup_name="Setup1",
        machine_nodes=[
            MachineNode(hostname="node01", cores=16, max_cores=32, utilization=80),
            MachineNode(hostname="node02", cores=8),
        ],
        monitor=False,
        layout_options=HFSS3DLayoutBatchOptions(enable_gpu=True),
    )
    argv = build_ansysedt_argv(cfg, EXE)
    assert argv[:8] == [
        EXE, "-jobid", "pkg-7", "-distributed",
        "-machinelist", "list=node01:16:32:80%,node02:8:20:90%", "-ng", "-batchoptions",
    ]  # fmt: skip
    assert "'HFSS 3D Layout Design/EnableGPU'='1'" in argv[8]
    assert argv[9:] == ["-batchsolve", "main:Nominal:Setup1", "/shared/pkg.aedt"]
    assert "-auto" not in argv and "-monitor" not in argv


def test_local_argv_never_auto_and_no_distributed_on_one_host() -> None:
    cfg = create_hfss_config(
        project_path="/p.aedt", jobid="a", design_name="d", auto=True, distributed=True
    )
    argv = build_ansysedt_argv(cfg, EXE)
    assert "-auto" not in argv and "-distributed" not in argv
    assert argv[-2:] == ["d", "/p.aedt"]


def test_scheduler_argv_uses_numcores_and_auto() -> None:
    cfg = create_hfss_config(
        project_path="/shared/array.aedt",
        jobid="array_001",
        design_name="main",
        setup_name="Setup1",
        scheduler_type=SchedulerType.SLURM,
        scheduler_options=SchedulerOptions(nodes=4, cores_per_node=32),
    )
    cfg.design_mode = "Optimetrics"
    assert build_ansysedt_argv(cfg, EXE) == [
        EXE, "-jobid", "array_001",
        "-distributed", "-machinelist", "numcores=128",
        "-auto", "-ng", "-monitor",
        "-batchoptions", BATCH,
        "-batchsolve", "main:Optimetrics:Setup1", "/shared/array.aedt",
    ]  # fmt: skip


def test_scheduler_argv_not_distributed_has_no_machinelist() -> None:
    cfg = create_hfss_config(
        project_path="/s/x.aedb",
        jobid="x",
        scheduler_type=SchedulerType.LSF,
        distributed=False,
        auto=False,
        non_graphical=False,
    )
    assert build_ansysedt_argv(cfg, EXE) == [
        EXE, "-jobid", "x", "-monitor", "-batchoptions", BATCH, "-batchsolve", "/s/x.aedb",
    ]  # fmt: skip


def test_argv_keeps_spaces_as_single_elements() -> None:
    cfg = create_hfss_config(project_path="/my projects/a b.aedt", jobid="j")
    argv = build_ansysedt_argv(cfg, "/opt/Ansys EM/ansysedt")
    assert argv[0] == "/opt/Ansys EM/ansysedt"
    assert argv[-1] == "/my projects/a b.aedt"


@pytest.mark.parametrize(
    ("design", "mode", "setup", "expected"),
    [
        ("", "", "", []),
        ("", "Nominal", "Setup1", []),
        ("main", "", "", ["main"]),
        ("main", "Nominal", "", ["main:Nominal"]),
        ("main", "", "S1", ["main:Nominal:S1"]),
        ("main", "Optimetrics", "Param", ["main:Optimetrics:Param"]),
    ],
)
def test_batchsolve_target(design: str, mode: str, setup: str, expected: list[str]) -> None:
    cfg = create_hfss_config(project_path="/p.aedt", design_name=design, setup_name=setup)
    cfg.design_mode = mode
    assert batchsolve_target(cfg) == expected


# --- discovery ------------------------------------------------------------


def test_discovery_from_env_newest_first(tmp_path: Path) -> None:
    old = _make_exe(tmp_path / "AnsysEM" / "v232" / "Linux64")
    new = _make_exe(tmp_path / "ANSYS Inc" / "v252" / "AnsysEM")
    awp = _make_exe(tmp_path / "awp" / "v251" / "AnsysEM")
    env = {
        "ANSYSEM_ROOT232": str(old.parent),
        "ANSYSEM_ROOT252": str(new.parent),
        "AWP_ROOT251": str(tmp_path / "awp" / "v251"),
        "ANSYSEM_ROOT241": str(tmp_path / "missing"),
        "PATH": "/usr/bin",
    }
    found = discover_aedt(environ=env, locations=[], system="Linux")
    assert [(i.version, i.release, i.executable) for i in found] == [
        ("252", "2025.2", new),
        ("251", "2025.1", awp),
        ("232", "2023.2", old),
    ]
    assert found[0].source == "ANSYSEM_ROOT252"


def test_discovery_scans_standard_folders_and_dedupes(tmp_path: Path) -> None:
    a = _make_exe(tmp_path / "ansys_inc" / "v242" / "AnsysEM")
    b = _make_exe(tmp_path / "AnsysEM" / "AnsysEM21.1" / "Linux64")
    not_exe = tmp_path / "ansys_inc" / "v261" / "AnsysEM"
    not_exe.mkdir(parents=True)
    (not_exe / "ansysedt").write_text("")  # not executable: ignored
    locations = [(tmp_path / "ansys_inc", "v*/AnsysEM"), (tmp_path / "AnsysEM", "AnsysEM*/Linux64")]
    env = {"ANSYSEM_ROOT242": str(a.parent)}
    found = discover_aedt(environ=env, locations=locations, system="Linux")
    assert [(i.version, i.executable) for i in found] == [("242", a), ("211", b)]


def test_windows_executable_name(tmp_path: Path) -> None:
    exe = _make_exe(tmp_path / "v252" / "AnsysEM", "ansysedt.exe")
    found = discover_aedt(
        environ={"ANSYSEM_ROOT252": str(exe.parent)}, locations=[], system="Windows"
    )
    assert found[0].executable == exe


def test_find_aedt_version_and_errors(tmp_path: Path) -> None:
    exe = _make_exe(tmp_path / "v251")
    env = {"ANSYSEM_ROOT251": str(exe.parent)}
    assert find_aedt(version="2025R1", environ=env, locations=[]).executable == exe
    with pytest.raises(AEDTNotFoundError, match=r"AEDT 252 is not installed here \(found 2025.1\)"):
        find_aedt(version="2025.2", environ=env, locations=[])
    with pytest.raises(AEDTNotFoundError, match="ANSYSEM_ROOT<ver>"):
        find_aedt(environ={}, locations=[(tmp_path / "nothing", "v*")])


def test_find_aedt_explicit_file_or_folder(tmp_path: Path) -> None:
    exe = _make_exe(tmp_path / "v242" / "Linux64")
    assert find_aedt(str(exe), environ={}).executable == exe
    assert find_aedt(str(exe.parent), environ={}, system="Linux").version == "242"
    with pytest.raises(AEDTNotFoundError, match="does not exist"):
        find_aedt(str(tmp_path / "nope" / "ansysedt"), environ={})


@pytest.mark.parametrize(
    ("text", "version"),
    [("252", "252"), ("v242", "242"), ("25.2", "252"), ("2025.2", "252"), ("2025 R1", "251")],
)
def test_normalize_version(text: str, version: str) -> None:
    assert normalize_version(text) == version


def test_normalize_version_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        normalize_version("latest")
