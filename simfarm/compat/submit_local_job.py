"""``submit_local_job``: queue one HFSS project on a job service (PyEDB's CLI).

    submit_local_job --project-path /data/board.aedb [--num-cores 8] [--host H] [--port P]

``--host``/``--port`` fall back to ``PYEDB_JOB_MANAGER_HOST``/``PYEDB_JOB_MANAGER_PORT``
and then ``localhost:8080``.  It returns once the job is queued and prints its id.
Exit codes as PyEDB documents them: 0 accepted, 1 validation or connection error,
2 unexpected error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simfarm.client.errors import ApiError, ConnectionFailed
from simfarm.compat.pyedb_client import (
    JobSubmissionError,
    PyEDBClient,
    project_config,
    submit_body,
)

log = logging.getLogger(__name__)

EXIT_OK, EXIT_INVALID, EXIT_UNEXPECTED = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (also used for the docs)."""
    parser = argparse.ArgumentParser(
        prog="submit_local_job",
        description="Submit an HFSS job to the local job-manager service.",
    )
    parser.add_argument("--host", default=os.environ.get("PYEDB_JOB_MANAGER_HOST", "localhost"),
                        help="job-manager host (default: $PYEDB_JOB_MANAGER_HOST or localhost)")
    parser.add_argument("--port", default=os.environ.get("PYEDB_JOB_MANAGER_PORT", "8080"),
                        help="job-manager port (default: $PYEDB_JOB_MANAGER_PORT or 8080)")
    parser.add_argument("--project-path", required=True, type=Path,
                        help="full path to the .aedb or .aedt project, or a folder: "
                        "every project in it")
    parser.add_argument("--num-cores", type=int, default=8,
                        help="number of cores to allocate (default: 8)")
    return parser


def fail(message: str, code: int) -> int:
    """Print ``Error: message`` on stderr; return ``code``."""
    print(f"Error: {message}", file=sys.stderr)
    return code


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


def submit(host: str, port: int, project_path: Path, num_cores: int) -> int:
    """Send one job; returns the process exit code."""
    return send(host, port, submit_body(project_config(project_path, num_cores)))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``submit_local_job`` console script."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO)
    try:
        port = int(args.port)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        return fail(f"--port must be a TCP port number, got {args.port!r}", EXIT_INVALID)
    if not args.project_path.exists():
        return fail(f"project path does not exist: {args.project_path}", EXIT_INVALID)
    if args.num_cores <= 0:
        return fail("--num-cores must be positive", EXIT_INVALID)
    if args.project_path.is_dir() and args.project_path.suffix.lower() != ".aedb":
        # A folder of projects: queue each one (simfarm's batch submission).
        from simfarm.compat.submit_batch_jobs import submit_folder

        return submit_folder(args.host, port, args.project_path, args.num_cores)
    try:
        return submit(args.host, port, args.project_path, args.num_cores)
    except ValidationError as exc:
        return fail(str(exc), EXIT_INVALID)
    except Exception as exc:  # the documented "unexpected" exit code
        log.exception("submit_local_job failed")
        return fail(f"unexpected error: {exc}", EXIT_UNEXPECTED)


if __name__ == "__main__":
    sys.exit(main())
