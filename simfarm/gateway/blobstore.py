"""The gateway's blob store: content-addressed files (project and results archives) in a
folder on the gateway host.

Blobs are named by their SHA-256, so the same project uploaded twice is stored once.
An upload streams to ``uploads/<sha>.part`` in chunks (never whole in memory), hashing
as it goes; it becomes ``sha256/<aa>/<sha>`` only when the bytes hash to the name. An
interrupted upload leaves its part file, and the client resumes at its size.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import IO

from simfarm.common.archive import CHUNK
from simfarm.common.files import SHA256

log = logging.getLogger(__name__)

LOCK_WAIT_S = 5.0


class BlobError(Exception):
    """An upload that cannot be accepted (status and message for the API)."""

    def __init__(self, status: int, error: str, detail: str, offset: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.offset = offset


class FolderBlobStore:
    """Blobs in ``root/sha256/<aa>/<sha>``; partial uploads in ``root/uploads``.

    The gateway is one process (threads), so an in-process lock per blob is enough to
    keep two uploads of the same blob from writing one part file at once.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @staticmethod
    def valid(sha: str) -> bool:
        """Whether ``sha`` is a well-formed blob name."""
        return bool(SHA256.match(sha))

    def path(self, sha: str) -> Path:
        """Where a finished blob lives."""
        return self.root / "sha256" / sha[:2] / sha

    def _part(self, sha: str) -> Path:
        return self.root / "uploads" / f"{sha}.part"

    def exists(self, sha: str) -> bool:
        """Whether the blob is stored."""
        return self.path(sha).is_file()

    def size(self, sha: str) -> int | None:
        """The blob's size, or None when it is not stored."""
        try:
            return self.path(sha).stat().st_size
        except FileNotFoundError:
            return None

    def partial_size(self, sha: str) -> int:
        """Bytes of an interrupted upload kept for resuming (0 if none)."""
        try:
            return self._part(sha).stat().st_size
        except FileNotFoundError:
            return 0

    def delete(self, sha: str) -> bool:
        """Remove a blob (and any partial upload of it); True if it existed."""
        self._part(sha).unlink(missing_ok=True)
        try:
            self.path(sha).unlink()
        except FileNotFoundError:
            return False
        return True

    def _lock(self, sha: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(sha, threading.Lock())

    def receive(
        self, sha: str, body: IO[bytes], offset: int, limit: int, length: int | None = None
    ) -> int:
        """Store an upload body for ``sha`` starting at byte ``offset`` (0 restarts, the
        size of the kept part resumes); ``length`` is the body's announced length. Returns
        the blob's size.

        Raises :class:`BlobError`: 409 when another upload of it runs or the offset is
        not the kept part's size, 413 beyond ``limit``, 422 when the bytes do not hash
        to ``sha``, 400 when fewer than ``length`` bytes arrived (the connection broke:
        what arrived is kept for resuming).
        """
        lock = self._lock(sha)
        # A finishing upload of the same blob (fsync) gets a moment; a running one, 409.
        if not lock.acquire(timeout=LOCK_WAIT_S):
            raise BlobError(409, "conflict", f"blob {sha} is being uploaded by another request",
                            self.partial_size(sha))
        try:
            existing = self.size(sha)
            if existing is not None:
                return existing
            return self._receive(sha, body, offset, limit, length)
        finally:
            lock.release()

    def _receive(
        self, sha: str, body: IO[bytes], offset: int, limit: int, length: int | None
    ) -> int:
        part = self._part(sha)
        part.parent.mkdir(parents=True, exist_ok=True)
        kept = self.partial_size(sha)
        if offset not in (0, kept):
            raise BlobError(409, "conflict", f"upload of {sha} can resume at byte {kept}, "
                            f"not {offset}", kept)
        digest = hashlib.sha256()
        if offset:
            with open(part, "rb") as done:
                for chunk in iter(lambda: done.read(CHUNK), b""):
                    digest.update(chunk)
        size = offset
        with open(part, "ab" if offset else "wb") as out:
            while True:
                chunk = body.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    out.close()
                    part.unlink(missing_ok=True)
                    raise BlobError(413, "payload_too_large",
                                    f"upload exceeds the limit of {limit} bytes")
                out.write(chunk)
                digest.update(chunk)
            out.flush()
            os.fsync(out.fileno())
        if length is not None and size < offset + length:
            log.info("blob %s: upload interrupted at %d bytes; kept for resuming", sha, size)
            raise BlobError(400, "incomplete_upload", f"the body ended after {size - offset} "
                            f"of {length} bytes; resume at byte {size}", size)
        actual = digest.hexdigest()
        if actual != sha:
            part.unlink(missing_ok=True)
            raise BlobError(422, "checksum_mismatch",
                            f"the uploaded bytes hash to {actual}, not {sha}; upload again")
        final = self.path(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, final)
        log.info("blob %s: stored (%d bytes)", sha, size)
        return size
