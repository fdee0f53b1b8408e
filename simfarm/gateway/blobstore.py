"""The gateway's blob store: content-addressed files (project and results archives) in a
folder on the gateway host.

Blobs are named by their SHA-256, so the same project uploaded twice is stored once.
An upload streams to ``uploads/<user>/<sha>.part`` in chunks (never whole in memory),
hashing as it goes; it becomes ``sha256/<aa>/<sha>`` only when the bytes hash to the
name. An interrupted upload leaves its part file, and the same user resumes at its size;
part files untouched for ``upload_part_retention_s`` are deleted by the retention sweep.
No upload may leave less than ``blob_min_free_bytes`` free on the blob folder's disk
(the embedded Redis writes its AOF to the same disk by default).

Several gateways behind a balancer share one blob folder (a shared file system): an
upload of a blob holds a lock file beside the uploads (``uploads/.locks/<sha>.lock``,
``flock``) as well as a lock of its process, so no two uploads on any gateway or process
write one part file at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows: one gateway process (waitress threads), the thread lock
    fcntl = None  # type: ignore[assignment]

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
    """Blobs in ``root/sha256/<aa>/<sha>``; partial uploads in ``root/uploads``."""

    def __init__(self, root: Path, min_free_bytes: int = 0) -> None:
        self.root = root
        self.min_free_bytes = min_free_bytes
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @staticmethod
    def valid(sha: str) -> bool:
        """Whether ``sha`` is a well-formed blob name."""
        return bool(SHA256.match(sha))

    def path(self, sha: str) -> Path:
        """Where a finished blob lives."""
        return self.root / "sha256" / sha[:2] / sha

    def _part(self, sha: str, user: str | None = None) -> Path:
        owner = "".join(c if c.isalnum() or c in "._-@" else "_" for c in (user or "")) or "_"
        return self.root / "uploads" / owner / f"{sha}.part"

    def parts_size(self, user: str | None) -> int:
        """Bytes of ``user``'s interrupted uploads."""
        folder = self._part("x", user).parent
        try:
            return sum(p.stat().st_size for p in folder.glob("*.part"))
        except OSError:
            return 0

    def expire_parts(self, older_than: float) -> int:
        """Delete part files not written to since ``older_than`` (epoch seconds)."""
        removed = 0
        for part in (self.root / "uploads").glob("*/*.part"):
            try:
                if part.stat().st_mtime < older_than:
                    part.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def free_bytes(self) -> int:
        """Free space on the blob folder's disk."""
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free

    def _check_room(self, incoming: int) -> None:
        if self.min_free_bytes and self.free_bytes() - incoming < self.min_free_bytes:
            raise BlobError(507, "insufficient_storage", "the blob store's disk is nearly "
                            f"full (it keeps {self.min_free_bytes} bytes free for the job "
                            "store); uploads resume once space is freed")

    def exists(self, sha: str) -> bool:
        """Whether the blob is stored."""
        return self.path(sha).is_file()

    def size(self, sha: str) -> int | None:
        """The blob's size, or None when it is not stored."""
        try:
            return self.path(sha).stat().st_size
        except FileNotFoundError:
            return None

    def partial_size(self, sha: str, user: str | None = None) -> int:
        """Bytes of ``user``'s interrupted upload kept for resuming (0 if none)."""
        try:
            return self._part(sha, user).stat().st_size
        except FileNotFoundError:
            return 0

    def delete(self, sha: str) -> bool:
        """Remove a blob (and any partial upload of it); True if it existed."""
        for part in (self.root / "uploads").glob(f"*/{sha}.part"):
            part.unlink(missing_ok=True)
        (self.root / "uploads" / ".locks" / f"{sha}.lock").unlink(missing_ok=True)
        try:
            self.path(sha).unlink()
        except FileNotFoundError:
            return False
        return True

    def _lock(self, sha: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(sha, threading.Lock())

    @contextmanager
    def _exclusive(self, sha: str) -> Iterator[bool]:
        """Hold the upload of ``sha`` (this process's lock, then the lock file every
        gateway sharing the folder takes); yields False after ``LOCK_WAIT_S``."""
        deadline = time.monotonic() + LOCK_WAIT_S
        lock = self._lock(sha)
        if not lock.acquire(timeout=LOCK_WAIT_S):
            yield False
            return
        try:
            if fcntl is None:
                yield True
                return
            folder = self.root / "uploads" / ".locks"
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / f"{sha}.lock", "a+b") as handle:
                while True:  # non-blocking tries: a gevent worker must not block
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            yield False
                            return
                        time.sleep(0.02)
                try:
                    yield True
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            lock.release()

    def receive(
        self, sha: str, body: IO[bytes], offset: int, limit: int, length: int | None = None,
        user: str | None = None,
    ) -> int:
        """Store an upload body for ``sha`` starting at byte ``offset`` (0 restarts, the
        size of the kept part resumes); ``length`` is the body's announced length. Returns
        the blob's size.

        Raises :class:`BlobError`: 409 when another upload of it runs or the offset is
        not the kept part's size, 413 beyond ``limit``, 422 when the bytes do not hash
        to ``sha``, 400 when fewer than ``length`` bytes arrived (the connection broke:
        what arrived is kept for resuming).
        """
        # A finishing upload of the same blob (fsync) gets a moment; a running one, 409.
        with self._exclusive(sha) as held:
            if not held:
                raise BlobError(409, "conflict", f"blob {sha} is being uploaded by another "
                                "request", self.partial_size(sha, user))
            existing = self.size(sha)
            if existing is not None:
                return existing
            return self._receive(sha, body, offset, limit, length, user)

    def _receive(
        self, sha: str, body: IO[bytes], offset: int, limit: int, length: int | None,
        user: str | None,
    ) -> int:
        part = self._part(sha, user)
        part.parent.mkdir(parents=True, exist_ok=True)
        kept = self.partial_size(sha, user)
        self._check_room(length or 0)
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
                if size // CHUNK % 64 == 0:  # every 64 chunks: is the disk filling up?
                    try:
                        self._check_room(0)
                    except BlobError:
                        out.close()
                        part.unlink(missing_ok=True)
                        raise
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
