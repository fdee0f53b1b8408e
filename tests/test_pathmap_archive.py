"""Path mapping between platforms and safe archives (pure functions, no services)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from simfarm.common.archive import extract, pack_project
from simfarm.common.pathmap import map_path

RULES = {"\\\\fs01\\sim": "/mnt/sim", "\\\\fs01\\sim\\fast": "/scratch/fast", "S:": "/mnt/s",
         "/mnt/sim": "\\\\fs01\\sim"}


@pytest.mark.parametrize(("submitted", "local"), [
    ("\\\\fs01\\sim\\team\\board.aedb", "/mnt/sim/team/board.aedb"),
    ("\\\\FS01\\Sim\\team\\board.aedb", "/mnt/sim/team/board.aedb"),  # Windows ignores case
    ("//fs01/sim/team/board.aedt", "/mnt/sim/team/board.aedt"),        # either slash
    ("\\\\fs01\\sim\\fast\\x.aedt", "/scratch/fast/x.aedt"),           # longest prefix wins
    ("s:\\proj\\x.aedt", "/mnt/s/proj/x.aedt"),
    ("/mnt/sim/team/b.aedt", "\\\\fs01\\sim\\team\\b.aedt"),           # Linux -> Windows
    ("/mnt/SIM/team/b.aedt", "/mnt/SIM/team/b.aedt"),                  # POSIX is case-sensitive
    ("\\\\fs01\\simulation\\x.aedt", "\\\\fs01\\simulation\\x.aedt"),  # whole components only
    ("/home/user/x.aedt", "/home/user/x.aedt"),
])
def test_map_path(submitted: str, local: str) -> None:
    assert map_path(submitted, RULES) == local


def test_project_round_trip_and_unsafe_members_refused(tmp_path: Path) -> None:
    project = tmp_path / "src" / "board.aedt"
    project.parent.mkdir()
    project.write_text("design")
    (project.parent / "board.aedb").mkdir()
    (project.parent / "board.aedb" / "edb.def").write_bytes(b"\x00" * 10)
    archive = io.BytesIO()
    _, size, names = pack_project(project, archive)
    assert names == ["board.aedt", "board.aedb/edb.def"] and size == len(archive.getvalue())
    archive.seek(0)
    extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "board.aedb" / "edb.def").read_bytes() == b"\x00" * 10

    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    evil.seek(0)
    with pytest.raises(tarfile.TarError):
        extract(evil, tmp_path / "safe")
    assert not (tmp_path / "escaped.txt").exists()
