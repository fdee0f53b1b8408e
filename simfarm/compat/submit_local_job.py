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
import sys
from pathlib import Path

from pydantic import ValidationError

from simfarm.compat import scripts
from simfarm.compat.pyedb_client import project_config, submit_body

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (also used for the docs)."""
    parser = scripts.service_parser("submit_local_job",
                                    "Submit an HFSS job to the local job-manager service.")
    parser.add_argument("--project-path", required=True, type=Path,
                        help="full path to the .aedb or .aedt project, or a folder: "
                        "every project in it")
    parser.add_argument("--num-cores", type=int, default=8,
                        help="number of cores to allocate (default: 8)")
    return parser


def submit(host: str, port: int, project_path: Path, num_cores: int) -> int:
    """Send one job; returns the process exit code."""
    return scripts.send(host, port, submit_body(project_config(project_path, num_cores)))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``submit_local_job`` console script."""
    args = build_parser().parse_args(argv)
    scripts.start_logging()
    port = scripts.checked_port(args)
    if port is None:
        return scripts.EXIT_INVALID
    if args.num_cores <= 0:
        return scripts.fail("--num-cores must be positive", scripts.EXIT_INVALID)
    if args.project_path.is_dir() and args.project_path.suffix.lower() != ".aedb":
        # A folder of projects: queue each one (simfarm's batch submission).
        from simfarm.compat.submit_batch_jobs import submit_folder

        return submit_folder(args.host, port, args.project_path, args.num_cores)
    try:
        return submit(args.host, port, args.project_path, args.num_cores)
    except ValidationError as exc:
        return scripts.fail(str(exc), scripts.EXIT_INVALID)
    except Exception as exc:  # the documented "unexpected" exit code
        log.exception("submit_local_job failed")
        return scripts.fail(f"unexpected error: {exc}", scripts.EXIT_UNEXPECTED)


if __name__ == "__main__":
    sys.exit(main())
