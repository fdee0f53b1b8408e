"""What PyEDB's three submit scripts share (``submit_local_job``, ``submit_batch_jobs``,
``submit_job_on_scheduler``): the job service's ``--host``/``--port`` options, PyEDB's
exit codes, one-line errors on stderr, and sending one job to ``POST /jobs/submit``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from simfarm.client.errors import ApiError, ConnectionFailed
from simfarm.compat.pyedb_client import JobSubmissionError, PyEDBClient

EXIT_OK, EXIT_INVALID, EXIT_UNEXPECTED = 0, 1, 2


def service_parser(prog: str, description: str, *,
                   int_port: bool = False) -> argparse.ArgumentParser:
    """A parser with ``--host``/``--port`` of the job service (PyEDB's defaults:
    ``PYEDB_JOB_MANAGER_HOST``/``PYEDB_JOB_MANAGER_PORT``, then ``localhost:8080``).
    ``--port`` stays text unless ``int_port`` (:func:`checked_port` checks it)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default=os.environ.get("PYEDB_JOB_MANAGER_HOST", "localhost"),
                        help="job-manager host (default: $PYEDB_JOB_MANAGER_HOST or localhost)")
    port = os.environ.get("PYEDB_JOB_MANAGER_PORT", "8080")
    parser.add_argument("--port", **({"type": int, "default": int(port)} if int_port
                                     else {"default": port}),
                        help="job-manager port (default: $PYEDB_JOB_MANAGER_PORT or 8080)")
    return parser


def start_logging(level: int = logging.INFO, **options: Any) -> None:
    """Log to stderr, unless the process set logging up already."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, **options)


def fail(message: str, code: int) -> int:
    """Print ``Error: message`` on stderr; return ``code``."""
    print(f"Error: {message}", file=sys.stderr)
    return code


def checked_port(args: argparse.Namespace) -> int | None:
    """``--port`` as a number once it and ``--project-path`` are checked; None (the
    error printed) when either is wrong."""
    try:
        port = int(args.port)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        fail(f"--port must be a TCP port number, got {args.port!r}", EXIT_INVALID)
        return None
    if not args.project_path.exists():
        fail(f"project path does not exist: {args.project_path}", EXIT_INVALID)
        return None
    return port


def send(host: str, port: int, body: dict[str, Any], *, unreachable: int = EXIT_INVALID,
         queued: str = "") -> int:
    """``POST /jobs/submit`` one job; prints ``Job <id> queued ...`` or the error; returns
    the exit code (``unreachable`` when the service cannot be reached)."""
    url = f"http://{host}:{port}"
    try:
        with PyEDBClient(url, timeout=60) as client:
            job_id = client.submit_config(body)
    except ConnectionFailed as exc:
        return fail(f"cannot reach the job manager at {url}: {exc.__cause__ or exc}",
                    unreachable)
    except ApiError as exc:
        if exc.status >= 500:
            return fail(f"job manager error {exc.status}: {exc.detail}", EXIT_UNEXPECTED)
        return fail(f"job rejected ({exc.status}): {exc.detail}", EXIT_INVALID)
    except JobSubmissionError as exc:
        return fail(f"job rejected: {exc}", EXIT_INVALID)
    print(f"Job {job_id} queued{queued} at {host}:{port}")
    return EXIT_OK
