"""Finding HFSS projects in a folder, as PyEDB's ``submit_batch_jobs`` does: every
``.aedb`` folder and ``.aedt`` file; when both ``x.aedb`` and ``x.aedt`` exist, ``x.aedt``
is the project (its ``.aedb`` goes with it)."""

from __future__ import annotations

from pathlib import Path


def scan_projects(root: Path, recursive: bool = False) -> list[Path]:
    """Projects under ``root`` (sorted), optionally in subfolders too."""
    pattern = "**/*" if recursive else "*"
    found: set[Path] = set()
    for path in root.glob(pattern):
        suffix = path.suffix.lower()
        if suffix == ".aedb" and path.is_dir():
            aedt = path.with_suffix(".aedt")
            found.add(aedt if aedt.is_file() else path)
        elif suffix == ".aedt" and path.is_file():
            found.add(path)
    # Folders inside an .aedb are not projects of their own.
    return sorted(p for p in found
                  if not any(parent.suffix.lower() == ".aedb" for parent in p.parents))
