"""Fault injection for the fault tests and the soak run: a TCP proxy that can cut the
connections through it, a small tmpfs (or a file-size limit) to fill a disk, and a job
that records its runs.

These are real faults, not mocks: clients see closed sockets and refused connections
exactly as with a network outage, and redis-server sees ENOSPC/EFBIG from the kernel.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: A job (``python -c RECORDER <folder> <seconds>``) that records its run in
#: ``<folder>/<job id>``: "<pid> start <t>", "<pid> tick <t>" every 50 ms, "<pid> end <t>",
#: so a test can tell whether runs of one job overlapped.
RECORDER = (
    "import os, sys, time\n"
    "log = open(os.path.join(sys.argv[1], os.environ['SIMFARM_JOB_ID']), 'a', buffering=1)\n"
    "pid = os.getpid()\n"
    "log.write(f'{pid} start {time.time()}\\n')\n"
    "end = time.time() + float(sys.argv[2])\n"
    "while time.time() < end:\n"
    "    time.sleep(0.05)\n"
    "    log.write(f'{pid} tick {time.time()}\\n')\n"
    "log.write(f'{pid} end {time.time()}\\n')\n"
)


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``127.0.0.1:<target_port>``.

    :meth:`cut` closes every open connection and refuses new ones (accept, then close at
    once) until :meth:`restore`: what a client sees when the network to Redis drops.
    With ``rate_bytes_s`` set, each connection moves at most that many bytes a second in
    each direction (a slow link).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._stop = threading.Event()
        self.rate_bytes_s: float | None = None
        self._thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cut(self) -> None:
        """Drop every connection now and refuse new ones."""
        self._cut.set()
        with self._lock:
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            for sock in pair:
                _close(sock)
        log.info("proxy %d: cut %d connection(s)", self.port, len(pairs))

    def restore(self) -> None:
        """Accept and forward connections again."""
        self._cut.clear()

    @contextlib.contextmanager
    def outage(self, seconds: float) -> Iterator[None]:
        """Cut for ``seconds`` (the body runs during the outage), then restore."""
        self.cut()
        started = time.monotonic()
        try:
            yield
            left = seconds - (time.monotonic() - started)
            if left > 0:
                self._stop.wait(left)
        finally:
            self.restore()

    def close(self) -> None:
        self._stop.set()
        _close(self._listener)
        self.cut()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                _close(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._pairs.add((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
                    if self.rate_bytes_s:
                        time.sleep(len(data) / self.rate_bytes_s)  # the slow link itself
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._pairs.discard((client, upstream))
            _close(client)
            _close(upstream)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class SmallDisk:
    """A small tmpfs mounted at ``path`` (needs root; :attr:`mounted` says whether it
    worked). Filling it makes every writer on it get ENOSPC from the kernel."""

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = path
        self.size_mb = size_mb
        self.mounted = False
        path.mkdir(parents=True, exist_ok=True)
        mount = shutil.which("mount")
        if os.geteuid() == 0 and mount is not None:
            result = subprocess.run(
                [mount, "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                capture_output=True, check=False,
            )
            self.mounted = result.returncode == 0

    def fill(self, leave_kb: int = 0) -> Path:
        """Fill the disk, leaving about ``leave_kb`` free; returns the filler file."""
        filler = self.path / "filler.bin"
        remaining = max(0, shutil.disk_usage(self.path).free - leave_kb * 1024)
        chunk = b"\0" * (1 << 20)
        with open(filler, "ab") as out, contextlib.suppress(OSError):
            while remaining > 0:
                remaining -= out.write(chunk[: min(len(chunk), remaining)])
        return filler

    def free_up(self) -> None:
        """Remove the filler file."""
        (self.path / "filler.bin").unlink(missing_ok=True)

    def close(self) -> None:
        umount = shutil.which("umount")
        if self.mounted and umount is not None:
            subprocess.run([umount, "-l", str(self.path)], capture_output=True, check=False)
            self.mounted = False


@dataclass
class Run:
    pid: str
    start: float
    last: float
    ended: bool


def runs_of(record_dir: Path, job_id: str) -> list[Run]:
    """The runs of a job, in start order, from its record file."""
    path = record_dir / job_id
    if not path.exists():
        return []
    runs: dict[str, Run] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue  # a line cut short by a kill
        pid, what, ts = parts[0], parts[1], float(parts[2])
        run = runs.setdefault(pid, Run(pid, ts, ts, False))
        run.last = max(run.last, ts)
        run.ended = run.ended or what == "end"
    return sorted(runs.values(), key=lambda r: r.start)


def assert_never_twice_at_once(record_dir: Path, job_ids: list[str]) -> dict[str, list[Run]]:
    """Runs of one job never overlap and at most one run finished; returns the runs."""
    out = {}
    for job_id in job_ids:
        runs = runs_of(record_dir, job_id)
        for before, after in itertools.pairwise(runs):
            assert before.last < after.start, f"job {job_id} ran twice at once: {runs}"
        assert sum(r.ended for r in runs) <= 1, f"job {job_id} ran to the end twice: {runs}"
        out[job_id] = runs
    return out
