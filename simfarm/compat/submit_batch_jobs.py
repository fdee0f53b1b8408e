"""``submit_batch_jobs``: queue every HFSS project of a folder (PyEDB's batch CLI).

    submit_batch_jobs --root-dir D:/Temp/test_jobs [--num-cores 8] [--recursive]
                      [--host H] [--port P] [--max-concurrent 5] [--delay-ms 100]

Same options as PyEDB's ``submit_batch_jobs.py``; projects are found the same way (each
``.aedb`` folder, or its ``.aedt`` when both exist, and loose ``.aedt`` files) and sent to
the PyEDB route ``POST /jobs/submit``, at most ``--max-concurrent`` at once. Unlike
PyEDB, the exit code tells whether every project was accepted (0) or not (1).
``submit_local_job --project-path FOLDER`` does the same. The simfarm-native equivalent,
``simfarm submit-batch FOLDER``, submits the folder as one sweep (throttle, staging).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from simfarm.client.errors import ApiError, ConnectionFailed
from simfarm.common.projects import scan_projects
from simfarm.compat import scripts
from simfarm.compat.pyedb_client import (
    JobSubmissionError,
    PyEDBClient,
    project_config,
    submit_body,
)

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = scripts.service_parser(
        "submit_batch_jobs", "Submit every HFSS project of a folder to the job-manager service.",
        int_port=True)
    parser.add_argument("--root-dir", required=True, type=Path,
                        help="folder to scan for .aedb folders and .aedt files")
    parser.add_argument("--num-cores", type=int, default=8, help="cores per job (default: 8)")
    parser.add_argument("--recursive", action="store_true", help="scan subfolders too")
    parser.add_argument("--max-concurrent", type=int, default=5,
                        help="submissions in flight at once (default: 5)")
    parser.add_argument("--delay-ms", type=int, default=100,
                        help="pause after each submission in ms (default: 100)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser


def submit_one(client: PyEDBClient, project: Path, num_cores: int) -> str | None:
    """Queue one project; its job id, or None (the reason is logged)."""
    body = submit_body(project_config(project.resolve(), num_cores))
    try:
        job_id = client.submit_config(body)
    except ApiError as exc:
        log.error("%s: rejected (%s): %s", project.name, exc.status, exc.detail)
        return None
    except (ConnectionFailed, JobSubmissionError) as exc:
        log.error("%s: not submitted: %s", project.name, exc)
        return None
    log.info("%s: queued as %s", project.name, job_id)
    return job_id


def submit_all(host: str, port: int, projects: list[Path], num_cores: int,
               max_concurrent: int = 5, delay_ms: int = 0) -> int:
    """Queue every project; prints one line per project; returns the exit code."""
    with PyEDBClient(f"http://{host}:{port}", timeout=120) as client:

        def one(project: Path) -> str | None:
            job_id = submit_one(client, project, num_cores)
            time.sleep(delay_ms / 1000)
            return job_id

        with ThreadPoolExecutor(max_workers=max_concurrent) as pool:
            results = list(pool.map(one, projects))
    for project, job_id in zip(projects, results, strict=True):
        print(f"{project}: {'queued as ' + job_id if job_id else 'FAILED'}")
    failed = sum(1 for r in results if r is None)
    print(f"{len(projects) - failed} of {len(projects)} projects queued at {host}:{port}")
    return scripts.EXIT_INVALID if failed else scripts.EXIT_OK


def submit_folder(host: str, port: int, root: Path, num_cores: int, recursive: bool = False,
                  max_concurrent: int = 5, delay_ms: int = 0) -> int:
    """Queue every project found in ``root``; the exit code."""
    projects = scan_projects(root, recursive)
    if not projects:
        print(f"Warning: no .aedb folders or .aedt files found in {root}")
        return scripts.EXIT_OK
    return submit_all(host, port, projects, num_cores, max_concurrent, delay_ms)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``submit_batch_jobs`` console script."""
    args = build_parser().parse_args(argv)
    scripts.start_logging(logging.DEBUG if args.verbose else logging.INFO)
    for bad, message in ((not args.root_dir.is_dir(), f"not a folder: {args.root_dir}"),
                         (args.num_cores <= 0, "--num-cores must be positive"),
                         (args.max_concurrent <= 0, "--max-concurrent must be positive"),
                         (args.delay_ms < 0, "--delay-ms must be non-negative")):
        if bad:
            return scripts.fail(message, scripts.EXIT_INVALID)
    return submit_folder(args.host, args.port, args.root_dir, args.num_cores, args.recursive,
                         args.max_concurrent, args.delay_ms)


if __name__ == "__main__":
    sys.exit(main())
