"""Find Ansys Electronics Desktop installs and build ``ansysedt`` batch command lines.

Discovery looks at, in this order, ``ANSYSEM_ROOT<ver>`` / ``ANSYSEMSV_ROOT<ver>``
(the directory holding ``ansysedt``), ``AWP_ROOT<ver>`` (the release root, AEDT in
its ``AnsysEM`` folder) and the standard install folders of Linux
(``/ansys_inc/v252/AnsysEM``, ``/opt/AnsysEM/v242/Linux64``, ...) and Windows
(``C:\\Program Files\\ANSYS Inc\\v252\\AnsysEM``, ``C:\\Program Files\\AnsysEM\\v242\\Win64``,
...).  Results are newest first; only folders that really contain the executable count.

The command line follows PyEDB's ``generate_command_list`` and Ansys' batch
options (``-jobid``, ``-distributed``, ``-machinelist``, ``-auto``, ``-ng``,
``-monitor``, ``-batchoptions``, ``-batchsolve [design[:mode[:setup]]] project``), as
an argv list: never a shell string.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from simfarm.common.hfss import HFSSSimulationConfig, SchedulerType, normalize_aedt_version
from simfarm.common.hfss_jobs import aedt_labels

normalize_version = normalize_aedt_version  # short name used by callers

__all__ = [
    "AEDTInstall",
    "AEDTNotFoundError",
    "batchsolve_target",
    "build_ansysedt_argv",
    "discover_aedt",
    "executable_name",
    "find_aedt",
    "node_aedt_labels",
    "normalize_version",
    "standard_locations",
]

_ENV_ROOT = re.compile(r"^ANSYSEM(?:SV)?_ROOT(\d{3})$", re.IGNORECASE)
_ENV_AWP = re.compile(r"^AWP_ROOT(\d{3})$", re.IGNORECASE)
_DIR_VERSION = (
    re.compile(r"^v(\d{3})$", re.IGNORECASE),  # v252
    re.compile(r"^AnsysEM(\d{2})\.(\d)$", re.IGNORECASE),  # AnsysEM21.1
)
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


class AEDTNotFoundError(RuntimeError):
    """No usable Ansys Electronics Desktop was found (or not the requested version)."""


@dataclass(frozen=True)
class AEDTInstall:
    """One AEDT installation: ``version`` is Ansys' 3-digit form, e.g. ``"252"``."""

    version: str
    executable: Path
    source: str

    @property
    def release(self) -> str:
        """Human form of the version, e.g. ``"2025.2"`` (``"unknown"`` if not known)."""
        if not self.version.isdigit():
            return "unknown"
        return f"20{self.version[:2]}.{self.version[2:]}"

    @property
    def root(self) -> Path:
        """The folder holding the executable."""
        return self.executable.parent


def executable_name(system: str | None = None) -> str:
    """``ansysedt.exe`` on Windows, ``ansysedt`` elsewhere."""
    return "ansysedt.exe" if (system or platform.system()) == "Windows" else "ansysedt"


def standard_locations(
    system: str | None = None, environ: Mapping[str, str] | None = None
) -> list[tuple[Path, str]]:
    """Return ``(base folder, glob)`` pairs where AEDT is installed by default."""
    system = system or platform.system()
    env = os.environ if environ is None else environ
    if system == "Windows":
        program_files = Path(env.get("ProgramFiles", r"C:\Program Files"))
        return [
            (program_files / "ANSYS Inc", "v*/AnsysEM"),
            (program_files / "AnsysEM", "v*/Win64"),
            (program_files / "AnsysEM", "AnsysEM*/Win64"),
        ]
    return [
        (Path("/ansys_inc"), "v*/AnsysEM"),
        (Path("/opt/ansys_inc"), "v*/AnsysEM"),
        (Path("/usr/ansys_inc"), "v*/AnsysEM"),
        (Path("/opt/AnsysEM"), "v*/Linux64"),
        (Path("/opt/AnsysEM"), "AnsysEM*/Linux64"),
    ]


def _version_from_path(path: Path) -> str:
    for part in reversed(path.parts):
        for pattern in _DIR_VERSION:
            if m := pattern.match(part):
                return "".join(m.groups())
    return "unknown"


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _in_folder(folder: Path, exe: str, version: str, source: str) -> AEDTInstall | None:
    candidate = folder / exe
    if _is_executable(candidate):
        return AEDTInstall(version=version, executable=candidate, source=source)
    return None


