"""The blob protocol of the gateway, spoken by clients (projects up, results down) and
workers (projects down, results up): streamed, checksummed, resumable.

* upload: ``HEAD /api/v1/blobs/<sha>`` — 200 means stored already (nothing is sent);
  404 carries ``Upload-Offset``, the bytes a previous attempt left; ``PUT`` sends the rest.
* download: ``GET`` streamed to a file while hashing; a broken transfer resumes with
  ``Range`` from the bytes already written.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from simfarm.common.archive import CHUNK, iter_file

log = logging.getLogger(__name__)

ATTEMPTS = 3
Tick = Callable[[int], None]


class BlobTransferError(Exception):
    """A blob could not be sent or fetched."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text[:300]))
    except ValueError:
        return response.text[:300]


def upload_blob(http: httpx.Client, path: Path, sha256: str, tick: Tick | None = None) -> bool:
    """Send a file as blob ``sha256`` unless the gateway has it. Returns True when bytes
    were sent, False when the blob was already stored (deduplicated)."""
    url = f"/api/v1/blobs/{sha256}"
    size = path.stat().st_size
    for attempt in range(1, ATTEMPTS + 1):
        head = http.head(url)
        if head.status_code == 200:
            return attempt > 1
        if head.status_code != 404:
            raise BlobTransferError(f"blob check failed: HTTP {head.status_code}",
                                    head.status_code)
        offset = int(head.headers.get("Upload-Offset", "0") or 0)
        if offset > size:
            offset = 0

        def body(start: int = offset) -> Iterator[bytes]:
            for chunk in iter_file(path, start):
                if tick is not None:
                    tick(len(chunk))
                yield chunk

        try:
            response = http.put(url, content=body(),
                                headers={"Upload-Offset": str(offset),
                                         "Content-Length": str(size - offset),
                                         "Content-Type": "application/octet-stream"})
        except httpx.TransportError as exc:
            log.warning("blob %s: upload interrupted (%s); resuming", sha256, exc)
            continue
        if response.status_code in (200, 201):
            return True
        if response.status_code == 409 and attempt < ATTEMPTS:
            continue
        raise BlobTransferError(
            f"upload refused: HTTP {response.status_code}: {_detail(response)}",
            response.status_code)
    raise BlobTransferError(f"upload of {path.name} failed after {ATTEMPTS} attempts")


def download_blob(
    http: httpx.Client, sha256: str, dest: Path, tick: Tick | None = None
) -> str:
    """Fetch blob ``sha256`` into ``dest`` (resuming a broken transfer). Returns the
    SHA-256 of what arrived, for the caller to compare."""
    url = f"/api/v1/blobs/{sha256}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    with open(dest, "wb") as out:
        for attempt in range(1, ATTEMPTS + 1):
            headers = {"Range": f"bytes={written}-"} if written else {}
            try:
                with http.stream("GET", url, headers=headers) as response:
                    if response.status_code == 404:
                        raise BlobTransferError(f"blob {sha256} is not stored on the gateway",
                                                404)
                    if response.status_code not in (200, 206):
                        raise BlobTransferError(
                            f"download failed: HTTP {response.status_code}",
                            response.status_code)
                    if written and response.status_code == 200:  # server ignored Range
                        out.seek(0)
                        out.truncate()
                        digest, written = hashlib.sha256(), 0
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        if tick is not None:
                            tick(len(chunk))
                return digest.hexdigest()
            except httpx.TransportError as exc:
                if attempt == ATTEMPTS:
                    raise BlobTransferError(f"download of {sha256} failed: {exc}") from exc
                log.warning("blob %s: download interrupted at %d bytes (%s); resuming",
                            sha256, written, exc)
    raise BlobTransferError(f"download of {sha256} failed")
