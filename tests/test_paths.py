"""The shared path validator (simfarm.common.paths): syntax, roots, symlinks, Windows paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simfarm.common.paths import PathRejected, check_path, resolve_within

ROOTS = ["/data/projects", "D:\\Sims"]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("/data/projects", "/data/projects"),
        ("/data/projects/a/b.aedt", "/data/projects/a/b.aedt"),
        ("/data/projects//a/./b", "/data/projects/a/b"),
        ("//data/projects/x", "/data/projects/x"),
        ("D:\\Sims\\board.aedt", "D:\\Sims\\board.aedt"),
        ("d:/sims/board.aedt", "d:\\sims\\board.aedt"),  # Windows: case-insensitive roots
    ],
)
def test_paths_inside_roots_are_accepted_normalised(raw: str, expected: str) -> None:
    assert check_path(raw, ROOTS) == expected


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("", "non-empty"),
        ("data/projects/x", "absolute"),
        ("./x", "absolute"),
        ("/data/projects/../../etc/passwd", "traversal"),
        ("/data/projects/..", "traversal"),
        ("D:\\Sims\\..\\Windows\\system32", "traversal"),
        ("D:/Sims/../Windows", "traversal"),
        ("/data/projects-old/x", "outside"),
        ("/data/project", "outside"),
        ("/etc/passwd", "outside"),
        ("C:\\Sims\\x.aedt", "outside"),
        ("\\\\fileserver\\share\\x.aedt", "outside"),
        ("\\\\?\\D:\\Sims\\x", "device"),
        ("\\\\.\\PhysicalDrive0", "device"),
        ("/data/projects/a\x00b", "control"),
        ("/data/projects/a\nb", "control"),
        ("/" + "a" * 5000, "longer"),
    ],
)
def test_bad_paths_are_rejected_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(PathRejected) as info:
        check_path(raw, ROOTS, field="cwd")
    assert info.value.field == "cwd" and reason in info.value.reason


def test_without_roots_any_clean_absolute_path_passes() -> None:
    assert check_path("/anywhere/at/all") == "/anywhere/at/all"
    with pytest.raises(PathRejected):
        check_path("/anywhere/../etc")


def test_symlink_out_of_a_root_is_caught_where_the_path_is_used(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "ok").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "escape")
    assert resolve_within(str(root / "ok"), [str(root)]) == (root / "ok").resolve()
    assert check_path(str(root / "escape"), [str(root)])  # syntax alone cannot see links
    with pytest.raises(PathRejected, match="symlink"):
        resolve_within(str(root / "escape"), [str(root)])
