"""The blob store over real HTTP: a 1 GiB upload streams through the gateway in bounded
memory, an interrupted upload resumes, and bad uploads are refused."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from simfarm.client.client import Client
from simfarm.common.settings import Settings
from tests.helpers import wait_for

GIB = 1 << 30


def gateway_processes(port: int) -> list[psutil.Process]:
    """The gunicorn processes holding the gateway's listening socket."""
    pids = {c.pid for c in psutil.net_connections(kind="tcp")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid}
    return [psutil.Process(pid) for pid in pids]


class PeakRss:
    """Samples the RSS of some processes every 20 ms in a thread."""

    def __init__(self, procs: list[psutil.Process]) -> None:
        self.procs = procs
        self.baseline = {p.pid: p.memory_info().rss for p in procs}
        self.peak = dict(self.baseline)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for p in self.procs:
                self.peak[p.pid] = max(self.peak[p.pid], p.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def growth(self) -> int:
        return max(self.peak[pid] - self.baseline[pid] for pid in self.peak)


@pytest.fixture
def client(gateway: str) -> Iterator[Client]:
    with Client(gateway) as c:
        yield c


def blob_path(settings: Settings, sha: str) -> Path:
    return settings.blob_root() / "sha256" / sha[:2] / sha


def test_one_gib_sparse_upload_streams_in_bounded_memory(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    sparse = tmp_path / "big.aedt"
    with open(sparse, "wb") as out:
        out.truncate(GIB)  # a sparse file: 1 GiB long, no disk blocks
    digest = hashlib.sha256()
    zeros = bytes(1 << 20)
    for _ in range(GIB >> 20):
        digest.update(zeros)
    sha = digest.hexdigest()
    procs = gateway_processes(settings.gateway_port)
    assert procs, "gateway processes not found"
    started = time.monotonic()
    with PeakRss(procs) as rss:
        assert client.upload_file(sparse, sha) == sha
    elapsed = time.monotonic() - started
    stored = blob_path(settings, sha)
    try:
        assert stored.stat().st_size == GIB
        print(f"1 GiB upload in {elapsed:.1f} s; gateway RSS grew {rss.growth() / 2**20:.1f} MiB")
        assert rss.growth() < 64 * 2**20, f"gateway RSS grew {rss.growth() / 2**20:.0f} MiB"
        # Same bytes again: deduplicated, nothing sent.
        with PeakRss(procs):
            again = client._http.put(f"/api/v1/blobs/{sha}", content=b"")
        assert again.status_code == 200 and again.json()["created"] is False
    finally:
        stored.unlink(missing_ok=True)


def send_partial(port: int, sha: str, data: bytes, declared: int) -> None:
    """A client that dies mid-upload: sends ``data`` of a ``declared``-byte body, then
    closes the connection."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall((f"PUT /api/v1/blobs/{sha} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Content-Length: {declared}\r\n"
                      "Content-Type: application/octet-stream\r\n\r\n").encode())
        sock.sendall(data)
        time.sleep(0.3)  # let the gateway read what arrived before the connection drops


def test_interrupted_upload_resumes_at_the_kept_offset(http: httpx.Client,
                                                       settings: Settings) -> None:
    body = os.urandom(3 * (1 << 20) + 12345)
    sha = hashlib.sha256(body).hexdigest()
    send_partial(settings.gateway_port, sha, body[: 2 << 20], len(body))
    # Everything that arrived before the connection broke is kept.
    head = wait_for(lambda: http.head(f"/api/v1/blobs/{sha}"),
                    lambda r: r.headers.get("Upload-Offset") == str(2 << 20), 10,
                    "the partial upload to be kept")
    assert head.status_code == 404
    offset = 2 << 20
    wrong = http.put(f"/api/v1/blobs/{sha}", content=b"x",
                     headers={"Upload-Offset": str(offset + 1)})
    assert wrong.status_code == 409 and wrong.json()["fields"][0]["reason"] == str(offset)
    done = http.put(f"/api/v1/blobs/{sha}", content=body[offset:],
                    headers={"Upload-Offset": str(offset)})
    assert done.status_code == 201, done.text
    assert done.json() == {"sha256": sha, "size": len(body), "created": True}
    assert http.get(f"/api/v1/blobs/{sha}").content == body
    ranged = http.get(f"/api/v1/blobs/{sha}", headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206 and ranged.content == body[100:200]


def test_bad_uploads_are_refused(http: httpx.Client, settings: Settings) -> None:
    good = b"project bytes"
    other = hashlib.sha256(b"something else").hexdigest()
    mismatch = http.put(f"/api/v1/blobs/{other}", content=good)
    assert mismatch.status_code == 422 and mismatch.json()["error"] == "checksum_mismatch"
    head = http.head(f"/api/v1/blobs/{other}")
    assert head.status_code == 404 and head.headers["Upload-Offset"] == "0"
    assert http.put("/api/v1/blobs/not-a-sha", content=good).status_code == 404
    # Beyond max_upload_bytes: refused from the headers, before any byte is read.
    with socket.create_connection(("127.0.0.1", settings.gateway_port)) as sock:
        sock.sendall((f"PUT /api/v1/blobs/{other} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Content-Length: {settings.max_upload_bytes + 1}\r\n"
                      "Connection: close\r\n\r\n").encode())
        reply = sock.makefile("rb").read().decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413") and '"payload_too_large"' in reply
