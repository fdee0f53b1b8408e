"""Tar archives of projects and results, written and read as streams with their SHA-256.

Archives are plain (uncompressed) tar: AEDT projects and results are mostly binary and
compress poorly, and a plain stream costs no CPU on either end. Extraction refuses
absolute paths, ``..``, links out of the folder and device files (tarfile's ``data``
filter).
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

CHUNK = 1024 * 1024


class HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _add(tar: tarfile.TarFile, path: Path, arcname: str) -> list[str]:
    """Add a file or a folder tree (sorted, for reproducible archives); returns names."""
    names: list[str] = []
    if path.is_dir():
        tar.add(path, arcname=arcname, recursive=False)
        for child in sorted(path.iterdir()):
            names += _add(tar, child, f"{arcname}/{child.name}")
        return names
    tar.add(path, arcname=arcname, recursive=False)
    names.append(arcname)
    return names


def write_archive(
    entries: Iterable[tuple[Path, str]], out: IO[bytes]
) -> tuple[str, int, list[str]]:
    """Write ``(path, name in archive)`` entries as a tar stream to ``out``.
    Returns (sha256, size, file names)."""
    writer = HashingWriter(out)
    names: list[str] = []
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for path, arcname in entries:
            names += _add(tar, path, arcname)
    writer.flush()
    return writer.sha256, writer.size, names


def pack_project(project: Path, out: IO[bytes]) -> tuple[str, int, list[str]]:
    """Archive a ``.aedt`` file (with its ``.aedb`` folder beside it, if any) or a
    ``.aedb`` folder under its own name."""
    entries = [(project, project.name)]
    if project.suffix.lower() == ".aedt":
        edb = project.with_suffix(".aedb")
        if edb.is_dir():
            entries.append((edb, edb.name))
    return write_archive(entries, out)


def data_filter_is_fixed(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> bool:
    """Whether this Python's ``tarfile`` data filter has the fixes for the link and path
    bypasses of June 2025 (CVE-2025-4138, -4330, -4517, CVE-2024-12718): 3.11.13,
    3.12.11, 3.13.4, 3.14 and later."""
    fixed = {(3, 11): 13, (3, 12): 11, (3, 13): 4}
    major_minor = (version[0], version[1])
    if major_minor in fixed:
        return version[2] >= fixed[major_minor]
    return major_minor >= (3, 14)


def extract(archive: IO[bytes], dest: Path) -> list[str]:
    """Extract a tar stream into ``dest`` safely; returns the member names.

    Every member goes through tarfile's ``data`` filter. On a Python whose filter can
    still be bypassed (:func:`data_filter_is_fixed`), links are refused outright and only
    regular files and folders with plain relative names are extracted."""
    dest.mkdir(parents=True, exist_ok=True)
    strict = not data_filter_is_fixed()
    names: list[str] = []
    with tarfile.open(fileobj=archive, mode="r|") as tar:
        for member in tar:
            if strict:
                _check_plain(member)
            tar.extract(member, dest, filter="data")
            names.append(member.name)
    return names


def _check_plain(member: tarfile.TarInfo) -> None:
    if not (member.isfile() or member.isdir()):
        raise tarfile.FilterError(
            f"{member.name!r}: links and special files are refused on Python "
            f"{sys.version.split()[0]} (its tarfile filter can be bypassed; 3.11.13, "
            "3.12.11 or 3.13.4 and later extract links safely)")
    parts = member.name.replace("\\", "/").split("/")
    if member.name.startswith(("/", "\\")) or ".." in parts or "\x00" in member.name:
        raise tarfile.FilterError(f"{member.name!r}: not a plain relative path")


def iter_file(path: Path, offset: int = 0) -> Iterator[bytes]:
    """The bytes of a file from ``offset``, in chunks (an upload body)."""
    with open(path, "rb") as source:
        source.seek(offset)
        yield from iter(lambda: source.read(CHUNK), b"")