def discover_aedt(
    environ: Mapping[str, str] | None = None,
    locations: Sequence[tuple[Path, str]] | None = None,
    system: str | None = None,
) -> list[AEDTInstall]:
    """Return every AEDT install found, newest version first, without duplicates."""
    env = os.environ if environ is None else environ
    system = system or platform.system()
    exe = executable_name(system)
    found: list[AEDTInstall] = []
    for key, value in env.items():
        if not value:
            continue
        if m := _ENV_ROOT.match(key):
            hit = _in_folder(Path(value), exe, m.group(1), key)
        elif m := _ENV_AWP.match(key):
            hit = None
            for sub in ("AnsysEM", "AnsysEM/Linux64", "AnsysEM/Win64"):
                hit = hit or _in_folder(Path(value) / sub, exe, m.group(1), key)
        else:
            continue
        if hit:
            found.append(hit)
    for base, pattern in locations if locations is not None else standard_locations(system, env):
        if not base.is_dir():
            continue
        for folder in sorted(base.glob(pattern)):
            hit = _in_folder(folder, exe, _version_from_path(folder), "install folder")
            if hit:
                found.append(hit)
    unique: dict[Path, AEDTInstall] = {}
    for install in found:
        unique.setdefault(install.executable.resolve(), install)
    return sorted(
        unique.values(),
        key=lambda i: int(i.version) if i.version.isdigit() else -1,
        reverse=True,
    )


@functools.cache
def node_aedt_labels() -> dict[str, str]:
    """Labels this node advertises for the AEDT installs it has (found once per process)."""
    return aedt_labels(install.version for install in discover_aedt())


def _explicit(path: str, system: str | None) -> AEDTInstall:
    given = Path(path).expanduser()
    if given.is_dir():
        hit = _in_folder(given, executable_name(system), _version_from_path(given), "explicit")
        if hit is None:
            raise AEDTNotFoundError(f"no {executable_name(system)} in folder {given}")
        return hit
    if not _is_executable(given):
        raise AEDTNotFoundError(f"ansys_edt_path {given} does not exist or is not executable")
    version = _version_from_path(given.parent)
    return AEDTInstall(version=version, executable=given, source="explicit")


def find_aedt(
    explicit_path: str | None = None,
    version: str | None = None,
    environ: Mapping[str, str] | None = None,
    locations: Sequence[tuple[Path, str]] | None = None,
    system: str | None = None,
) -> AEDTInstall:
    """Return the AEDT to use: ``explicit_path`` if given, else the newest (of ``version``).

    Raises :class:`AEDTNotFoundError` with a message saying what was searched.
    """
    if explicit_path:
        return _explicit(explicit_path, system)
    installs = discover_aedt(environ, locations, system)
    wanted = normalize_version(version) if version else None
    for install in installs:
        if wanted is None or install.version == wanted:
            return install
    where = locations if locations is not None else standard_locations(system, environ)
    searched = ", ".join(str(base / pattern) for base, pattern in where)
    if wanted and installs:
        have = ", ".join(i.release for i in installs)
        raise AEDTNotFoundError(f"AEDT {wanted} is not installed here (found {have})")
    raise AEDTNotFoundError(
        "no Ansys Electronics Desktop found: set ANSYSEM_ROOT<ver> (e.g. ANSYSEM_ROOT252) "
        f"or give ansys_edt_path; searched {searched}"
    )


def batchsolve_target(config: HFSSSimulationConfig) -> list[str]:
    """Return the optional ``design[:Nominal|Optimetrics[:setup]]`` argument of ``-batchsolve``.

    Empty when no design is named (AEDT then solves every setup of the project);
    an empty design mode with a setup becomes ``Nominal``.
    """
    if not config.design_name:
        return []
    parts = [config.design_name]
    if config.design_mode or config.setup_name:
        parts.append(config.design_mode or "Nominal")
    if config.setup_name:
        parts.append(config.setup_name)
    return [":".join(parts)]


def _is_multi_host(config: HFSSSimulationConfig) -> bool:
    own = {socket.gethostname().lower(), socket.getfqdn().lower()} | _LOCAL_HOSTS
    hosts = {node.hostname.lower() for node in config.machine_nodes}
    return len(hosts) > 1 or bool(hosts - own)


def build_ansysedt_argv(
    config: HFSSSimulationConfig, executable: str | os.PathLike[str]
) -> list[str]:
    """Return the exact ``ansysedt`` argv for ``config``.

    Local runs (``scheduler_type`` none) pass ``-machinelist list=host:cores:max:util%,...``
    and never ``-auto``; ``-distributed`` is added only when ``distributed`` is set and
    the list names another host.  Scheduler runs pass ``-distributed -machinelist
    numcores=N`` when ``distributed`` and ``-auto`` when ``auto``, letting AEDT take
    the hosts the scheduler allocated.
    """
    argv = [os.fspath(executable), "-jobid", config.jobid]
    if config.scheduler_type is SchedulerType.NONE:
        if config.machine_nodes:
            if config.distributed and _is_multi_host(config):
                argv.append("-distributed")
            argv += ["-machinelist", config.generate_machinelist_string()]
    else:
        if config.distributed:
            argv += ["-distributed", "-machinelist", f"numcores={config.num_cores_for_scheduler()}"]
        if config.auto:
            argv.append("-auto")
    if config.non_graphical:
        argv.append("-ng")
    if config.monitor:
        argv.append("-monitor")
    argv += ["-batchoptions", config.generate_batch_options_string()]
    argv += ["-batchsolve", *batchsolve_target(config), config.project_path]
    return argv
