"""Client side of staged project files: pack and upload a project, download results.

Shared by the sync :class:`~simfarm.client.client.Client` and the async façade (which
runs these in a thread): packing and hashing are disk work, the transfers are the blob
protocol of :mod:`simfarm.common.blob_http`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import httpx

from simfarm.common.archive import extract, file_sha256, pack_project
from simfarm.common.blob_http import BlobTransferError, download_blob, upload_blob
from simfarm.common.files import ProjectFiles, ResultsInfo

log = logging.getLogger(__name__)


def upload_file(http: httpx.Client, path: Path, sha256: str | None = None) -> str:
    """Upload one file as a blob (skipped when the gateway has it); returns its SHA-256."""
    sha = sha256 or file_sha256(path)
    upload_blob(http, path, sha)
    return sha


def upload_project(http: httpx.Client, project: Path, outputs: list[str] | None = None,
                   ) -> ProjectFiles:
    """Pack a ``.aedt`` file or ``.aedb`` folder as a tar stream (on disk, never whole in
    memory), upload it unless the gateway already has it, and return the ``files``
    section of a staged job."""
    project = Path(project)
    if not project.exists():
        raise FileNotFoundError(f"project {project} does not exist")
    fd, name = tempfile.mkstemp(prefix="simfarm-project-", suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as out:
            sha, size, _ = pack_project(project, out)
        sent = upload_blob(http, Path(name), sha)
        log.info("project %s: %s (%d bytes, sha256 %s)", project.name,
                 "uploaded" if sent else "already on the gateway", size, sha)
    finally:
        Path(name).unlink(missing_ok=True)
    return ProjectFiles(mode="staged", archive=sha, project=project.name,
                        outputs=list(outputs or []))


def download_results(http: httpx.Client, results: ResultsInfo, dest: Path) -> list[str]:
    """Fetch a results archive, verify its SHA-256 and unpack it into ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="simfarm-results-", suffix=".tar", dir=dest)
    os.close(fd)
    try:
        actual = download_blob(http, results.sha256, Path(name))
        if actual != results.sha256:
            raise BlobTransferError(
                f"results archive checksum mismatch: expected {results.sha256}, got {actual}")
        with open(name, "rb") as source:
            return extract(source, dest)
    finally:
        Path(name).unlink(missing_ok=True)
